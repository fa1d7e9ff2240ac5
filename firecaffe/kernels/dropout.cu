// Inverted dropout at TRAIN time from uniform randoms u in [0, 1):
// mask = (u >= ratio) * scale, y = x * mask, with scale = 1 / (1 - ratio).
// The backward pass is dx = dy * mask (an element-wise product, no kernel).
#include "common.cuh"

template <typename T>
__device__ void dropout_forward(const T* x, const T* uniform, T* y, T* mask, int count,
                                T ratio, T scale) {
  FC_KERNEL_LOOP(i, count) {
    const T m = uniform[i] >= ratio ? scale : T(0);
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

#define FC_DROPOUT_ENTRY(T, suffix)                                                        \
  extern "C" __global__ void dropout_forward_##suffix(const T* x, const T* uniform, T* y, \
                                                      T* mask, int count, T ratio,        \
                                                      T scale) {                          \
    dropout_forward<T>(x, uniform, y, mask, count, ratio, scale);                         \
  }

FC_DROPOUT_ENTRY(float, f32)
FC_DROPOUT_ENTRY(double, f64)
