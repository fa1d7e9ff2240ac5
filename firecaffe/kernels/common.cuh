// Shared by every kernel file: float/double math helpers and the loop macro.
// Kept free of system headers so NVRTC (cupy.RawModule), nvcc and the CPU
// shim (tests/kernels/shim/cuda_shim.h) all compile it unchanged.
#pragma once

// Every element i in [0, n), whatever the launch geometry (grid-stride loop).
#define FC_KERNEL_LOOP(i, n) \
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

__device__ __forceinline__ float fc_exp(float x) { return expf(x); }
__device__ __forceinline__ double fc_exp(double x) { return exp(x); }
__device__ __forceinline__ float fc_log(float x) { return logf(x); }
__device__ __forceinline__ double fc_log(double x) { return log(x); }
__device__ __forceinline__ float fc_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double fc_pow(double x, double y) { return pow(x, y); }

// Caffe's -FLT_MAX, as T: where its MAX pooling starts, in double as well.
template <typename T> __device__ __forceinline__ T fc_caffe_lowest() { return T(-3.40282347e+38f); }

// Smallest positive normal float (Caffe's FLT_MIN), the floor of a probability in a log.
template <typename T> __device__ __forceinline__ T fc_flt_min() { return T(1.17549435e-38f); }
