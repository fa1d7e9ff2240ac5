"""Moving a net's weights to and from .caffemodel (binary NetParameter) and
HDF5 files (Caffe's layout: dataset ``data/<layer name>/<blob index>``).

HDF5 link names cannot hold a '/' (it separates path components), so a layer
named ``fire2/squeeze1x1`` (SqueezeNet's names) is stored at the path
``data/fire2/squeeze1x1/0``, a group in a group, as h5py's
``f["data"]["fire2/squeeze1x1"]`` reads it; the reader walks nested groups and
joins the names back. Caffe itself cannot write such a net to HDF5 (its
H5Gcreate2 fails on the missing 'fire2' group) nor match such a layer in any
HDF5 file (it compares top-level link names only): use .caffemodel there.

A .fcz file (Deep Compression's storage, firecaffe/fcz) is recognised by its first bytes
and loads like a .caffemodel: by layer name, decoded to float32."""
import numpy as np

from ..core import backend, integrity
from ..core.atomic import atomic_path
from ..core.blob import shape_str
from ..core.log import LOGGER
from ..errors import PrototxtError
from .. import fcz
from ..proto import caffe_pb2, io


def _is_hdf5(path):
    return str(path).endswith(".h5")


def copy_into(net, source, require_all=False, hdf5=False):
    """Copy weights by layer name; source layers the net lacks are ignored, as in Caffe.

    With ``require_all`` (a snapshot being restored), every layer of the net that
    has weights must be in the source: a file cut short is refused, not half-loaded.
    """
    label = source if isinstance(source, str) else "<NetParameter>"
    if isinstance(source, str):
        integrity.verify(source)
    if isinstance(source, str) and (hdf5 or _is_hdf5(source)):
        pairs = _hdf5_layers(source)
    elif isinstance(source, str) and fcz.looks_like(source):
        pairs = ((name, arrays) for name, _, arrays in fcz.read(source)[1])
    else:
        param = io.read_caffemodel(source) if isinstance(source, str) else source
        pairs = ((lp.name, [io.blob_to_array(b, np.float64) for b in lp.blobs]) for lp in param.layer)
    layers = net.layer_dict
    copied, seen = set(), 0
    for name, arrays in pairs:
        seen += 1
        if name not in layers:
            LOGGER.info(f"Ignoring source layer {name}")        # Caffe's line
            continue
        if not arrays:
            continue
        copied.add(name)
        target = layers[name].blobs
        if len(arrays) != len(target):
            raise PrototxtError(f"{label}: layer '{name}' has {len(arrays)} weight blob(s) "
                                f"but the net's layer '{name}' has {len(target)}")
        for k, (array, blob) in enumerate(zip(arrays, target)):
            if array.shape != blob.shape:
                if array.size != blob.count or array.ndim != 4:
                    raise PrototxtError(
                        f"{label}: cannot copy param {k} of layer '{name}': shape mismatch, "
                        f"source {shape_str(array.shape)} vs net {shape_str(blob.shape)}")
                array = array.reshape(blob.shape)       # legacy num/channels/height/width blobs
            blob.write(backend.xp().asarray(array, dtype=blob.dtype))
    missing = [layer.name for layer in net.layers if layer.blobs and layer.name not in copied]
    if not seen:
        raise PrototxtError(f"{label}: holds no layers (an empty or truncated weights file?)")
    if missing and not copied:
        raise PrototxtError(f"{label}: no layer name matches a layer of net '{net.name}' that has "
                            f"weights ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
                            "weights from another net?")
    if require_all and missing:
        raise PrototxtError(f"{label}: holds no weights for layer(s) {', '.join(missing)}; "
                            "is the file truncated, or from another net?")


def _hdf5_layers(path):
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return list(_hdf5_walk(f["data"], ""))
    except (OSError, KeyError) as exc:
        raise PrototxtError(f"{path}: not a readable Caffe HDF5 weights file ({exc})") from None


def _hdf5_walk(group, prefix):
    """(layer name, blobs) for each layer group under ``group``: a group holding the datasets 0, 1, ...
    (or nothing, a layer without weights); its subgroups are layers whose names continue with '/'."""
    import h5py
    children = {name: group[name] for name in group}
    datasets = [name for name, item in children.items() if not isinstance(item, h5py.Group)]
    subgroups = [name for name, item in children.items() if isinstance(item, h5py.Group)]
    if datasets or not subgroups:
        yield prefix, [np.asarray(group[str(k)]) for k in range(len(datasets))]
    for name in subgroups:
        yield from _hdf5_walk(children[name], f"{prefix}/{name}" if prefix else name)


def net_to_proto(net, write_diff=False):
    """A NetParameter holding each layer's definition and its weight blobs."""
    out = caffe_pb2.NetParameter(name=net.name)
    for layer, lp in zip(net.layers, net.param.layer):
        if lp.type == "Split":
            continue
        new = out.layer.add()
        new.CopyFrom(lp)
        del new.blobs[:]
        for blob in layer.blobs:
            proto = io.array_to_blob(backend.to_host(blob.weights))
            if write_diff:
                proto.diff.extend(backend.to_host(blob.diff).reshape(-1).tolist())
            new.blobs.add().CopyFrom(proto)
    return out


def save(net, path):
    if _is_hdf5(path):
        save_hdf5(net, path)
    else:
        io.write_caffemodel(net_to_proto(net), path)


def save_hdf5(net, path, write_diff=False):
    import h5py
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            groups = [f.create_group("data")] + ([f.create_group("diff")] if write_diff else [])
            for layer, lp in zip(net.layers, net.param.layer):
                if lp.type == "Split":
                    continue
                for group, attr in zip(groups, ("data", "diff")):
                    _write_layer(group, layer, attr, path)


def _write_layer(group, layer, attr, path):
    """Layer ``layer``'s group (nested at each '/') and its blobs, refusing a name HDF5 cannot give back."""
    if any(part in ("", ".") for part in layer.name.split("/")):
        raise PrototxtError(f"{path}: layer name '{layer.name}' cannot be stored in an HDF5 weights file "
                            "(an empty or '.' part between '/'); save a .caffemodel instead")
    try:
        g = group.require_group(layer.name)
        for k, blob in enumerate(layer.blobs):
            g.create_dataset(str(k), data=backend.to_host(blob.weights if attr == "data" else blob.diff))
    except (TypeError, ValueError) as exc:
        raise PrototxtError(f"{path}: layer name '{layer.name}' clashes with another layer's blob or "
                            f"group in an HDF5 weights file ({exc}); save a .caffemodel instead") from None
