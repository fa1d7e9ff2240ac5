"""Prototxt text from (field, value) lists, and the fillers and parameter specs nets reuse."""
import json


class Enum(str):
    """A protobuf enum value (MAX, TRAIN, LMDB): written bare, not quoted."""


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(items, indent=0):
    """Prototxt text of ``[(field, value), ...]``; a list value is a nested message,
    written on one line when it is short and flat."""
    pad, lines = "  " * indent, []
    for key, value in items:
        if not isinstance(value, list):
            lines.append(f"{pad}{key}: {_scalar(value)}")
            continue
        flat = " ".join(f"{k}: {_scalar(v)}" for k, v in value if not isinstance(v, list))
        if value and all(not isinstance(v, list) for _, v in value) and len(pad + key + flat) < 72:
            lines.append(f"{pad}{key} {{ {flat} }}")
        else:
            lines += [f"{pad}{key} {{", render(value, indent + 1), f"{pad}}}"] if value else [f"{pad}{key} {{}}"]
    return "\n".join(lines)


def comment_lines(text):
    """``text`` as prototxt comment lines, one '#' per line (a bare '#' for an empty line)."""
    return "\n".join(f"# {line}" if line else "#" for line in text.splitlines())


def solver_text(net, recipe, comment=""):
    """solver.prototxt text; ``recipe`` is a list of (field, value) after ``net``."""
    head = comment_lines(comment) + "\n" if comment else ""
    return head + render([("net", net)] + list(recipe)) + "\n"


def gaussian(std):
    return [("type", "gaussian"), ("std", std)]


def constant(value=0.0):
    return [("type", "constant"), ("value", value)]


XAVIER = [("type", "xavier")]
MSRA = [("type", "msra")]
LEARN = [("param", [("lr_mult", 1), ("decay_mult", 1)]), ("param", [("lr_mult", 2), ("decay_mult", 0)])]
IMAGENET_MEAN = (104, 117, 123)           # BGR means of ILSVRC-2012, as Caffe's reference models
