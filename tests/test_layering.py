"""The folders are the architecture: imports run one way, top to bottom.

    cli -> pycaffe surface -> run, insight, cluster, compress -> solvers, comm -> engine -> ops
        -> data, kernels, fcz -> proto -> core -> errors

Every import of a firecaffe module, at module level or inside a function, is
checked against that order; a module may import its own package. The pycaffe
surface is the package's own top-level modules (__init__, io, net_spec, draw, ...)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "firecaffe"

# package -> its level; a module may import its own package and any lower level
LEVELS = {
    "errors": 0, "core": 1, "proto": 2,
    "kernels": 3, "data": 3, "fcz": 3,
    "ops": 4,
    "engine": 5,
    "comm": 6, "solvers": 6,
    "run": 7, "insight": 7, "cluster": 7, "compress": 7,
    "surface": 8,        # firecaffe/__init__.py, io.py, net_spec.py, draw.py, ... (pycaffe's modules)
    "cli": 9,            # and __main__.py
}
# Known, deliberate exceptions: (importing package, imported package) with the reason.
ALLOWED = {}


def package_of(path):
    rel = path.relative_to(ROOT)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return {"errors": "errors", "__main__": "cli"}.get(rel.stem, "surface")


def imported_packages(path):
    tree = ast.parse(path.read_text())
    own = path.relative_to(ROOT.parent).with_suffix("").parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(own[:len(own) - node.level])
                if path.name == "__init__.py":
                    base = list(own[:len(own) - node.level + 1])[:-1] if node.level > 1 else list(own[:-1])
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "firecaffe":
                parts = node.module.split(".")
            else:
                continue
            names = [alias.name for alias in node.names]
            if len(parts) == 1:           # from firecaffe import x / from . import x (at the top)
                for name in names:
                    yield node.lineno, name if (ROOT / name).is_dir() else (
                        "errors" if name == "errors" else "surface")
            else:
                target = parts[1]
                yield node.lineno, target if (ROOT / target).is_dir() else (
                    "errors" if target == "errors" else "surface")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "firecaffe" and len(parts) > 1:
                    yield node.lineno, parts[1] if (ROOT / parts[1]).is_dir() else "surface"


FILES = sorted(p for p in ROOT.rglob("*.py") if p.name != "caffe_pb2.py")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_downward(path):
    mine = package_of(path)
    upward = [f"{path.relative_to(ROOT.parent)}:{line} imports firecaffe.{target}"
              for line, target in imported_packages(path)
              if target != mine and LEVELS[target] >= LEVELS[mine] and (mine, target) not in ALLOWED]
    assert not upward, "\n".join(upward)
