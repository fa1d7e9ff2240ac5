"""pycaffe's caffe.draw: a net's graph as Graphviz DOT text, rendered to PNG, SVG,
PDF ... by Graphviz when it is installed.

Layers are boxes (coloured by kind), blobs are octagons; an in-place layer gets
a new node for the blob it rewrites, so the picture stays a DAG. DOT text needs
nothing; images need the Graphviz ``dot`` program (apt install graphviz) or the
``graphviz`` Python package with it (pip install 'firecaffe[draw]').

    python -m firecaffe.draw net.prototxt net.png [--rankdir TB] [--phase TRAIN]
"""
import argparse
import shutil
import subprocess
import sys

from .errors import FirecaffeError

LAYER_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
                "InnerProduct": "#CC33FF", "Data": "#6495ED", "HDF5Data": "#6495ED", "Input": "#6495ED",
                "ImageData": "#6495ED", "MemoryData": "#6495ED", "DummyData": "#6495ED"}
DEFAULT_COLOR = "#6495ED"
BLOB_COLOR = "#E0E0E0"


def _net_param(net, phase):
    from .engine import graph
    from .proto import caffe_pb2, io as proto_io
    if isinstance(net, str):
        net = proto_io.read_net(net)
    elif not isinstance(net, caffe_pb2.NetParameter):
        net = net.param                                     # a firecaffe Net
    if phase is not None:
        net = graph.filter_net(net, graph.phase_name(phase))
    return net


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _layer_label(layer, display_lrm):
    lines = [layer.name, f"({layer.type})"]
    if layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        kernel = "x".join(str(k) for k in p.kernel_size) or f"{p.kernel_h}x{p.kernel_w}"
        stride = "x".join(str(s) for s in p.stride) or "1"
        pad = "x".join(str(s) for s in p.pad) or "0"
        lines.append(f"kernel {kernel}, stride {stride}, pad {pad}, {p.num_output} out")
    elif layer.type == "Pooling":
        p = layer.pooling_param
        pool = type(p).PoolMethod.Name(p.pool)
        lines.append(f"{pool} {p.kernel_size or f'{p.kernel_h}x{p.kernel_w}'}, stride {p.stride}, pad {p.pad}")
    elif layer.type == "InnerProduct":
        lines.append(f"{layer.inner_product_param.num_output} out")
    if display_lrm and layer.param:
        lines.append("lr mult " + ", ".join(f"{s.lr_mult:g}" for s in layer.param))
    return "\\n".join(line.replace('"', "'") for line in lines)


def net_to_dot(net, rankdir="LR", phase=None, display_lrm=False, label_edges=True):
    """DOT text for ``net`` (a NetParameter, a prototxt path or a firecaffe Net)."""
    param = _net_param(net, phase)
    out = [f"digraph {_quote(param.name or 'net')} {{", f"  rankdir={rankdir};",
           "  node [fontname=Helvetica, fontsize=10];"]
    version, count = {}, {}                        # blob name -> node id of its latest value

    def blob_node(name, new):
        if new or name not in version:
            count[name] = count.get(name, -1) + 1
            node = f"blob:{name}:{count[name]}"
            version[name] = node
            out.append(f"  {_quote(node)} [label={_quote(name)}, shape=octagon, style=filled, "
                       f"fillcolor={_quote(BLOB_COLOR)}];")
        return version[name]

    for index, layer in enumerate(param.layer):
        node = f"layer:{index}:{layer.name}"
        color = LAYER_COLORS.get(layer.type, DEFAULT_COLOR)
        out.append(f"  {_quote(node)} [label=\"{_layer_label(layer, display_lrm)}\", shape=box, "
                   f"style=filled, fillcolor={_quote(color)}];")
        for name in layer.bottom:
            out.append(f"  {_quote(blob_node(name, False))} -> {_quote(node)};")
        for name in layer.top:
            in_place = name in layer.bottom
            target = blob_node(name, in_place)
            label = f" [label={_quote(name)}]" if label_edges and in_place else ""
            out.append(f"  {_quote(node)} -> {_quote(target)}{label};")
    out.append("}")
    return "\n".join(out) + "\n"


def draw_net(net, rankdir="LR", ext="png", phase=None, display_lrm=False):
    """The drawing as bytes in format ``ext`` ('dot' needs no Graphviz)."""
    text = net_to_dot(net, rankdir, phase, display_lrm)
    if ext == "dot":
        return text.encode()
    return render(text, ext)


def draw_net_to_file(net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Write the drawing; the format follows the file's extension (.png, .svg, .pdf, .dot)."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "png"
    data = draw_net(net, rankdir, ext, phase, display_lrm)
    with open(filename, "wb") as handle:
        handle.write(data)


def render(dot_text, fmt="png"):
    """Render DOT text with Graphviz: the ``graphviz`` package if importable, else ``dot``."""
    dot = shutil.which("dot")
    if dot is None:
        raise FirecaffeError(f"drawing a net as {fmt} needs Graphviz's `dot` program, which is not installed "
                             "(apt install graphviz, or conda install graphviz); the DOT text needs nothing: "
                             "use ext='dot' or a .dot file name")
    try:
        import graphviz
        return graphviz.Source(dot_text).pipe(format=fmt)
    except ImportError:
        pass
    done = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=120)
    if done.returncode != 0:
        raise FirecaffeError(f"Graphviz failed to render {fmt}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description="Draw a Caffe net (prototxt) as an image or DOT text.")
    parser.add_argument("model")
    parser.add_argument("output", help="file to write; .png, .svg, .pdf or .dot")
    parser.add_argument("--rankdir", default="LR", choices=["LR", "TB", "BT", "RL"])
    parser.add_argument("--phase", choices=["TRAIN", "TEST", "ALL"], default="ALL")
    parser.add_argument("--display_lrm", action="store_true", help="show each layer's lr_mult values")
    args = parser.parse_args(argv)
    try:
        draw_net_to_file(args.model, args.output, args.rankdir,
                         None if args.phase == "ALL" else args.phase, args.display_lrm)
    except FirecaffeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
