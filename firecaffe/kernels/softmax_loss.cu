// SoftmaxWithLoss on probabilities already computed (softmax over axis of size
// `dim`, with `outer` positions before it and `inner` after it).
//
// Forward, one thread per (n, s) position: loss = -log(max(p_label, FLT_MIN));
// count = 1, or 0 (and loss 0) where label == ignore_label (if has_ignore), or
// -1 where the label is outside [0, dim) so that the caller can report it.
// Backward, one thread per element: dx = scale * (p - [c == label]), 0 at
// ignored positions; scale = loss_weight / normalizer.
#include "common.cuh"

template <typename T>
__device__ void softmax_loss_forward(const T* prob, const T* label, T* loss, T* counts,
                                     int outer, int dim, int inner, int has_ignore,
                                     int ignore_label) {
  FC_KERNEL_LOOP(i, outer * inner) {
    const int n = i / inner;
    const int s = i % inner;
    const int target = static_cast<int>(label[i]);
    if (has_ignore && target == ignore_label) {
      loss[i] = T(0);
      counts[i] = T(0);
    } else if (target < 0 || target >= dim) {
      loss[i] = T(0);
      counts[i] = T(-1);
    } else {
      const T p = prob[((long long)n * dim + target) * inner + s];
      loss[i] = -fc_log(p > fc_flt_min<T>() ? p : fc_flt_min<T>());
      counts[i] = T(1);
    }
  }
}

template <typename T>
__device__ void softmax_loss_backward(const T* prob, const T* label, T* dx, int outer,
                                      int dim, int inner, int has_ignore, int ignore_label,
                                      T scale) {
  FC_KERNEL_LOOP(i, outer * dim * inner) {
    const int s = i % inner;
    const int c = (i / inner) % dim;
    const int n = i / (inner * dim);
    const int target = static_cast<int>(label[n * inner + s]);
    if (has_ignore && target == ignore_label) {
      dx[i] = T(0);
    } else {
      dx[i] = scale * (prob[i] - (c == target ? T(1) : T(0)));
    }
  }
}

#define FC_SOFTMAX_LOSS_ENTRIES(T, suffix)                                                  \
  extern "C" __global__ void softmax_loss_forward_##suffix(                                \
      const T* prob, const T* label, T* loss, T* counts, int outer, int dim, int inner,    \
      int has_ignore, int ignore_label) {                                                  \
    softmax_loss_forward<T>(prob, label, loss, counts, outer, dim, inner, has_ignore,      \
                            ignore_label);                                                 \
  }                                                                                         \
  extern "C" __global__ void softmax_loss_backward_##suffix(                               \
      const T* prob, const T* label, T* dx, int outer, int dim, int inner, int has_ignore, \
      int ignore_label, T scale) {                                                         \
    softmax_loss_backward<T>(prob, label, dx, outer, dim, inner, has_ignore, ignore_label, \
                             scale);                                                       \
  }

FC_SOFTMAX_LOSS_ENTRIES(float, f32)
FC_SOFTMAX_LOSS_ENTRIES(double, f64)
