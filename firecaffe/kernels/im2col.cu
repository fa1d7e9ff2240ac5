// im2col / col2im for 2-d convolution with pad, stride and dilation.
//
// The column buffer covers a chunk of `num` samples at once, laid out as
// Caffe's single-sample buffer widened by the batch: row (c, a, b) for channel c
// and kernel offset (a, b), column (n, oh, ow); shape (C*KH*KW, num*OH*OW).
// One GEMM per group then covers the whole chunk (rows of group g are the
// contiguous block [g*C/G*KH*KW, (g+1)*C/G*KH*KW)).
#include "common.cuh"

// One thread per (c, n, oh, ow), ow fastest so that writes to a row coalesce.
template <typename T>
__device__ void im2col_2d(const T* x, T* col, int num, int channels, int height, int width,
                          int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h,
                          int stride_w, int dilation_h, int dilation_w, int out_h, int out_w) {
  const int length = out_h * out_w;
  const int row_stride = num * length;
  FC_KERNEL_LOOP(i, channels * row_stride) {
    const int ow = i % out_w;
    const int oh = (i / out_w) % out_h;
    const int n = (i / length) % num;
    const int c = i / row_stride;
    const T* src = x + ((long long)n * channels + c) * height * width;
    T* dst = col + (long long)c * kernel_h * kernel_w * row_stride + (long long)n * length +
             oh * out_w + ow;
    for (int a = 0; a < kernel_h; ++a) {
      const int h = oh * stride_h - pad_h + a * dilation_h;
      for (int b = 0; b < kernel_w; ++b) {
        const int w = ow * stride_w - pad_w + b * dilation_w;
        *dst = (h >= 0 && h < height && w >= 0 && w < width) ? src[h * width + w] : T(0);
        dst += row_stride;
      }
    }
  }
}

// The adjoint: one thread per input element (n, c, h, w) gathers every column
// entry that read it, in kernel-offset order, and overwrites x.
template <typename T>
__device__ void col2im_2d(const T* col, T* x, int num, int channels, int height, int width,
                          int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h,
                          int stride_w, int dilation_h, int dilation_w, int out_h, int out_w) {
  const int length = out_h * out_w;
  const int row_stride = num * length;
  FC_KERNEL_LOOP(i, num * channels * height * width) {
    const int w = i % width;
    const int h = (i / width) % height;
    const int c = (i / (width * height)) % channels;
    const int n = i / (width * height * channels);
    const T* src = col + (long long)c * kernel_h * kernel_w * row_stride + (long long)n * length;
    T sum = T(0);
    for (int a = 0; a < kernel_h; ++a) {
      const int th = h + pad_h - a * dilation_h;       // = oh * stride_h
      if (th < 0 || th % stride_h != 0 || th / stride_h >= out_h) continue;
      const int oh = th / stride_h;
      for (int b = 0; b < kernel_w; ++b) {
        const int tw = w + pad_w - b * dilation_w;
        if (tw < 0 || tw % stride_w != 0 || tw / stride_w >= out_w) continue;
        sum += src[(long long)(a * kernel_w + b) * row_stride + oh * out_w + tw / stride_w];
      }
    }
    x[i] = sum;
  }
}

#define FC_IM2COL_ENTRY(name, impl, T)                                            \
  extern "C" __global__ void name(const T* in, T* out, int num, int channels, int height, \
                                  int width, int kernel_h, int kernel_w, int pad_h,        \
                                  int pad_w, int stride_h, int stride_w, int dilation_h,   \
                                  int dilation_w, int out_h, int out_w) {                  \
    impl<T>(in, out, num, channels, height, width, kernel_h, kernel_w, pad_h, pad_w,       \
            stride_h, stride_w, dilation_h, dilation_w, out_h, out_w);                     \
  }

FC_IM2COL_ENTRY(im2col_f32, im2col_2d, float)
FC_IM2COL_ENTRY(im2col_f64, im2col_2d, double)
FC_IM2COL_ENTRY(col2im_f32, col2im_2d, float)
FC_IM2COL_ENTRY(col2im_f64, col2im_2d, double)
