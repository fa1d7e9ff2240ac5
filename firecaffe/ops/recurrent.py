"""Recurrent layers: RNN, LSTM and LSTMUnit, with Caffe's semantics.

Caffe builds an unrolled net of InnerProduct, Scale, Eltwise and LSTMUnit layers
per time step; here the recurrence is computed directly (one GEMM for the input
transform of all T steps, one per step for the hidden transform), with the
parameter blobs in the shapes and order Caffe's unrolled net gives them, so a
.caffemodel trained by Caffe loads:

  RNN   W_xh (H, D), b_h (H), [W_xh_static (H, Ds)], W_hh (H, H), W_ho (H, H), b_o (H)
        h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static])
        o_t = tanh(W_ho h_t + b_o); the top is o (T, N, H)
  LSTM  W_xc (4H, D), b_c (4H), [W_xc_static (4H, Ds)], W_hc (4H, H)
        gates_t = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static]
        (c_t, h_t) = LSTMUnit(c_{t-1}, gates_t, cont_t); the top is h (T, N, H)

recurrent_param { num_output (H), weight_filler, bias_filler, debug_info (accepted,
no effect), expose_hidden }. Bottoms: x (T, N, ...), D = its size per (t, n);
cont (T, N); optional x_static (N, ...); with expose_hidden then h_0 and, for
LSTM, c_0 (1, N, H), and tops hT (and cT) after the output.

As in Caffe: without expose_hidden the state carries over from one forward to
the next (h_0 := h_T of the previous batch; cont_1 = 0 starts afresh), and
backward stops at the batch (truncated BPTT). With expose_hidden Caffe shares
only the data of h_0/c_0 and hT/cT with the unrolled net, so no gradient reaches
the h_0/c_0 bottoms (their diff is zeroed here) and the diffs of the hT/cT tops
are ignored. No gradient goes to cont.

LSTMUnit: bottoms c_prev (1, N, H), gates (1, N, 4H) ordered [i, f, o, g], cont
(1, N); tops c and h (1, N, H): i, f, o = sigmoid, g = tanh, f scaled by cont,
c = f c_prev + i g, h = o tanh(c).
"""
from ..core import backend
from ..errors import PrototxtError
from . import register
from .base import Layer


def _sigmoid(xp, x):
    return 1 / (1 + xp.exp(-x))


def unit_forward(xp, c_prev, gates, cont):
    """One LSTM step on (N, H) states and (N, 4H) gates; returns c, h."""
    hdim = c_prev.shape[-1]
    i, f, o = (_sigmoid(xp, gates[:, k * hdim:(k + 1) * hdim]) for k in range(3))
    g = xp.tanh(gates[:, 3 * hdim:])
    f = f * cont[:, None]
    c = f * c_prev + i * g
    return c, o * xp.tanh(c)


def unit_backward(xp, c_prev, gates, cont, c, dc, dh):
    """Gradients of one LSTM step (Caffe's formulas): d c_prev, d gates."""
    hdim = c_prev.shape[-1]
    i, f, o = (_sigmoid(xp, gates[:, k * hdim:(k + 1) * hdim]) for k in range(3))
    g = xp.tanh(gates[:, 3 * hdim:])
    f = f * cont[:, None]
    tanh_c = xp.tanh(c)
    dc_total = dc + dh * o * (1 - tanh_c * tanh_c)
    dgates = xp.concatenate([dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f),
                             dh * tanh_c * o * (1 - o), dc_total * i * (1 - g * g)], axis=1)
    return dc_total * f, dgates


@register("LSTMUnit")
class LSTMUnit(Layer):
    exact_num_bottom = 3
    exact_num_top = 2

    def reshape(self, bottom, top):
        n = bottom[0].shape[1] if bottom[0].ndim > 1 else -1
        for k, blob in enumerate(bottom):
            axes = 2 if k == 2 else 3
            if blob.ndim != axes or blob.shape[0] != 1 or blob.shape[1] != n:
                self.fail(f"bottom[{k}] has shape {blob.shape}; LSTMUnit takes c_prev (1, N, H), "
                          "gates (1, N, 4H) and cont (1, N)")
        if bottom[1].shape[2] != 4 * bottom[0].shape[2]:
            self.fail(f"gates {bottom[1].shape} must have 4 x H = {4 * bottom[0].shape[2]} channels")
        top[0].reshape(bottom[0].shape)
        top[1].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        c, h = unit_forward(xp, bottom[0].data[0], bottom[1].data[0], bottom[2].data[0])
        top[0].data[0], top[1].data[0] = c, h

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            self.fail("cannot backpropagate to the sequence indicators (cont)")
        if not (propagate_down[0] or propagate_down[1]):
            return
        xp = backend.xp_of(bottom[0].data)
        dc_prev, dgates = unit_backward(xp, bottom[0].data[0], bottom[1].data[0], bottom[2].data[0],
                                        top[0].data[0], top[0].diff[0], top[1].diff[0])
        if propagate_down[0]:
            bottom[0].diff[0] = dc_prev
        if propagate_down[1]:
            bottom[1].diff[0] = dgates

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2


class _Recurrent(Layer):
    """What RNN and LSTM share: bottoms, parameters of the input transforms, state."""
    gate_factor = 1          # gates per hidden unit (4 for LSTM)
    num_states = 1           # recurrent state blobs (h; h and c for LSTM)
    min_num_bottom = 2
    min_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.recurrent_param
        if p.num_output <= 0:
            self.fail("recurrent_param.num_output must be positive", PrototxtError)
        self.hidden = int(p.num_output)
        self.expose = bool(p.expose_hidden)
        exposed = self.num_states if self.expose else 0
        self.static = len(bottom) > 2 + exposed
        if len(bottom) != 2 + self.static + exposed or len(top) != 1 + exposed:
            self.fail(f"takes x, cont, [x_static]{', h_0' if self.expose else ''}"
                      f"{', c_0' if self.expose and self.num_states == 2 else ''} as bottoms and "
                      f"{1 + exposed} top(s) (expose_hidden: {self.expose}); got {len(bottom)} and {len(top)}")
        if bottom[0].ndim < 2:
            self.fail(f"bottom[0] must have at least 2 axes (T, N, ...), got shape {bottom[0].shape}")
        self.input_dim = bottom[0].count_range(2)
        width = self.gate_factor * self.hidden
        self.make_blob((width, self.input_dim), p.weight_filler)
        self.make_blob((width,), p.bias_filler)
        if self.static:
            self.make_blob((width, bottom[2].count_range(1)), p.weight_filler)
        self.make_blob((width, self.hidden), p.weight_filler)
        self.state = None        # carried h_T (and c_T) when the hidden state is not exposed

    def reshape(self, bottom, top):
        x, cont = bottom[0], bottom[1]
        if x.ndim < 2 or x.count_range(2) != self.input_dim:
            self.fail(f"x of shape {x.shape} does not match the weights (input size {self.input_dim})")
        t, n = x.shape[:2]
        if cont.shape != (t, n):
            self.fail(f"cont must have shape (T, N) = {(t, n)}, got {cont.shape}")
        if self.static and (bottom[2].ndim < 1 or bottom[2].shape[0] != n
                            or bottom[2].count_range(1) != self.blobs[2].shape[1]):
            self.fail(f"x_static of shape {bottom[2].shape} does not match N = {n} and the weights")
        state_shape = (1, n, self.hidden)
        for k in range(self.num_states if self.expose else 0):
            blob = bottom[2 + self.static + k]
            if blob.shape != state_shape:
                self.fail(f"bottom[{2 + self.static + k}] (initial state) must have shape {state_shape}, "
                          f"got {blob.shape}")
        top[0].reshape((t, n, self.hidden))
        for blob in top[1:]:
            blob.reshape(state_shape)
        xp = backend.xp_of(x.data)
        if self.state is None or self.state[0].shape != (n, self.hidden):
            self.state = [xp.zeros((n, self.hidden), dtype=self.dtype) for _ in range(self.num_states)]

    def _initial_state(self, bottom):
        if self.expose:
            return [bottom[2 + self.static + k].data[0] for k in range(self.num_states)]
        return self.state

    def _input_transform(self, xp, bottom):
        """W x_t + b for every step (T, N, width), plus W_static x_static."""
        t, n = bottom[0].shape[:2]
        w, b = self.blobs[0].data, self.blobs[1].data
        pre = (bottom[0].data.reshape(t * n, -1) @ w.T + b).reshape(t, n, -1)
        if self.static:
            pre += (bottom[2].data.reshape(n, -1) @ self.blobs[2].data.T)[None]
        return pre

    def _input_backward(self, xp, bottom, propagate_down, dpre):
        t, n = bottom[0].shape[:2]
        flat = dpre.reshape(t * n, -1)
        self.blobs[0].diff += flat.T @ bottom[0].data.reshape(t * n, -1)
        self.blobs[1].diff += flat.sum(axis=0)
        if propagate_down[0]:
            bottom[0].diff[...] = (flat @ self.blobs[0].data).reshape(bottom[0].shape)
        if self.static:
            summed = dpre.sum(axis=0)
            self.blobs[2].diff += summed.T @ bottom[2].data.reshape(n, -1)
            if propagate_down[2]:
                bottom[2].diff[...] = (summed @ self.blobs[2].data).reshape(bottom[2].shape)
        for k in range(self.num_states if self.expose else 0):
            if propagate_down[2 + self.static + k]:      # Caffe shares no diff with h_0 / c_0
                bottom[2 + self.static + k].diff[...] = 0

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail("cannot backpropagate to the sequence indicators (cont)")
        xp = backend.xp_of(bottom[0].data)
        self._input_backward(xp, bottom, propagate_down, self._recurrence_backward(xp, top, bottom))

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1

    def flops(self, bottom, top):
        t, n = bottom[0].shape[:2]
        width = self.gate_factor * self.hidden
        return 2 * t * n * width * (self.input_dim + self.hidden)


@register("RNN")
class RNN(_Recurrent):
    def layer_setup(self, bottom, top):
        super().layer_setup(bottom, top)
        p = self.param.recurrent_param
        self.make_blob((self.hidden, self.hidden), p.weight_filler)       # W_ho
        self.make_blob((self.hidden,), p.bias_filler)                     # b_o

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        pre = self._input_transform(xp, bottom)
        cont = bottom[1].data
        w_hh = self.blobs[-3].data
        h = self._initial_state(bottom)[0]
        self.conted = xp.empty_like(pre)            # cont_t h_{t-1}, kept for backward
        self.hs = xp.empty_like(pre)
        for t in range(pre.shape[0]):
            self.conted[t] = cont[t][:, None] * h
            h = self.hs[t] = xp.tanh(self.conted[t] @ w_hh.T + pre[t])
        w_ho, b_o = self.blobs[-2].data, self.blobs[-1].data
        top[0].data[...] = xp.tanh(self.hs @ w_ho.T + b_o)
        if self.expose:
            top[1].data[0] = h
        else:
            self.state = [h.copy()]

    def _recurrence_backward(self, xp, top, bottom):
        o, do = top[0].data, top[0].diff
        w_hh, w_ho = self.blobs[-3], self.blobs[-2]
        da_o = do * (1 - o * o)
        flat = da_o.reshape(-1, self.hidden)
        w_ho.diff += flat.T @ self.hs.reshape(-1, self.hidden)
        self.blobs[-1].diff += flat.sum(axis=0)
        dhs = da_o @ w_ho.data
        cont = bottom[1].data
        dpre = xp.empty_like(dhs)
        dh_next = xp.zeros_like(dhs[0])
        for t in reversed(range(dhs.shape[0])):
            da = (dhs[t] + dh_next) * (1 - self.hs[t] * self.hs[t])
            dpre[t] = da
            w_hh.diff += da.T @ self.conted[t]
            dh_next = (da @ w_hh.data) * cont[t][:, None]
        return dpre


@register("LSTM")
class LSTM(_Recurrent):
    gate_factor = 4
    num_states = 2

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        pre = self._input_transform(xp, bottom)
        cont = bottom[1].data
        w_hc = self.blobs[-1].data
        h, c = self._initial_state(bottom)
        steps, n = pre.shape[:2]
        self.gates = xp.empty_like(pre)
        self.conted = xp.empty((steps, n, self.hidden), dtype=pre.dtype)
        self.cs = xp.empty((steps + 1, n, self.hidden), dtype=pre.dtype)     # cs[0] = c_0
        self.cs[0] = c
        hs = top[0].data
        for t in range(steps):
            self.conted[t] = cont[t][:, None] * h
            self.gates[t] = self.conted[t] @ w_hc.T + pre[t]
            self.cs[t + 1], hs[t] = unit_forward(xp, self.cs[t], self.gates[t], cont[t])
            h = hs[t]
        if self.expose:
            top[1].data[0], top[2].data[0] = h, self.cs[-1]
        else:
            self.state = [h.copy(), self.cs[-1].copy()]

    def _recurrence_backward(self, xp, top, bottom):
        dhs = top[0].diff
        cont = bottom[1].data
        w_hc = self.blobs[-1]
        dpre = xp.empty_like(self.gates)
        dh_next = xp.zeros_like(dhs[0])
        dc_next = xp.zeros_like(dhs[0])
        for t in reversed(range(dhs.shape[0])):
            dc_next, dgates = unit_backward(xp, self.cs[t], self.gates[t], cont[t], self.cs[t + 1],
                                            dc_next, dhs[t] + dh_next)
            dpre[t] = dgates
            w_hc.diff += dgates.T @ self.conted[t]
            dh_next = (dgates @ w_hc.data) * cont[t][:, None]
        return dpre

