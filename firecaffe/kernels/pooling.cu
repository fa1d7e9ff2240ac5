// Max and average pooling over the two spatial axes of NCHW data, Caffe's way.
//
// Window of output (ph, pw): rows [ph*stride_h - pad_h, + kernel_h), clipped
// to the image for the values read. MAX starts from Caffe's -FLT_MAX and takes
// strictly greater values (the first maximum wins, padding and NaN never do);
// argmax is the kernel offset of the maximum within its window, a * kernel_w + b
// for window row a and column b (counted from the window's corner, which may lie
// in the padding), -1 for a window that saw no number above -FLT_MAX (whose
// output keeps -FLT_MAX, as Caffe's). The NumPy path keeps
// the same encoding (firecaffe/ops/pooling.py), and both turn it into Caffe's
// H*W index only for the optional mask top.
// AVE divides by the window clipped to the padded image, hend = min(hstart +
// kernel_h, height + pad_h), so cells of the padding count, cells past it don't.
// `planes` is num * channels.
#include "common.cuh"

template <typename T>
__device__ void max_pool_forward(const T* x, T* y, int* argmax, int planes, int height,
                                 int width, int pooled_h, int pooled_w, int kernel_h,
                                 int kernel_w, int stride_h, int stride_w, int pad_h,
                                 int pad_w) {
  FC_KERNEL_LOOP(i, planes * pooled_h * pooled_w) {
    const int pw = i % pooled_w;
    const int ph = (i / pooled_w) % pooled_h;
    const int plane = i / (pooled_w * pooled_h);
    const int corner_h = ph * stride_h - pad_h;
    const int corner_w = pw * stride_w - pad_w;
    const int hend = corner_h + kernel_h < height ? corner_h + kernel_h : height;
    const int wend = corner_w + kernel_w < width ? corner_w + kernel_w : width;
    const int hstart = corner_h > 0 ? corner_h : 0;
    const int wstart = corner_w > 0 ? corner_w : 0;
    const T* src = x + (long long)plane * height * width;
    T best = fc_caffe_lowest<T>();
    int best_index = -1;
    for (int h = hstart; h < hend; ++h) {
      for (int w = wstart; w < wend; ++w) {
        if (src[h * width + w] > best) {
          best = src[h * width + w];
          best_index = (h - corner_h) * kernel_w + (w - corner_w);
        }
      }
    }
    y[i] = best;
    argmax[i] = best_index;
  }
}

// Range of pooled rows [*first, *last) whose windows contain padded row `hp`.
__device__ __forceinline__ void windows_over(int hp, int kernel, int stride, int pooled,
                                             int* first, int* last) {
  *first = hp < kernel ? 0 : (hp - kernel) / stride + 1;
  *last = hp / stride + 1 < pooled ? hp / stride + 1 : pooled;
}

// One thread per input element gathers the gradient of the windows whose max it was.
template <typename T>
__device__ void max_pool_backward(const T* dy, const int* argmax, T* dx, int planes,
                                  int height, int width, int pooled_h, int pooled_w,
                                  int kernel_h, int kernel_w, int stride_h, int stride_w,
                                  int pad_h, int pad_w) {
  FC_KERNEL_LOOP(i, planes * height * width) {
    const int w = i % width;
    const int h = (i / width) % height;
    const int plane = i / (width * height);
    int ph0, ph1, pw0, pw1;
    windows_over(h + pad_h, kernel_h, stride_h, pooled_h, &ph0, &ph1);
    windows_over(w + pad_w, kernel_w, stride_w, pooled_w, &pw0, &pw1);
    const long long offset = (long long)plane * pooled_h * pooled_w;
    T sum = T(0);
    for (int ph = ph0; ph < ph1; ++ph) {
      for (int pw = pw0; pw < pw1; ++pw) {
        const int kernel_offset = (h + pad_h - ph * stride_h) * kernel_w + (w + pad_w - pw * stride_w);
        if (argmax[offset + ph * pooled_w + pw] == kernel_offset) {
          sum += dy[offset + ph * pooled_w + pw];
        }
      }
    }
    dx[i] = sum;
  }
}

template <typename T>
__device__ void ave_pool_forward(const T* x, T* y, int planes, int height, int width,
                                 int pooled_h, int pooled_w, int kernel_h, int kernel_w,
                                 int stride_h, int stride_w, int pad_h, int pad_w) {
  FC_KERNEL_LOOP(i, planes * pooled_h * pooled_w) {
    const int pw = i % pooled_w;
    const int ph = (i / pooled_w) % pooled_h;
    const int plane = i / (pooled_w * pooled_h);
    int hstart = ph * stride_h - pad_h;
    int wstart = pw * stride_w - pad_w;
    int hend = hstart + kernel_h < height + pad_h ? hstart + kernel_h : height + pad_h;
    int wend = wstart + kernel_w < width + pad_w ? wstart + kernel_w : width + pad_w;
    const int pool_size = (hend - hstart) * (wend - wstart);
    hstart = hstart > 0 ? hstart : 0;
    wstart = wstart > 0 ? wstart : 0;
    hend = hend < height ? hend : height;
    wend = wend < width ? wend : width;
    const T* src = x + (long long)plane * height * width;
    T sum = T(0);
    for (int h = hstart; h < hend; ++h) {
      for (int w = wstart; w < wend; ++w) {
        sum += src[h * width + w];
      }
    }
    y[i] = sum / T(pool_size);
  }
}

template <typename T>
__device__ void ave_pool_backward(const T* dy, T* dx, int planes, int height, int width,
                                  int pooled_h, int pooled_w, int kernel_h, int kernel_w,
                                  int stride_h, int stride_w, int pad_h, int pad_w) {
  FC_KERNEL_LOOP(i, planes * height * width) {
    const int w = i % width;
    const int h = (i / width) % height;
    const int plane = i / (width * height);
    int ph0, ph1, pw0, pw1;
    windows_over(h + pad_h, kernel_h, stride_h, pooled_h, &ph0, &ph1);
    windows_over(w + pad_w, kernel_w, stride_w, pooled_w, &pw0, &pw1);
    const T* grad = dy + (long long)plane * pooled_h * pooled_w;
    T sum = T(0);
    for (int ph = ph0; ph < ph1; ++ph) {
      for (int pw = pw0; pw < pw1; ++pw) {
        const int hstart = ph * stride_h - pad_h;
        const int wstart = pw * stride_w - pad_w;
        const int hend = hstart + kernel_h < height + pad_h ? hstart + kernel_h : height + pad_h;
        const int wend = wstart + kernel_w < width + pad_w ? wstart + kernel_w : width + pad_w;
        sum += grad[ph * pooled_w + pw] / T((hend - hstart) * (wend - wstart));
      }
    }
    dx[i] = sum;
  }
}

#define FC_POOL_GEOMETRY                                                                  \
  int planes, int height, int width, int pooled_h, int pooled_w, int kernel_h,            \
      int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w
#define FC_POOL_ARGS \
  planes, height, width, pooled_h, pooled_w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w

#define FC_POOL_ENTRIES(T, suffix)                                                             \
  extern "C" __global__ void max_pool_forward_##suffix(const T* x, T* y, int* argmax,         \
                                                       FC_POOL_GEOMETRY) {                     \
    max_pool_forward<T>(x, y, argmax, FC_POOL_ARGS);                                           \
  }                                                                                            \
  extern "C" __global__ void max_pool_backward_##suffix(const T* dy, const int* argmax, T* dx, \
                                                        FC_POOL_GEOMETRY) {                    \
    max_pool_backward<T>(dy, argmax, dx, FC_POOL_ARGS);                                        \
  }                                                                                            \
  extern "C" __global__ void ave_pool_forward_##suffix(const T* x, T* y, FC_POOL_GEOMETRY) {  \
    ave_pool_forward<T>(x, y, FC_POOL_ARGS);                                                   \
  }                                                                                            \
  extern "C" __global__ void ave_pool_backward_##suffix(const T* dy, T* dx, FC_POOL_GEOMETRY) { \
    ave_pool_backward<T>(dy, dx, FC_POOL_ARGS);                                                \
  }

FC_POOL_ENTRIES(float, f32)
FC_POOL_ENTRIES(double, f64)
