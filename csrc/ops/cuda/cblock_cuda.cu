// CUDA kernels of the fused CBlock (NHWC, float32). Threads run along the contiguous channel axis, so
// every warp reads and writes 32 consecutive floats; the GEMMs of cblock.cpp go to cuBLAS through ATen.
// Registered with the dispatcher in cblock_cuda_host.cpp.
#include "cblock_cuda.h"

namespace hwnas::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// in, out: (N, H, W, C); w9: (9, C) tap-major; b: (C,). One thread per output element.
__global__ void dw3x3_bias_relu_kernel(const float* __restrict__ in, const float* __restrict__ w9,
                                       const float* __restrict__ b, float* __restrict__ out, int64_t total,
                                       int64_t h, int64_t w, int64_t c) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int64_t k = idx % c;
  const int64_t pix = idx / c;
  const int64_t x = pix % w;
  const int64_t y = (pix / w) % h;
  const int64_t n = pix / (w * h);
  float acc = __ldg(b + k);
#pragma unroll
  for (int dy = -1; dy <= 1; ++dy) {
    const int64_t yy = y + dy;
    if (yy < 0 || yy >= h) continue;
#pragma unroll
    for (int dx = -1; dx <= 1; ++dx) {
      const int64_t xx = x + dx;
      if (xx < 0 || xx >= w) continue;
      acc += __ldg(in + ((n * h + yy) * w + xx) * c + k) * __ldg(w9 + ((dy + 1) * 3 + (dx + 1)) * c + k);
    }
  }
  out[idx] = fmaxf(acc, 0.0f);
}

// sums[n, c] += sum over the hw pixels of x[n, :, c]; grid (N, ceil(C / 32)), block (32, 8).
__global__ void channel_sum_kernel(const float* __restrict__ x, float* __restrict__ sums, int64_t hw, int64_t c) {
  __shared__ float part[8][33];
  const int64_t n = blockIdx.x;
  const int64_t k = static_cast<int64_t>(blockIdx.y) * 32 + threadIdx.x;
  float acc = 0.0f;
  if (k < c) {
    for (int64_t p = threadIdx.y; p < hw; p += blockDim.y) acc += __ldg(x + (n * hw + p) * c + k);
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && k < c) {
    float total = 0.0f;
    for (int i = 0; i < 8; ++i) total += part[i][threadIdx.x];
    sums[n * c + k] += total;
  }
}

__global__ void gated_sum_kernel(const float* __restrict__ a, const float* __restrict__ ga,
                                 const float* __restrict__ b, const float* __restrict__ gb, float* __restrict__ out,
                                 int64_t total, int64_t hw, int64_t c) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int64_t g = (idx / c / hw) * c + idx % c;
  out[idx] = a[idx] * __ldg(ga + g) + b[idx] * __ldg(gb + g);
}

__global__ void bias_relu_kernel(float* __restrict__ x, const float* __restrict__ bias, int64_t total, int64_t c) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  x[idx] = fmaxf(x[idx] + __ldg(bias + idx % c), 0.0f);
}

}  // namespace

cudaError_t dw3x3_bias_relu(const float* in, const float* w9, const float* b, float* out, float* sums, int64_t n,
                            int64_t h, int64_t w, int64_t c, cudaStream_t stream) {
  const int64_t total = n * h * w * c;
  dw3x3_bias_relu_kernel<<<blocks_for(total), kThreads, 0, stream>>>(in, w9, b, out, total, h, w, c);
  if (sums != nullptr) {
    const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>((c + 31) / 32));
    channel_sum_kernel<<<grid, dim3(32, 8), 0, stream>>>(out, sums, h * w, c);
  }
  return cudaGetLastError();
}

cudaError_t gated_sum(const float* a, const float* ga, const float* b, const float* gb, float* out, int64_t rows,
                      int64_t hw, int64_t c, cudaStream_t stream) {
  const int64_t total = rows * c;
  gated_sum_kernel<<<blocks_for(total), kThreads, 0, stream>>>(a, ga, b, gb, out, total, hw, c);
  return cudaGetLastError();
}

cudaError_t bias_relu(float* x, const float* bias, int64_t rows, int64_t c, cudaStream_t stream) {
  const int64_t total = rows * c;
  bias_relu_kernel<<<blocks_for(total), kThreads, 0, stream>>>(x, bias, total, c);
  return cudaGetLastError();
}

}  // namespace hwnas::cuda
