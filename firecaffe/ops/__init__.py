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
        raise PrototxtError(
            f"layer '{param.name}': unknown layer type '{param.type}' "
            f"(known types: {', '.join(sorted(LAYERS))})")
    return cls(param, phase=phase, dtype=dtype)


def _load_all():
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


_load_all()

__all__ = ["LAYERS", "Layer", "create_layer", "register"]
