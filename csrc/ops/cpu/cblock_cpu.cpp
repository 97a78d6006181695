// CPU loops of the fused CBlock (NHWC, float32), parallel over image rows with at::parallel_for
// (OpenMP in PyTorch's CPU builds); the inner loops run over the contiguous channel axis so the
// compiler vectorises them (-O3, and -march=native when HWNAS_NATIVE is on).
#include <ATen/Parallel.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>

#include "../cblock.h"

namespace hwnas {
namespace {

// Rows per parallel task: enough work per task to amortise the scheduling.
int64_t grain_rows(int64_t row_len) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(row_len, 1)); }

// One output image row y of image n: out[n, y, :, :] = relu(dw3x3(in) + b); rowsum[c] += sum over the row.
void dw_row(const float* __restrict in, const float* __restrict w9, const float* __restrict b,
            float* __restrict out, float* __restrict rowsum, int64_t n, int64_t y, int64_t h, int64_t w,
            int64_t c) {
  for (int64_t x = 0; x < w; ++x) {
    float* __restrict o = out + ((n * h + y) * w + x) * c;
    for (int64_t k = 0; k < c; ++k) o[k] = b[k];
    for (int64_t dy = -1; dy <= 1; ++dy) {
      const int64_t yy = y + dy;
      if (yy < 0 || yy >= h) continue;
      const float* __restrict irow = in + (n * h + yy) * w * c;
      for (int64_t dx = -1; dx <= 1; ++dx) {
        const int64_t xx = x + dx;
        if (xx < 0 || xx >= w) continue;
        const float* __restrict i = irow + xx * c;
        const float* __restrict wk = w9 + ((dy + 1) * 3 + (dx + 1)) * c;
        for (int64_t k = 0; k < c; ++k) o[k] += i[k] * wk[k];
      }
    }
    if (rowsum != nullptr) {
      for (int64_t k = 0; k < c; ++k) {
        const float v = std::max(o[k], 0.0f);
        o[k] = v;
        rowsum[k] += v;
      }
    } else {
      for (int64_t k = 0; k < c; ++k) o[k] = std::max(o[k], 0.0f);
    }
  }
}

void dw3x3_bias_relu_cpu(const at::Tensor& in, const at::Tensor& w9, const at::Tensor& b, at::Tensor& out,
                         int64_t n, int64_t h, int64_t w, const at::Tensor& sums) {
  const int64_t c = in.size(1);
  const float* ip = in.data_ptr<float>();
  const float* wp = w9.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  float* op = out.data_ptr<float>();
  // Per-row partial sums keep the parallel loop free of atomics; reduced over rows afterwards.
  at::Tensor partial = sums.defined() ? at::zeros({n * h, c}, in.options()) : at::Tensor();
  float* pp = partial.defined() ? partial.data_ptr<float>() : nullptr;
  at::parallel_for(0, n * h, grain_rows(w * c), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      dw_row(ip, wp, bp, op, pp == nullptr ? nullptr : pp + r * c, r / h, r % h, h, w, c);
    }
  });
  if (pp != nullptr) {
    float* sp = sums.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t y = 0; y < h; ++y) {
        const float* __restrict src = pp + (i * h + y) * c;
        float* __restrict dst = sp + i * c;
        for (int64_t k = 0; k < c; ++k) dst[k] += src[k];
      }
    }
  }
}

void gated_sum_cpu(const at::Tensor& a, const at::Tensor& ga, const at::Tensor& b, const at::Tensor& gb,
                   at::Tensor& out, int64_t n) {
  const int64_t rows = a.size(0), c = a.size(1), hw = rows / n;
  const float* ap = a.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  const float* gap = ga.data_ptr<float>();
  const float* gbp = gb.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, rows, grain_rows(c), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* __restrict x = ap + r * c;
      const float* __restrict y = bp + r * c;
      const float* __restrict gx = gap + (r / hw) * c;
      const float* __restrict gy = gbp + (r / hw) * c;
      float* __restrict o = op + r * c;
      for (int64_t k = 0; k < c; ++k) o[k] = x[k] * gx[k] + y[k] * gy[k];
    }
  });
}

void bias_relu_cpu(at::Tensor& rows, const at::Tensor& bias) {
  const int64_t m = rows.size(0), c = rows.size(1);
  const at::Tensor bc = bias.contiguous();
  const float* bp = bc.data_ptr<float>();
  float* xp = rows.data_ptr<float>();
  at::parallel_for(0, m, grain_rows(c), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* __restrict x = xp + r * c;
      for (int64_t k = 0; k < c; ++k) x[k] = std::max(x[k] + bp[k], 0.0f);
    }
  });
}

const DeviceKernels kCpuKernels{dw3x3_bias_relu_cpu, gated_sum_cpu, bias_relu_cpu};

at::Tensor gated_branch_sum_cpu(const at::Tensor& x, at::TensorList pw_weight, at::TensorList dw_weight,
                                at::TensorList dw_bias, int64_t split, const at::Tensor& fc1_weight,
                                const at::Tensor& fc1_bias, const at::Tensor& fc2_weight,
                                const at::Tensor& fc2_bias) {
  return gated_branch_sum_impl(
      x, make_branch_params(pw_weight, dw_weight, dw_bias, split, fc1_weight, fc1_bias, fc2_weight, fc2_bias),
      kCpuKernels);
}

at::Tensor cblock_cpu(const at::Tensor& x, const at::Tensor& squeeze_weight, const at::Tensor& squeeze_bias,
                      at::TensorList pw_weight, at::TensorList dw_weight, at::TensorList dw_bias, int64_t split,
                      const at::Tensor& fc1_weight, const at::Tensor& fc1_bias, const at::Tensor& fc2_weight,
                      const at::Tensor& fc2_bias, const at::Tensor& restore_weight, const at::Tensor& restore_bias,
                      const std::optional<at::Tensor>& shortcut_weight,
                      const std::optional<at::Tensor>& shortcut_bias) {
  return cblock_impl(
      x, squeeze_weight, squeeze_bias,
      make_branch_params(pw_weight, dw_weight, dw_bias, split, fc1_weight, fc1_bias, fc2_weight, fc2_bias),
      restore_weight, restore_bias, shortcut_weight, shortcut_bias, kCpuKernels);
}

}  // namespace
}  // namespace hwnas

TORCH_LIBRARY_IMPL(hwnas, CPU, m) {
  m.impl("gated_branch_sum", &hwnas::gated_branch_sum_cpu);
  m.impl("cblock", &hwnas::cblock_cpu);
}
