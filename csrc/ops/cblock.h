// Fused inference CBlock of CNet/CDNet (DESIGN section 1), BN already folded into the convolutions.
//
// Layout: activations are NHWC (PyTorch channels_last); a (N, C, H, W) tensor is used as the row-major
// matrix (N*H*W, C), so every 1x1 convolution is one GEMM (BLAS / cuBLAS through ATen) and the
// depthwise 3x3, gate and epilogue loops, written per device, run over the contiguous channel axis.
// The composition below is shared; cpu/cblock_cpu.cpp and cuda/cblock_cuda.cu supply DeviceKernels
// and register the ops for their dispatch key.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

namespace hwnas {

// The folded parameters of the two gated branches of one CBlock. Both branches are concatenated:
// the first `split` LiteConvs are branch k1 (k1 // 2 of them), the rest branch k2.
struct BranchParams {
  std::vector<at::Tensor> pw_weight;  // each (mid, mid): pointwise conv, no bias
  std::vector<at::Tensor> dw_weight;  // each (mid, 1, 3, 3): depthwise conv times the BN scale
  std::vector<at::Tensor> dw_bias;    // each (mid,): BN shift
  int64_t split = 0;
  at::Tensor fc1_weight, fc1_bias;  // gate: (hid, mid), (hid,)
  at::Tensor fc2_weight, fc2_bias;  // gate: (mid, hid), (mid,)
};

// Device-specific loops. All tensors are contiguous; `rows` tensors are (N*H*W, C) NHWC matrices.
struct DeviceKernels {
  // out = relu(depthwise3x3(in, pad 1) * w + b); w9 is (9, C) (tap-major), b (C,).
  // When sums is defined ((N, C), zero-filled) it also accumulates sum over H, W of out per (n, c).
  void (*dw3x3_bias_relu)(const at::Tensor& in, const at::Tensor& w9, const at::Tensor& b, at::Tensor& out,
                          int64_t n, int64_t h, int64_t w, const at::Tensor& sums);
  // out[n, p, c] = a[n, p, c] * ga[n, c] + b[n, p, c] * gb[n, c]; ga, gb (N, C).
  void (*gated_sum)(const at::Tensor& a, const at::Tensor& ga, const at::Tensor& b, const at::Tensor& gb,
                    at::Tensor& out, int64_t n);
  // rows = relu(rows + bias) in place; bias (C,).
  void (*bias_relu_)(at::Tensor& rows, const at::Tensor& bias);
};

BranchParams make_branch_params(at::TensorList pw_weight, at::TensorList dw_weight, at::TensorList dw_bias,
                                int64_t split, const at::Tensor& fc1_weight, const at::Tensor& fc1_bias,
                                const at::Tensor& fc2_weight, const at::Tensor& fc2_bias);

// sum_b gate(branch_b(x)) for x (N, mid, H, W); returns (N, mid, H, W) channels_last.
at::Tensor gated_branch_sum_impl(const at::Tensor& x, const BranchParams& p, const DeviceKernels& k);

// relu(restore(gated_branch_sum(relu(squeeze(x)))) + shortcut(x)); shortcut is identity when
// shortcut_weight is empty. x (N, in, H, W); returns (N, out, H, W) channels_last.
at::Tensor cblock_impl(const at::Tensor& x, const at::Tensor& squeeze_weight, const at::Tensor& squeeze_bias,
                       const BranchParams& p, const at::Tensor& restore_weight, const at::Tensor& restore_bias,
                       const std::optional<at::Tensor>& shortcut_weight,
                       const std::optional<at::Tensor>& shortcut_bias, const DeviceKernels& k);

}  // namespace hwnas
