// CUDA registration of the hwnas ops: the shared composition of cblock.cpp (GEMMs on cuBLAS via ATen)
// with the kernels of cblock_cuda.cu, on the current stream of the input's device.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../cblock.h"
#include "cblock_cuda.h"

namespace hwnas {
namespace {

void dw3x3_bias_relu_cuda(const at::Tensor& in, const at::Tensor& w9, const at::Tensor& b, at::Tensor& out,
                          int64_t n, int64_t h, int64_t w, const at::Tensor& sums) {
  C10_CUDA_CHECK(cuda::dw3x3_bias_relu(in.data_ptr<float>(), w9.data_ptr<float>(), b.data_ptr<float>(),
                                       out.data_ptr<float>(), sums.defined() ? sums.data_ptr<float>() : nullptr, n, h,
                                       w, in.size(1), c10::cuda::getCurrentCUDAStream()));
}

void gated_sum_cuda(const at::Tensor& a, const at::Tensor& ga, const at::Tensor& b, const at::Tensor& gb,
                    at::Tensor& out, int64_t n) {
  const at::Tensor gac = ga.contiguous(), gbc = gb.contiguous();
  C10_CUDA_CHECK(cuda::gated_sum(a.data_ptr<float>(), gac.data_ptr<float>(), b.data_ptr<float>(),
                                 gbc.data_ptr<float>(), out.data_ptr<float>(), a.size(0), a.size(0) / n, a.size(1),
                                 c10::cuda::getCurrentCUDAStream()));
}

void bias_relu_cuda(at::Tensor& rows, const at::Tensor& bias) {
  const at::Tensor bc = bias.contiguous();
  C10_CUDA_CHECK(cuda::bias_relu(rows.data_ptr<float>(), bc.data_ptr<float>(), rows.size(0), rows.size(1),
                                 c10::cuda::getCurrentCUDAStream()));
}

const DeviceKernels kCudaKernels{dw3x3_bias_relu_cuda, gated_sum_cuda, bias_relu_cuda};

at::Tensor gated_branch_sum_cuda(const at::Tensor& x, at::TensorList pw_weight, at::TensorList dw_weight,
                                 at::TensorList dw_bias, int64_t split, const at::Tensor& fc1_weight,
                                 const at::Tensor& fc1_bias, const at::Tensor& fc2_weight,
                                 const at::Tensor& fc2_bias) {
  const c10::cuda::CUDAGuard guard(x.device());
  return gated_branch_sum_impl(
      x, make_branch_params(pw_weight, dw_weight, dw_bias, split, fc1_weight, fc1_bias, fc2_weight, fc2_bias),
      kCudaKernels);
}

at::Tensor cblock_cuda(const at::Tensor& x, const at::Tensor& squeeze_weight, const at::Tensor& squeeze_bias,
                       at::TensorList pw_weight, at::TensorList dw_weight, at::TensorList dw_bias, int64_t split,
                       const at::Tensor& fc1_weight, const at::Tensor& fc1_bias, const at::Tensor& fc2_weight,
                       const at::Tensor& fc2_bias, const at::Tensor& restore_weight, const at::Tensor& restore_bias,
                       const std::optional<at::Tensor>& shortcut_weight,
                       const std::optional<at::Tensor>& shortcut_bias) {
  const c10::cuda::CUDAGuard guard(x.device());
  return cblock_impl(
      x, squeeze_weight, squeeze_bias,
      make_branch_params(pw_weight, dw_weight, dw_bias, split, fc1_weight, fc1_bias, fc2_weight, fc2_bias),
      restore_weight, restore_bias, shortcut_weight, shortcut_bias, kCudaKernels);
}

}  // namespace
}  // namespace hwnas

TORCH_LIBRARY_IMPL(hwnas, CUDA, m) {
  m.impl("gated_branch_sum", &hwnas::gated_branch_sum_cuda);
  m.impl("cblock", &hwnas::cblock_cuda);
}
