"""`firecaffe test`'s scoring: the net's outputs over batches of its own batch
size, spread over the ranks, giving the numbers one process gives.

Batch k holds stream positions [k*b, (k+1)*b) of the data source, b being the
data layer's batch_size; rank r of p scores batches r, r+p, r+2p, ..., which is
what its ShardCursor reads. By default the batches cover the source once: the
last holds only the samples left (its data tops are cut to them before the rest
of the net runs), so every sample counts exactly once whatever the rank count.
With a number of batches given, each is full and the stream wraps, as in Caffe.
Means are weighted by samples, which for equal batches is Caffe's mean over batches.
"""
from ..core import backend


class Plan:
    """Which batches to score: ``batches`` of ``batch`` samples (the last one of
    ``last`` samples), over a source of ``samples`` (None when unknown)."""

    def __init__(self, samples, batch, iterations=None):
        self.samples, self.batch = samples, batch or 1      # no source: every batch weighs the same
        if iterations is None and samples and batch:
            self.batches = -(-samples // batch)
            self.last = samples - (self.batches - 1) * batch
        else:
            self.batches = iterations or 50
            self.last = self.batch

    def sizes(self, rank, size):
        """[(batch index, samples in it)] that ``rank`` of ``size`` scores, in the order
        its cursor reads them (None for a step where it has no batch)."""
        steps = -(-self.batches // size)
        out = []
        for step in range(steps):
            k = step * size + rank
            out.append(None if k >= self.batches else (k, self.last if k == self.batches - 1 else self.batch))
        return out


def source_of(net):
    """(the first layer reading a source of known size through a cursor, its index), or
    (None, None) (WindowData draws windows at random: no pass over a source)."""
    for i, layer in enumerate(net.layers):
        if getattr(getattr(layer, "cursor", None), "num_samples", None):
            return layer, i
    return None, None


def score(net, plan, rank=0, size=1):
    """This rank's records [(batch index, samples, loss, {output: values})]."""
    source, index = source_of(net)
    records = []
    for entry in plan.sizes(rank, size):
        if entry is None:                       # only at the last step: nothing left for this rank
            continue
        k, samples = entry
        if source is not None and samples < plan.batch:
            loss = _forward_cut(net, index, samples)
        else:
            loss = net.forward_range()
        outputs = {name: backend.to_host(net.blobs[name].data).astype(float).ravel().copy()
                   for name in net.outputs}
        records.append((k, samples, float(loss), outputs))
    return records


def _forward_cut(net, index, samples):
    """Forward with the data tops cut to their first ``samples`` rows after the data
    layers ran (layers up to the first source's index), then the rest of the net."""
    net.forward_range(0, index)
    cut = [top for i in range(index + 1) if net.layers[i].is_data for top in net.top_vecs[i]]
    for top in cut:
        rows = top.data[:samples].copy()
        top.reshape((samples,) + tuple(top.shape[1:]))
        top.data[...] = rows
    return net.forward_range(index + 1, None)


def means(records):
    """(samples, mean loss, {output: mean values}) over ``records``, weighted by samples;
    an output whose size changes with the batch (one value per sample) is averaged
    over the batches of its usual size."""
    total = sum(n for _, n, _, _ in records)
    loss = sum(n * value for _, n, value, _ in records) / total
    out = {}
    for name in records[0][3]:
        usual = max((r[3][name].size for r in records), key=[r[3][name].size for r in records].count)
        kept = [(n, r[name]) for _, n, _, r in records if r[name].size == usual]
        out[name] = sum(n * v for n, v in kept) / sum(n for n, _ in kept)
    return total, loss, out
