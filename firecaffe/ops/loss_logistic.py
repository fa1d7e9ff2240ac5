"""Losses on log probabilities: MultinomialLogisticLoss and InfogainLoss.

Caffe types and parameters (N = the first dimension of bottom[0]):
  MultinomialLogisticLoss  bottoms probabilities (N, ...), labels (N); loss = -sum log p[label] / N
  InfogainLoss      infogain_loss_param { source, axis (1) }, loss_param { ignore_label, normalization
                    (VALID) }; bottoms scores, labels[, H (C x C)]; tops loss[, probabilities];
                    a softmax of the scores p, loss = -sum_l H[label, l] log p_l / normalizer

Probabilities are clamped at 1e-20 before log, as Caffe does. Labels and H take
no gradient: asking for one is an error, and force_backward leaves them out.
"""

from ..core import backend
from ..errors import PrototxtError
from . import register
from .loss import _around, _labels, softmax
from .loss_extra import ExtraLoss, normalizer

LOG_THRESHOLD = 1e-20


@register("MultinomialLogisticLoss")
class MultinomialLogisticLoss(ExtraLoss):
    exact_num_bottom = 2

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        label = bottom[1]
        if label.channels != 1 or label.height != 1 or label.width != 1 or label.count != bottom[0].shape[0]:
            self.fail(f"labels must be (N, 1, 1, 1) or (N), got {label.shape}")

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        n = bottom[0].shape[0]
        prob = bottom[0].data.reshape(n, -1)
        labels, _ = _labels(self, bottom, n, prob.shape[1], 1, None)
        self.labels = labels[:, 0]
        self.picked = xp.maximum(prob[xp.arange(n), self.labels], prob.dtype.type(LOG_THRESHOLD))
        top[0].data[...] = -xp.log(self.picked).sum() / n

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradients(propagate_down)
        if not propagate_down[0]:
            return
        xp = backend.xp_of(self.picked)
        n = bottom[0].shape[0]
        dx = bottom[0].diff.reshape(n, -1)
        dx[...] = 0
        dx[xp.arange(n), self.labels] = (-self.weight(top) / n) / self.picked


@register("InfogainLoss")
class InfogainLoss(ExtraLoss):
    """H comes from a third bottom or from infogain_loss_param.source (a
    binaryproto); the scores go through a softmax first (Caffe's behaviour)."""
    min_num_bottom = 2
    max_num_bottom = 3
    exact_num_top = None
    min_num_top = 1
    max_num_top = 2

    def layer_setup(self, bottom, top):
        lp = self.param.loss_param
        if lp.HasField("normalize"):
            self.fail("loss_param.normalize is deprecated here; use normalization", PrototxtError)
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = lp.NormalizationMode.Name(lp.normalization)
        self.stored_h = None
        if len(bottom) < 3:
            p = self.param.infogain_loss_param
            if not p.source:
                self.fail("needs the infogain matrix H: a third bottom or infogain_loss_param.source",
                          PrototxtError)
            from ..proto.io import blob_to_array, read_blobproto
            self.stored_h = backend.xp().asarray(blob_to_array(read_blobproto(p.source), self.dtype))

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.axis, self.outer, self.classes, self.inner = _around(self, bottom[0],
                                                                  self.param.infogain_loss_param.axis)
        if self.outer * self.inner != bottom[1].count:
            self.fail(f"the number of labels must match the number of predictions: scores {bottom[0].shape} "
                      f"along axis {self.axis} make {self.outer * self.inner}, labels {bottom[1].shape} "
                      f"hold {bottom[1].count}")
        h_count = bottom[2].count if len(bottom) > 2 else self.stored_h.size
        if h_count != self.classes ** 2:
            self.fail(f"H must be {self.classes} x {self.classes} (the classes along axis {self.axis}), "
                      f"it holds {h_count} values")
        if len(top) > 1:
            top[1].reshape_like(bottom[0])

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def _h(self, bottom):
        h = bottom[2].data if len(bottom) > 2 else self.stored_h
        return h.reshape(self.classes, self.classes)

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        self.prob = top[1].data if len(top) > 1 else xp.empty_like(bottom[0].data)
        softmax(bottom[0].data, self.axis, self.prob)
        labels, valid = _labels(self, bottom, self.outer, self.classes, self.inner, self.ignore)
        prob = self.prob.reshape(self.outer, self.classes, self.inner)
        log_prob = xp.log(xp.maximum(prob, prob.dtype.type(LOG_THRESHOLD)))
        rows = xp.moveaxis(self._h(bottom)[labels], 2, 1)       # (outer, classes, inner): H[label, l]
        self.labels, self.valid = labels, valid
        self.norm = normalizer(self.mode, self.outer, self.inner, int(valid.sum()))
        top[0].data[...] = -(rows * log_prob * valid[:, None, :]).sum() / self.norm

    def backward(self, top, propagate_down, bottom):
        self.refuse_label_gradients(propagate_down)
        if not propagate_down[0]:
            return
        xp = backend.xp_of(self.prob)
        h = self._h(bottom)
        prob = self.prob.reshape(self.outer, self.classes, self.inner)
        rows = xp.moveaxis(h[self.labels], 2, 1)
        row_sums = h.sum(axis=1)[self.labels][:, None, :]
        grad = (prob * row_sums - rows) * self.valid[:, None, :]
        bottom[0].diff[...] = (grad * (self.weight(top) / self.norm)).reshape(bottom[0].shape)
