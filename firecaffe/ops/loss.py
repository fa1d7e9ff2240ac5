"""Softmax and the losses and metrics built on scores: Softmax,
SoftmaxWithLoss, Accuracy, EuclideanLoss.

Caffe types and parameters:
  Softmax          softmax_param { axis (1) }
  SoftmaxWithLoss  softmax_param { axis }, loss_param { ignore_label, normalization
                   (VALID | FULL | BATCH_SIZE | NONE), legacy normalize }
                   bottoms: scores, labels (integers in floats); tops: loss (), [probabilities]
                   loss = -sum log p[label] / normalizer, the normalizer at least 1
  Accuracy         accuracy_param { top_k (1), axis (1), ignore_label }
                   tops: accuracy (), [per-class accuracy (C,)]; a label counts as
                   predicted when fewer than top_k other classes score >= its score
  EuclideanLoss    loss = sum((a - b)^2) / (2 N), N = the first dimension

Scores are viewed as (outer, C, inner) around the softmax axis; labels hold
outer*inner values. Loss layers scale their gradients by top[0].diff (the loss
weight, set by the net). SoftmaxWithLoss has a GPU path (the loss and its
gradient in firecaffe/kernels/softmax_loss.cu); the other layers here have one
path, written against ``xp``.
"""
import numpy as np

from ..core import backend
from ..errors import DataError, PrototxtError
from ..kernels import launch
from . import register
from .base import Layer

FLT_MIN = float(np.finfo(np.float32).tiny)     # Caffe clamps probabilities at FLT_MIN before log


def softmax(x, axis, out):
    """Numerically stable softmax of ``x`` along ``axis``, written into ``out``."""
    xp = backend.xp_of(x)
    xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)     # out may be x
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)


def _around(layer, blob, axis_param):
    """(outer, C, inner) of ``blob`` around its axis ``axis_param``."""
    try:
        axis = blob.canonical_axis(axis_param)
    except ValueError as exc:
        layer.fail(str(exc))
    return axis, blob.count_range(0, axis), blob.shape[axis], blob.count_range(axis + 1)


def _labels(layer, bottom, outer, classes, inner, ignore):
    """Integer labels (outer, inner) and the mask of positions that count;
    a label outside [0, classes) that is not ignore_label is a DataError."""
    xp = backend.xp_of(bottom[1].data)
    labels = bottom[1].data.reshape(outer, inner).astype(np.int64)
    valid = labels != ignore if ignore is not None else xp.ones(labels.shape, bool)
    bad = valid & ((labels < 0) | (labels >= classes))
    if bool(bad.any()):
        flat = bottom[1].data.reshape(-1)
        position = int(xp.flatnonzero(bad.reshape(-1))[0])
        per_sample = max(1, bottom[1].count // max(1, bottom[1].shape[0])) if bottom[1].ndim else 1
        sample = position // per_sample
        exc = layer.error(f"label {float(flat[position]):g} of sample {sample} in the batch is outside "
                          f"the {classes} classes [0, {classes})"
                          + (f" and is not ignore_label {ignore}" if ignore is not None else ""), DataError)
        exc.blob, exc.sample = bottom[1], sample      # the net names the record (Net.forward_layer)
        raise exc
    return xp.where(valid, labels, 0), valid


def _check_label_count(layer, bottom, outer, inner, axis):
    if outer * inner != bottom[1].count:
        layer.fail(f"the number of labels must match the number of predictions: scores "
                   f"{bottom[0].shape} along axis {axis} make {outer * inner} predictions, labels "
                   f"{bottom[1].shape} hold {bottom[1].count}")


@register("Softmax")
class Softmax(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        self.axis = _around(self, bottom[0], self.param.softmax_param.axis)[0]
        top[0].reshape_like(bottom[0])

    def forward(self, bottom, top):
        softmax(bottom[0].data, self.axis, top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = backend.xp_of(top[0].diff)
            y, dy, dx = top[0].data, top[0].diff, bottom[0].diff     # dx may be dy
            dot = (dy * y).sum(axis=self.axis, keepdims=True)
            xp.subtract(dy, dot, out=dx)
            dx *= y

    def flops(self, bottom, top):
        return 4 * bottom[0].count


class _Loss(Layer):
    is_loss = True

    def _check_first_dims(self, bottom):
        if bottom[0].ndim and bottom[1].ndim and bottom[0].shape[0] != bottom[1].shape[0]:
            self.fail(f"the data and label should have the same first dimension: "
                      f"{bottom[0].shape} vs {bottom[1].shape}")

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1

    @staticmethod
    def _weight(top):
        return float(top[0].diff.reshape(-1)[0])


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(_Loss):
    exact_num_bottom = 2
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        lp = self.param.loss_param
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        mode = lp.normalization
        if not lp.HasField("normalization") and lp.HasField("normalize"):
            mode = lp.VALID if lp.normalize else lp.BATCH_SIZE
        self.mode = lp.NormalizationMode.Name(mode)

    def reshape(self, bottom, top):
        self._check_first_dims(bottom)
        self.axis, self.outer, self.classes, self.inner = _around(self, bottom[0], self.param.softmax_param.axis)
        _check_label_count(self, bottom, self.outer, self.inner, self.axis)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape_like(bottom[0])

    def normalizer(self, valid_count):
        full = self.outer * self.inner
        value = {"FULL": full, "VALID": valid_count, "BATCH_SIZE": self.outer, "NONE": 1}[self.mode]
        return max(1.0, float(value))

    def forward_cpu(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        if len(top) > 1:
            self.prob = top[1].data
        elif getattr(self, "prob", None) is None or self.prob.shape != bottom[0].shape:
            self.prob = xp.empty_like(bottom[0].data)
        softmax(bottom[0].data, self.axis, self.prob)
        labels, valid = _labels(self, bottom, self.outer, self.classes, self.inner, self.ignore)
        prob = self.prob.reshape(self.outer, self.classes, self.inner)
        picked = xp.take_along_axis(prob, labels[:, None, :], axis=1)[:, 0, :]
        loss = -(xp.log(xp.maximum(picked, FLT_MIN)) * valid).sum()
        self.labels, self.valid = labels, valid
        self.norm = self.normalizer(int(valid.sum()))
        top[0].data[...] = loss / self.norm

    def backward_cpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            self.fail("cannot backpropagate to label inputs", PrototxtError)
        if not propagate_down[0]:
            return
        xp = backend.xp_of(bottom[0].data)
        prob = self.prob.reshape(self.outer, self.classes, self.inner)
        onehot = xp.arange(self.classes)[None, :, None] == self.labels[:, None, :]
        grad = (prob - onehot) * self.valid[:, None, :]
        grad *= self._weight(top) / self.norm
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)

    def forward_gpu(self, bottom, top):
        """Softmax with CuPy, then per-position loss and counts in one kernel
        (firecaffe/kernels/softmax_loss.cu); a count of -1 marks a bad label."""
        x = bottom[0].data
        xp = backend.xp_of(x)
        if len(top) > 1:
            self.prob = top[1].data
        elif getattr(self, "prob", None) is None or self.prob.shape != x.shape:
            self.prob = xp.empty_like(x)
        softmax(x, self.axis, self.prob)
        positions = self.outer * self.inner
        loss, counts = xp.empty(positions, dtype=x.dtype), xp.empty(positions, dtype=x.dtype)
        self.kernel_labels = xp.ascontiguousarray(bottom[1].data, dtype=x.dtype)
        launch("softmax_loss", "softmax_loss_forward", x.dtype, positions,
               (self.prob, self.kernel_labels, loss, counts) + self._kernel_args())
        valid, bad = (int(v) for v in backend.to_host(xp.stack([(counts > 0).sum(), (counts < 0).sum()])))
        if bad:
            _labels(self, bottom, self.outer, self.classes, self.inner, self.ignore)   # raises DataError
        self.norm = self.normalizer(valid)
        top[0].data[...] = loss.sum() / self.norm

    def backward_gpu(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            self.fail("cannot backpropagate to label inputs", PrototxtError)
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        launch("softmax_loss", "softmax_loss_backward", dx.dtype, dx.size,
               (self.prob, self.kernel_labels, dx) + self._kernel_args()
               + (dx.dtype.type(self._weight(top) / self.norm),))

    def _kernel_args(self):
        ignore = self.ignore
        return tuple(np.int32(v) for v in (self.outer, self.classes, self.inner, ignore is not None,
                                           ignore or 0))

    def flops(self, bottom, top):
        return 4 * bottom[0].count


@register("Accuracy")
class Accuracy(Layer):
    exact_num_bottom = 2
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        ap = self.param.accuracy_param
        self.top_k = int(ap.top_k)
        self.ignore = int(ap.ignore_label) if ap.HasField("ignore_label") else None

    def reshape(self, bottom, top):
        self.axis, self.outer, self.classes, self.inner = _around(self, bottom[0], self.param.accuracy_param.axis)
        if self.top_k > self.classes:
            self.fail(f"top_k ({self.top_k}) must be less than or equal to the number of classes "
                      f"({self.classes}, scores {bottom[0].shape})")
        _check_label_count(self, bottom, self.outer, self.inner, self.axis)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((self.classes,))

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        scores = bottom[0].data.reshape(self.outer, self.classes, self.inner)
        labels, valid = _labels(self, bottom, self.outer, self.classes, self.inner, self.ignore)
        true_score = xp.take_along_axis(scores, labels[:, None, :], axis=1)
        better = (scores >= true_score).sum(axis=1) - 1         # the true class itself is counted once
        correct = (better < self.top_k) & valid
        count = int(valid.sum())
        top[0].data[...] = float(correct.sum()) / count if count else 0.0
        if len(top) > 1:
            seen = xp.bincount(labels[valid], minlength=self.classes)
            hit = xp.bincount(labels[correct], minlength=self.classes)
            top[1].data[...] = xp.where(seen > 0, hit / xp.maximum(seen, 1), 0)

    def backward(self, top, propagate_down, bottom):
        """Accuracy is not differentiable; nothing flows back."""

    def allow_force_backward(self, bottom_index):
        return False


@register("EuclideanLoss")
class EuclideanLoss(_Loss):
    exact_num_bottom = 2
    exact_num_top = 1

    def reshape(self, bottom, top):
        self._check_first_dims(bottom)
        if bottom[0].count_range(1) != bottom[1].count_range(1):
            self.fail(f"inputs must have the same dimension: {bottom[0].shape} vs {bottom[1].shape}")
        top[0].reshape(())

    def forward(self, bottom, top):
        self.diff = bottom[0].data - bottom[1].data.reshape(bottom[0].shape)
        num = bottom[0].num
        top[0].data[...] = (self.diff * self.diff).sum() / num / 2

    def backward(self, top, propagate_down, bottom):
        scale = self._weight(top) / bottom[0].num
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                bottom[i].diff[...] = (self.diff * (sign * scale)).reshape(bottom[i].shape)

    def allow_force_backward(self, bottom_index):
        return True

    def flops(self, bottom, top):
        return 3 * bottom[0].count
