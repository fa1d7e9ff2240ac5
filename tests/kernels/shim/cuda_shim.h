// Lets firecaffe/kernels/*.cu compile as plain C++ (g++ -include cuda_shim.h):
// a launch is one block of one thread, so every grid-stride loop visits all
// indices in order on the CPU. Only what the kernels use is defined.
#pragma once
#include <math.h>  // expf, logf, powf, and exp, log, pow for double
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct fc_shim_dim3 {
  unsigned int x, y, z;
};
static const fc_shim_dim3 blockIdx = {0, 0, 0};
static const fc_shim_dim3 threadIdx = {0, 0, 0};
static const fc_shim_dim3 blockDim = {1, 1, 1};
static const fc_shim_dim3 gridDim = {1, 1, 1};

inline float __int_as_float(int bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline double __longlong_as_double(long long bits) {
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
