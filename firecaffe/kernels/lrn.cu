// Local response normalization of NCHW data.
//
// scale = shift + factor * (sum of x^2 over the window), y = x * scale^-beta.
// The window is `size` channels centred on c (across = 1; Caffe's
// ACROSS_CHANNELS with shift = k, factor = alpha / size) or size x size cells
// centred on (h, w) (across = 0; WITHIN_CHANNEL with shift = 1, factor =
// alpha / size^2), zero padded in both cases. The window is symmetric, so the
// gradient gathers over the same window:
//   dx = dy * scale^-beta - 2 * factor * beta * x * sum_window(dy * y / scale).
#include "common.cuh"

// Sum of f(j) over the window of element i = ((n*C + c)*H + h)*W + w.
#define FC_LRN_WINDOW_SUM(acc, f)                                                   \
  do {                                                                              \
    const int w = i % width;                                                        \
    const int h = (i / width) % height;                                             \
    const int c = (i / (width * height)) % channels;                                \
    const int half = size / 2;                                                      \
    if (across) {                                                                   \
      const int c0 = c - half > 0 ? c - half : 0;                                   \
      const int c1 = c + half < channels - 1 ? c + half : channels - 1;             \
      for (int cc = c0; cc <= c1; ++cc) {                                           \
        const long long j = i + (long long)(cc - c) * height * width;               \
        acc += f;                                                                   \
      }                                                                             \
    } else {                                                                        \
      const int h0 = h - half > 0 ? h - half : 0;                                   \
      const int h1 = h + half < height - 1 ? h + half : height - 1;                 \
      const int w0 = w - half > 0 ? w - half : 0;                                   \
      const int w1 = w + half < width - 1 ? w + half : width - 1;                   \
      for (int hh = h0; hh <= h1; ++hh) {                                           \
        for (int ww = w0; ww <= w1; ++ww) {                                         \
          const long long j = i + (long long)(hh - h) * width + (ww - w);           \
          acc += f;                                                                 \
        }                                                                           \
      }                                                                             \
    }                                                                               \
  } while (0)

template <typename T>
__device__ void lrn_forward(const T* x, T* scale, T* y, int count, int channels, int height,
                            int width, int size, int across, T factor, T shift, T beta) {
  FC_KERNEL_LOOP(i, count) {
    T acc = T(0);
    FC_LRN_WINDOW_SUM(acc, x[j] * x[j]);
    const T s = acc * factor + shift;
    scale[i] = s;
    y[i] = x[i] * fc_pow(s, -beta);
  }
}

template <typename T>
__device__ void lrn_backward(const T* x, const T* y, const T* scale, const T* dy, T* dx,
                             int count, int channels, int height, int width, int size,
                             int across, T factor, T beta) {
  FC_KERNEL_LOOP(i, count) {
    T acc = T(0);
    FC_LRN_WINDOW_SUM(acc, dy[j] * y[j] / scale[j]);
    dx[i] = dy[i] * fc_pow(scale[i], -beta) - T(2) * factor * beta * x[i] * acc;
  }
}

#define FC_LRN_ENTRIES(T, suffix)                                                            \
  extern "C" __global__ void lrn_forward_##suffix(const T* x, T* scale, T* y, int count,    \
                                                  int channels, int height, int width,      \
                                                  int size, int across, T factor, T shift,  \
                                                  T beta) {                                 \
    lrn_forward<T>(x, scale, y, count, channels, height, width, size, across, factor, shift, \
                   beta);                                                                    \
  }                                                                                          \
  extern "C" __global__ void lrn_backward_##suffix(const T* x, const T* y, const T* scale,  \
                                                   const T* dy, T* dx, int count,           \
                                                   int channels, int height, int width,     \
                                                   int size, int across, T factor, T beta) { \
    lrn_backward<T>(x, y, scale, dy, dx, count, channels, height, width, size, across,        \
                    factor, beta);                                                           \
  }

FC_LRN_ENTRIES(float, f32)
FC_LRN_ENTRIES(double, f64)
