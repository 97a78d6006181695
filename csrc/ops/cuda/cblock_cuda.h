// Launchers of the fused-CBlock CUDA kernels (cblock_cuda.cu). Plain pointers and a stream, no torch
// headers, so nvcc compiles only the kernels. Tensors are contiguous float32 NHWC: rows = N*H*W, c = C.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace hwnas::cuda {

// out = relu(depthwise3x3(in, pad 1) * w9 + b) with w9 (9, C) tap-major; if sums != nullptr, also
// sums[n, c] += sum over H, W of out. Returns the launch error.
cudaError_t dw3x3_bias_relu(const float* in, const float* w9, const float* b, float* out, float* sums, int64_t n,
                            int64_t h, int64_t w, int64_t c, cudaStream_t stream);

// out[r, c] = a[r, c] * ga[r / hw, c] + b[r, c] * gb[r / hw, c] for r < rows.
cudaError_t gated_sum(const float* a, const float* ga, const float* b, const float* gb, float* out, int64_t rows,
                      int64_t hw, int64_t c, cudaStream_t stream);

// x[r, c] = relu(x[r, c] + bias[c]) for r < rows.
cudaError_t bias_relu(float* x, const float* bias, int64_t rows, int64_t c, cudaStream_t stream);

}  // namespace hwnas::cuda
