"""Layer registry keyed by Caffe's type string; each layer registers in its own file."""
import importlib
import pkgutil

from ..errors import PrototxtError
from .base import Layer

LAYERS = {}


def register(type_name):
    """Class decorator: make a Layer subclass available under Caffe's ``type_name``."""
    def deco(cls):
        if type_name in LAYERS:
            raise RuntimeError(f"layer type {type_name!r} registered twice")
        LAYERS[type_name] = cls
        return cls
    return deco


def create_layer(param, phase="TRAIN", dtype="float32"):
    cls = LAYERS.get(param.type)
    if cls is None:
        raise PrototxtError(f"layer '{param.name}': unknown layer type '{param.type}'{_suggest(param.type)} "
                            f"(firecaffe.layer_type_list() lists the {len(LAYERS)} known types)")
    return cls(param, phase=phase, dtype=dtype)


def _suggest(type_name):
    """'; did you mean 'ReLU'?' for a type close to known ones (case aside), else ''."""
    import difflib
    by_lower = {name.lower(): name for name in LAYERS}
    close = difflib.get_close_matches(type_name.lower(), list(by_lower), n=3, cutoff=0.7)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{by_lower[name]}'" for name in close) + "?"


def _load_all():
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


_load_all()

__all__ = ["LAYERS", "Layer", "create_layer", "register"]
