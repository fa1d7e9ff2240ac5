"""More of Caffe's losses: ContrastiveLoss, HingeLoss, SigmoidCrossEntropyLoss
(InfogainLoss and MultinomialLogisticLoss are in loss_logistic.py).

Caffe types and parameters (N = the first dimension of bottom[0]):
  ContrastiveLoss   contrastive_loss_param { margin (1), legacy_version (false) }
                    bottoms a, b (N, C[, 1, 1]), similar (N[, 1, 1, 1]; truncated to int);
                    loss = sum(similar ? d^2 : max(margin - d, 0)^2) / 2N, d = |a - b|
                    (legacy: max(margin - d^2, 0)); the dissimilar gradient divides by d + 1e-4
  HingeLoss         hinge_loss_param { norm (L1 | L2) }; bottoms scores (N, ...), labels (N)
                    t_nk = max(0, 1 -/+ x_nk) (minus for k = label); loss = sum(t) / N or sum(t^2) / N
  SigmoidCrossEntropyLoss  loss_param { ignore_label, normalization (BATCH_SIZE by default here) };
                    bottoms scores, targets (same count); loss = sum of the cross-entropies of
                    sigmoid(x) against the targets / normalizer

Label-like bottoms (similar, labels, targets) receive no gradient: asking for
one is an error, and force_backward leaves them out.
"""
import numpy as np

from ..core import backend
from ..errors import PrototxtError
from . import register
from .base import Layer
from .loss import _labels


class ExtraLoss(Layer):
    is_loss = True
    exact_num_top = 1
    data_bottoms = 1        # bottoms before this index can receive gradients

    def reshape(self, bottom, top):
        if bottom[0].ndim and bottom[1].ndim and bottom[0].shape[0] != bottom[1].shape[0]:
            self.fail(f"the data and label should have the same first dimension: "
                      f"{bottom[0].shape} vs {bottom[1].shape}")
        top[0].reshape(())

    def allow_force_backward(self, bottom_index):
        return bottom_index < self.data_bottoms

    def refuse_label_gradients(self, propagate_down):
        for i in range(self.data_bottoms, len(propagate_down)):
            if propagate_down[i]:
                self.fail(f"cannot backpropagate to bottom {i} (labels)", PrototxtError)

    @staticmethod
    def weight(top):
        return float(top[0].diff.reshape(-1)[0])

    def flops(self, bottom, top):
        return 3 * bottom[0].count


def normalization_mode(layer, default):
    """Caffe's loss normalization mode name: normalization when given, else the
    legacy normalize (true: VALID, false: BATCH_SIZE), else ``default``."""
    lp = layer.param.loss_param
    if lp.HasField("normalization"):
        return lp.NormalizationMode.Name(lp.normalization)
    if lp.HasField("normalize"):
        return "VALID" if lp.normalize else "BATCH_SIZE"
    return default


def normalizer(mode, outer, inner, valid):
    value = {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return max(1.0, float(value))


@register("ContrastiveLoss")
class ContrastiveLoss(ExtraLoss):
    exact_num_bottom = 3
    data_bottoms = 2

    def layer_setup(self, bottom, top):
        p = self.param.contrastive_loss_param
        self.margin, self.legacy = float(p.margin), bool(p.legacy_version)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        a, b, s = bottom
        if a.channels != b.channels or a.height != 1 or a.width != 1 or b.height != 1 or b.width != 1 \
                or a.shape[0] != b.shape[0]:
            self.fail(f"a and b must be (N, C, 1, 1) of one shape, got {a.shape} and {b.shape}")
        if s.count != a.shape[0]:
            self.fail(f"the similarity bottom must hold one value per pair (N, 1, 1, 1), got {s.shape}")

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        n = bottom[0].shape[0]
        self.diff = (bottom[0].data - bottom[1].data).reshape(n, -1)
        self.dist_sq = (self.diff * self.diff).sum(axis=1)
        self.similar = bottom[2].data.reshape(-1).astype(np.int64) != 0
        if self.legacy:
            apart = xp.maximum(self.margin - self.dist_sq, 0)
        else:
            apart = xp.maximum(self.margin - xp.sqrt(self.dist_sq), 0) ** 2
        top[0].data[...] = xp.where(self.similar, self.dist_sq, apart).sum() / n / 2

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradients(propagate_down)
        xp = backend.xp_of(self.diff)
        n = bottom[0].shape[0]
        if self.legacy:
            gap = self.margin - self.dist_sq
            factor = -1.0
        else:
            dist = xp.sqrt(self.dist_sq)
            gap = self.margin - dist
            factor = -gap / (dist + 1e-4)
        factor = xp.where(self.similar, 1.0, xp.where(gap > 0, factor, 0.0))
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                alpha = sign * self.weight(top) / n
                bottom[i].diff[...] = (self.diff * (alpha * factor)[:, None]).reshape(bottom[i].shape)


@register("HingeLoss")
class HingeLoss(ExtraLoss):
    exact_num_bottom = 2

    def layer_setup(self, bottom, top):
        p = self.param.hinge_loss_param
        self.norm = p.Norm.Name(p.norm)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[1].count != bottom[0].shape[0]:
            self.fail(f"needs one label per sample: scores {bottom[0].shape}, labels {bottom[1].shape}")

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        n = bottom[0].shape[0]
        scores = bottom[0].data.reshape(n, -1)
        labels, _ = _labels(self, bottom, n, scores.shape[1], 1, None)
        self.sign = xp.ones_like(scores)
        self.sign[xp.arange(n), labels[:, 0]] = -1
        self.margin = xp.maximum(0, 1 + scores * self.sign)
        total = self.margin.sum() if self.norm == "L1" else (self.margin * self.margin).sum()
        top[0].data[...] = total / n

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradients(propagate_down)
        if not propagate_down[0]:
            return
        xp = backend.xp_of(self.margin)
        n = bottom[0].shape[0]
        signed = self.margin * self.sign
        if self.norm == "L1":
            grad = xp.sign(signed) * (self.weight(top) / n)
        else:
            grad = signed * (self.weight(top) * 2 / n)
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(ExtraLoss):
    """Normalized by the batch size unless loss_param says otherwise (Caffe's
    default here, unlike SoftmaxWithLoss); a target is ignored when its value
    truncated to an integer equals ignore_label."""
    exact_num_bottom = 2

    def layer_setup(self, bottom, top):
        lp = self.param.loss_param
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(self, "BATCH_SIZE")

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count != bottom[1].count:
            self.fail(f"scores and targets must have the same count: {bottom[0].shape} vs {bottom[1].shape}")

    def forward(self, bottom, top):
        x, t = bottom[0].data, bottom[1].data.reshape(bottom[0].shape)
        xp = backend.xp_of(x)
        self.sigmoid = 0.5 * xp.tanh(0.5 * x) + 0.5
        positive = x >= 0
        per_element = x * (t - positive) - xp.log1p(xp.exp(x - 2 * x * positive))
        self.valid = None if self.ignore is None else t.astype(np.int64) != self.ignore
        if self.valid is not None:
            per_element = per_element * self.valid
        valid = x.size if self.valid is None else int(self.valid.sum())
        self.norm = normalizer(self.mode, x.shape[0] if x.ndim else 1, x[0].size if x.ndim else 1, valid)
        top[0].data[...] = -per_element.sum() / self.norm

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradients(propagate_down)
        if not propagate_down[0]:
            return
        grad = self.sigmoid - bottom[1].data.reshape(bottom[0].shape)
        if self.valid is not None:
            grad = grad * self.valid
        bottom[0].diff[...] = grad * (self.weight(top) / self.norm)
