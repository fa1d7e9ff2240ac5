"""Layer: Caffe's layer lifecycle (setup, reshape, forward, backward).

A subclass declares its arity and fills in ``reshape``, ``forward`` and ``backward``
(and optionally ``layer_setup`` and ``flops``); the base class checks arity and
handles loss weights (``forward_and_loss``, what the Net calls). A layer written
once against ``xp`` runs on NumPy and CuPy arrays alike in ``forward``/``backward``.
A layer with kernels of its own defines ``forward_cpu``/``forward_gpu`` (and the
backward pair) side by side in its own file instead, and the array's type picks
one (Chainer's rule; not the global mode, which only says where new arrays go).
"""
import numpy as np

from ..core import backend
from ..core.blob import Blob
from ..errors import ShapeError


class Layer:
    fill_blobs = True        # False in a shapes-only net: parameter blobs stay unfilled zeros
    exact_num_bottom = None
    min_num_bottom = None
    max_num_bottom = None
    exact_num_top = None
    min_num_top = None
    max_num_top = None
    is_loss = False          # loss layers default to loss_weight 1 on their first top
    is_data = False          # reads a source; the net gives it its shard (``shard``)
    frozen_blobs = ()        # indices of blobs that are statistics, never learned
    reshape_every_forward = False   # Caffe reshapes before every forward; the net does so when a
                                    # bottom changed shape, and forward() always for layers that set this

    def __init__(self, param, phase="TRAIN", dtype=np.float32):
        self.param = param
        self.name = param.name
        self.type = param.type
        self.phase = phase
        self.dtype = np.dtype(dtype)
        self.blobs = []      # learnable parameter blobs (weights, bias, ...)
        self.loss_weights = []

    # --- lifecycle -------------------------------------------------------
    def setup(self, bottom, top):
        self.check_arity(bottom, top)
        self.layer_setup(bottom, top)
        self.reshape(bottom, top)
        self.set_loss_weights(top)

    def layer_setup(self, bottom, top):
        """One-time setup from the layer's parameters (create and fill blobs)."""

    def reshape(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__}.reshape")

    def forward_and_loss(self, bottom, top):
        """Caffe's Layer::Forward: reshape where the layer asks every time, compute the tops, and
        return this layer's weighted contribution to the loss."""
        if self.reshape_every_forward:
            self.reshape(bottom, top)
        self.forward(bottom, top)
        loss = 0.0
        for blob, weight in zip(top, self.loss_weights):
            if weight:
                loss += weight * float(blob.data.sum())
        return loss

    def forward(self, bottom, top):
        """Compute the tops. A layer written once against ``xp`` overrides ``forward`` and ``backward``;
        this default is for a layer with a path per device: the array's type decides (Chainer's rule),
        ``forward_gpu`` for device arrays, ``forward_cpu`` for host arrays."""
        (self.forward_gpu if backend.on_device((*top, *bottom)) else self.forward_cpu)(bottom, top)

    def backward(self, top, propagate_down, bottom):
        """Gradients for the bottoms (as ``forward``: overridden, or a path per device)."""
        (self.backward_gpu if backend.on_device((*top, *bottom)) else self.backward_cpu)(top, propagate_down, bottom)

    def forward_cpu(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward_cpu(self, top, propagate_down, bottom):
        """Default for layers with nothing to propagate (data, accuracy, silence)."""

    def forward_gpu(self, bottom, top):
        """A layer that reads on the host (a data layer without staging) fills device tops itself."""
        self.forward_cpu(bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        self.backward_cpu(top, propagate_down, bottom)

    # --- information for the net and for `firecaffe analyze` ---------------
    def flops(self, bottom, top):
        """Forward multiply-adds counted as 2 FLOPs; 0 where negligible."""
        return 0

    def allow_force_backward(self, bottom_index):
        return True

    def auto_top_blobs(self):
        """Caffe's AutoTopBlobs: the net adds anonymous tops a prototxt leaves out."""
        return self.is_loss

    def describe_sample(self, n):
        """Where sample ``n`` of the batch in a data layer's tops came from, or None."""
        return None

    # --- helpers for subclasses --------------------------------------------
    def check_arity(self, bottom, top):
        for what, blobs, exact, lo, hi in (
                ("bottom", bottom, self.exact_num_bottom, self.min_num_bottom, self.max_num_bottom),
                ("top", top, self.exact_num_top, self.min_num_top, self.max_num_top)):
            n = len(blobs)
            if exact is not None and n != exact:
                self.fail(f"takes exactly {exact} {what} blob(s), got {n}")
            if lo is not None and n < lo:
                self.fail(f"takes at least {lo} {what} blob(s), got {n}")
            if hi is not None and n > hi:
                self.fail(f"takes at most {hi} {what} blob(s), got {n}")

    def set_loss_weights(self, top):
        weights = list(self.param.loss_weight)
        if not weights and self.is_loss:
            weights = [1.0] + [0.0] * (len(top) - 1)
        if weights and len(weights) != len(top):
            self.fail(f"has {len(weights)} loss_weight value(s) for {len(top)} top blob(s)")
        self.loss_weights = weights + [0.0] * (len(top) - len(weights))

    def fail(self, message, error=ShapeError):
        """Raise an error that names this layer."""
        raise self.error(message, error)

    def error(self, message, error=ShapeError):
        """The error ``fail`` raises, for callers that attach more to it."""
        return error(f"layer '{self.name}' ({self.type}): {message}")

    def make_blob(self, shape, filler=None):
        """A new parameter blob of ``shape``, filled by the FillerParameter ``filler``."""
        from ..core.fillers import fill
        blob = Blob(shape, self.dtype, name=f"{self.name}[{len(self.blobs)}]")
        blob.learnable = True
        if filler is not None and self.fill_blobs:
            blob.write(backend.xp().asarray(fill(filler, blob.shape, self.dtype)))
        self.blobs.append(blob)
        return blob

    def __repr__(self):
        return f"<{self.type} layer '{self.name}'>"
