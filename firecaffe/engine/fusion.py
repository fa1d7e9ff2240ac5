"""ReLU fused into the Convolution before it, as oneDNN's eltwise post-op; and the other
fusions planned once per net (a Concat or a max pooling computing its bottoms' ReLU backwards,
``plan_bottom_relu``;
BatchNorm -> Scale -> ReLU as one chain, ``plan_norm``).

The plan is made once per net (``plan``, at construction): a Convolution and the
ReLU right after it fuse when
- the convolution runs on oneDNN (float32, ``engine`` not CAFFE, the library loaded)
  and has one top, which carries no loss weight;
- the ReLU is in place on that very blob (bottom and top are the convolution's top),
  its ``engine`` is not CAFFE and it carries no loss weight;
- the ReLU is the next layer, so no other layer reads the pre-ReLU values (a top that
  another layer also reads gets a Split first, and the ReLU then reads the Split's copy:
  not in place on the convolution's top, not fused);
- oneDNN gives the fused forward a direct kernel in the net's shapes (``relu_pays`` in
  ops/dnnl/conv.py: its gemm convolutions, e.g. 1x1 layers, run post-ops in a slow extra pass;
  checked again for each new shape at run time);
- the process allows it (on by default; FIRECAFFE_FUSE_RELU=0 turns it off, core/options.py) and the
  net is not on a GPU.
Whether a pair fuses in one pass is decided by ``Net.forward_range``: only when both
layers run in that pass (forward(end='conv1') leaves conv1's top without the ReLU,
forward(start='relu1') applies the ReLU to what the blob holds) and no forward hook
watches the layers one by one (a hook after the convolution would see its top already
through the ReLU). The convolution may still decline at run time (device arrays, oneDNN
refusing the fused shape, or inputs that could make a NaN, below): then both layers run as usual.

Exactness: oneDNN's eltwise_relu computes s > 0 ? s : alpha * s on the convolution's
float32 result, Caffe's rule for every slope; for slope 0 a second post-op adds +0, so
that a negative result gives +0 as np.maximum does (the gemm kernels' alpha * s is -0).
Measured bit for bit equal to the convolution then firecaffe's ReLU for finite values
(tests/engine/test_relu_fusion.py). Not for non-finite ones with slope 0: the
direct kernels' max(s, 0) turns a NaN and -inf into 0, where the ReLU layer, as Caffe's,
passes a NaN on and turns -inf into NaN (0 * -inf). So the convolution fuses only
when its outputs cannot be non-finite: before each fused forward, ``_sums_bounded``
(ops/conv.py) checks that the inputs and weights are finite and that ||x|| ||w|| + max |bias|
bounds every output and partial sum far below float32's overflow (two BLAS dots); otherwise
that forward runs unfused. A diverging net therefore shows Caffe's NaN exactly as unfused.
Backward is the ReLU's own, reading its top, which holds what the unfused pass would have
left there.
"""
from ..core import backend
from ..core.options import environment


def _allowed(net, switch="fuse_relu"):
    return getattr(environment(), switch) and not backend.gpu_enabled() and not net.shapes_only


def _relu_in_place_on(net, j, blob):
    """Whether layer j is a ReLU in place on ``blob`` alone (bottom and top), engine not CAFFE,
    no loss weight: one whose work another layer may do for it."""
    relu = net.layers[j]
    if relu.type != "ReLU" or len(net.bottom_vecs[j]) != 1 or len(net.top_vecs[j]) != 1:
        return False
    p = relu.param.relu_param
    return net.bottom_vecs[j][0] is blob and net.top_vecs[j][0] is blob and p.engine != p.CAFFE \
        and not any(relu.loss_weights)


def plan(net):
    """{index of a Convolution: negative slope of the ReLU fused into it (the next layer)}."""
    if not _allowed(net):
        return {}
    fused = {}
    for i in range(len(net.layers) - 1):
        conv, relu, top = net.layers[i], net.layers[i + 1], net.top_vecs[i]
        if conv.type != "Convolution" or not hasattr(conv, "forward_relu") or not conv.use_dnnl \
                or len(top) != 1:
            continue
        if _relu_in_place_on(net, i + 1, top[0]) and not any(conv.loss_weights) \
                and not relu.reshape_every_forward and not conv.reshape_every_forward \
                and conv.relu_fusable(relu.negative_slope):
            fused[i] = relu.negative_slope
    return fused


def plan_bottom_relu(net):
    """{index of a Concat or a MAX Pooling: {bottom number: index of the in-place ReLU (slope 0) that
    made that bottom}}: the ReLU backwards that the layer's backward computes as well, saving a pass
    over each such bottom. A Concat (``Concat.backward_relu``, ops/shape.py) writes its top diff's
    slice times (bottom > 0), bit for bit the copy then the ReLU's backward. A MAX Pooling of one top
    (``Pooling.backward_relu``, ops/pooling.py) masks its top diff with (top > 0) before routing it to
    the windows' maxima (the ReLU commutes with max pooling): one pass over the smaller pooled blob,
    equal values (the sign of an exact zero may differ); it also needs its top's values intact at
    backward, so no later layer may write that top in place. A bottom qualifies when its last
    producer before the layer is a ReLU in place on it, slope 0, engine not CAFFE, no loss weight,
    not part of a chain (``plan_norm``, ``plan_eltwise``: those compute its backward already), and
    no other layer reads or writes the blob between the two or after the layer (so its diff is the
    layer's when the ReLU's backward would read it, and nothing else reads that diff before); the
    layer carries no loss weight and names the blob once."""
    if not _allowed(net):
        return {}
    in_chains = {j for chain in net.chains.values() for j in chain}     # planned before this
    planned = {}
    for i, layer in enumerate(net.layers):
        if layer.type not in ("Concat", "Pooling") or any(layer.loss_weights) \
                or not hasattr(layer, "backward_relu"):
            continue
        if layer.type == "Pooling" and (layer.method != "MAX" or len(net.top_vecs[i]) != 1 or any(
                t is net.top_vecs[i][0] for m in range(i + 1, len(net.layers)) for t in net.top_vecs[m])):
            continue
        bottoms = net.bottom_vecs[i]
        for k, blob in enumerate(bottoms):
            if sum(b is blob for b in bottoms) != 1:
                continue
            j = next((j for j in range(i - 1, -1, -1) if any(t is blob for t in net.top_vecs[j])), None)
            if j is None or j in in_chains or not _relu_in_place_on(net, j, blob) \
                    or net.layers[j].negative_slope != 0:
                continue
            touched = any(any(b is blob for b in (*net.bottom_vecs[m], *net.top_vecs[m]))
                          for m in (*range(j + 1, i), *range(i + 1, len(net.layers))))
            if not touched:
                planned.setdefault(i, {})[k] = j
    return planned


def bottom_relus(net, i, end, propagate):
    """For a backward pass reaching down to layer ``end``: the bottoms of layer i whose ReLU
    backward it computes now (as a set) and those ReLUs' indices, from the plan; ``propagate``
    is what each layer's backward is asked to compute (``Net.bottom_need_backward``, or every
    layer's as `firecaffe time` runs them). Empty where the ReLU would not run its backward."""
    masked = {k for k, j in net.bottom_relu.get(i, {}).items()
              if j >= end and propagate[i][k] and propagate[j][0]}
    return masked, {net.bottom_relu[i][k] for k in masked}


def plan_norm(net):
    """{index of a BatchNorm: (index of the Scale after it, and of the ReLU after that if one
    comes)}: the chains that ``BatchNorm.forward_chain`` and ``backward_chain`` (ops/batch_norm.py)
    compute in three passes forward and two backward instead of eight and five, every value
    bit for bit the separate layers' (ResNet's conv -> BatchNorm -> Scale -> ReLU). A chain is
    - a BatchNorm of one bottom and one top, no loss weight;
    - the next layer a Scale with one bottom (its scale learned), in place on that top, no loss
      weight: then no other layer reads the BatchNorm's output (it would read a Split's copy);
    - optionally the layer after it a ReLU in place on that blob, engine not CAFFE, no loss weight;
    - none of them reshaping at every forward, FIRECAFFE_FUSE_NORM not 0, the net not on a GPU.
    At run time the chain checks the rest (NumPy arrays, one scale and bias per channel) and
    otherwise leaves the layers to run one by one. ``Net.forward_range`` runs a chain only when
    all its layers run in that pass and no hook watches the layers one by one; backward likewise
    (``Net.backward_chain``), and only where every layer of it propagates down. The forward,
    fused or not, leaves what either backward reads, so they may differ."""
    if not _allowed(net, "fuse_norm"):
        return {}
    chains = {}
    for i in range(len(net.layers) - 1):
        bn, scale = net.layers[i], net.layers[i + 1]
        top = net.top_vecs[i]
        if bn.type != "BatchNorm" or len(net.bottom_vecs[i]) != 1 or len(top) != 1 \
                or scale.type != "Scale" or len(net.bottom_vecs[i + 1]) != 1 \
                or net.bottom_vecs[i + 1][0] is not top[0] or net.top_vecs[i + 1] != [top[0]] \
                or any(bn.loss_weights) or any(scale.loss_weights) \
                or bn.reshape_every_forward or scale.reshape_every_forward:
            continue
        chain = (i + 1,)
        if i + 2 < len(net.layers) and _relu_in_place_on(net, i + 2, top[0]) \
                and not net.layers[i + 2].reshape_every_forward:
            chain = (i + 1, i + 2)
        chains[i] = chain
    return chains


def plan_eltwise(net):
    """{index of an Eltwise: (index of the ReLU after it,)}: an element-wise sum (every coeff 1)
    whose next layer is a ReLU in place on its top (ResNet's residual sum then ReLU), computed by
    ``Eltwise.forward_chain`` / ``backward_chain`` (ops/eltwise.py) in one pass over the blob each
    way instead of two, per cache-sized piece the two layers' own arithmetic (the sum, then the
    ReLU layer's ``relu_piece``; backward its ``relu_grad``, then the copies into the bottoms'
    diffs): bit for bit theirs. Same conditions as the convolution's ReLU (``_relu_in_place_on``,
    no loss weights, FIRECAFFE_FUSE_RELU not 0, not on a GPU), and the same rules for when a pass
    runs it (``Net.forward_range``/``backward_chain``)."""
    if not _allowed(net):
        return {}
    planned = {}
    for i in range(len(net.layers) - 1):
        layer, top = net.layers[i], net.top_vecs[i]
        if layer.type != "Eltwise" or len(top) != 1 or not hasattr(layer, "forward_chain") \
                or not layer.sums_plainly() or any(layer.loss_weights) or layer.reshape_every_forward:
            continue
        if _relu_in_place_on(net, i + 1, top[0]) and not net.layers[i + 1].reshape_every_forward:
            planned[i] = (i + 1,)
    return planned


def engine_word(net, i):
    """'fused into <conv>' for a ReLU whose forward its convolution computes, 'fused into <leader>'
    for a layer of a chain (a BatchNorm's Scale and ReLU, an Eltwise's ReLU), else None."""
    leader = next((k for k, chain in net.chains.items() if i in chain), None)
    if leader is not None:
        return f"fused into {net.layers[leader].name}"
    conv = net.layers[i - 1] if i - 1 in net.relu_fusion else None
    if conv is not None and conv.use_dnnl and conv.relu_fusable(net.relu_fusion[i - 1]):
        return f"fused into {conv.name}"
    return None
