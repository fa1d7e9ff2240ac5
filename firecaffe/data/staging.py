"""Batches of HDF5Data and Data on a GPU: read one batch ahead into pinned host
memory and copy it to the device on a stream of its own, while the net computes.

``staged_forward`` is the ``forward_gpu`` of those layers. Each forward

1. takes the batch staged by the previous forward, if it is still the batch due
   now: the current stream waits for the copy's event, then copies the staged
   device buffer into the tops (device to device, so nothing the net still
   reads is overwritten); otherwise it reads the batch due now at once;
2. stages the next batch: the layer's own ``forward_cpu`` fills the pinned host
   buffers, and an asynchronous copy to the staging device buffers starts on a
   non-blocking stream, overlapping the rest of the iteration.

The tops and the staging buffers are the two buffers of a double buffer. The
read position is not moved by staging (``cursor.position`` is put back), so
``get_state`` always names the next batch the net will consume. Random draws
of the transformer (crop, mirror) are made on a copy of the global generator:
a staged batch is taken only if the generator is still where it was when the
batch was read (then it is advanced as a direct read would have), and only if
the cursor still points at the staged indices, so a ``set_state``, a restored
snapshot or another net drawing in between make it read again, never differ.
"""
import copy

import numpy as np

from ..core import backend


class _HostBlob:
    """Where ``forward_cpu`` assembles one top: a NumPy view of pinned memory."""

    def __init__(self, cupy, shape, dtype):
        self.dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        self.memory = cupy.cuda.alloc_pinned_memory(max(count * self.dtype.itemsize, 1))
        self.data = np.frombuffer(self.memory, self.dtype, count).reshape(shape)

    @property
    def shape(self):
        return self.data.shape


class Stager:
    """Pinned host buffers, device buffers and a copy stream for one layer's tops."""

    def __init__(self, cupy, top):
        self.cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.hosts = [_HostBlob(cupy, blob.shape, blob.dtype) for blob in top]
        self.devices = [cupy.empty(blob.shape, dtype=blob.dtype) for blob in top]
        self.copied = None      # event: the last copy out of the pinned buffers has finished
        self.taken = None       # event: the tops have taken the staging device buffers
        self.staged = None      # (indices, generator state before, after or None) of the staged batch

    def fits(self, top):
        return all(d.shape == b.shape and d.dtype == b.dtype for d, b in zip(self.devices, top))

    def read_now(self, layer, bottom, top):
        """Read the batch due now straight into the tops (through the pinned buffers)."""
        self._wait_copied()
        layer.forward_cpu(bottom, self.hosts)
        for blob, host in zip(top, self.hosts):
            blob.data.set(host.data)        # on the current stream; asynchronous from pinned memory
        self.copied = self.cupy.cuda.get_current_stream().record()

    def take(self, layer, top):
        """Move the staged batch into ``top`` if it is the batch due now; whether it was."""
        staged, self.staged = self.staged, None
        if staged is None:
            return False
        indices, before, after = staged
        if not np.array_equal(indices, layer.cursor.peek()):
            return False
        gen = backend.rng()
        if after is not None:
            if gen.bit_generator.state != before:
                return False
            gen.bit_generator.state = after
        stream = self.cupy.cuda.get_current_stream()
        stream.wait_event(self.copied)
        for blob, device in zip(top, self.devices):
            blob.data[...] = device
        self.taken = stream.record()
        layer.cursor.next()
        layer.batch_indices = indices
        return True

    def stage(self, layer, bottom):
        """Read the next batch into the pinned buffers and start copying it to the device."""
        cursor, gen = layer.cursor, backend.rng()
        position, indices = cursor.position, cursor.peek()
        in_tops = getattr(layer, "batch_indices", None)     # forward_cpu below reads the next batch
        before = gen.bit_generator.state
        mine = copy.deepcopy(gen)
        self._wait_copied()
        try:
            with backend.using_rng(mine):
                layer.forward_cpu(bottom, self.hosts)
        except Exception:       # noqa: BLE001 - read again when due, and raised then
            return
        finally:
            cursor.position = position
            layer.batch_indices = in_tops
        after = mine.bit_generator.state
        if self.taken is not None:
            self.stream.wait_event(self.taken)
        for host, device in zip(self.hosts, self.devices):
            device.set(host.data, stream=self.stream)
        self.copied = self.stream.record()
        self.staged = (indices, before, None if after == before else after)

    def _wait_copied(self):
        if self.copied is not None:
            self.copied.synchronize()


def staged_forward(layer, bottom, top):
    """``forward_gpu`` of a layer reading through ``layer.cursor`` with ``forward_cpu``."""
    cupy = backend.xp_of(top[0].data)
    if cupy is np:
        return layer.forward_cpu(bottom, top)
    stager = getattr(layer, "_stager", None)
    if stager is None or not stager.fits(top):
        if stager is not None:
            stager._wait_copied()       # no copy may still write buffers handed back to the pools
        stager = layer._stager = Stager(cupy, top)
    if not stager.take(layer, top):
        stager.read_now(layer, bottom, top)
    stager.stage(layer, bottom)
