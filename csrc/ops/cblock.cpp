// Schemas of the hwnas ops and their device-independent composition (GEMMs through ATen).
//
// The per-device loops live in cpu/cblock_cpu.cpp and cuda/cblock_cuda.cu, which register the ops for
// their dispatch keys with TORCH_LIBRARY_IMPL; shapes for torch.compile/opcheck come from the fake
// implementations registered in hwnas/ops/_cpp.py.
#include "cblock.h"

#include <ATen/ops/addmm.h>
#include <ATen/ops/add.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

namespace hwnas {
namespace {

void check_param(const char* op, const char* name, const at::Tensor& t, const at::Tensor& x,
                 at::IntArrayRef shape) {
  TORCH_CHECK(t.defined(), "hwnas::", op, ": ", name, " is undefined; expected a tensor of shape ", shape);
  TORCH_CHECK(t.device() == x.device(), "hwnas::", op, ": ", name, " must be on ", x.device(), " like x, got ",
              t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat, "hwnas::", op, ": ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, "hwnas::", op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
}

void check_input(const char* op, const at::Tensor& x, int64_t channels) {
  TORCH_CHECK(x.dim() == 4, "hwnas::", op, ": x must be (N, C, H, W), got ", x.dim(), " dims");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "hwnas::", op, ": x must be float32, got ", x.scalar_type());
  TORCH_CHECK(x.size(1) == channels, "hwnas::", op, ": x must have ", channels, " channels, got ", x.size(1));
  TORCH_CHECK(x.numel() > 0, "hwnas::", op, ": x must not be empty, got shape ", x.sizes());
}

void check_branch_params(const char* op, const at::Tensor& x, const BranchParams& p) {
  const int64_t mid = x.size(1);
  const auto layers = static_cast<int64_t>(p.pw_weight.size());
  TORCH_CHECK(static_cast<int64_t>(p.dw_weight.size()) == layers && static_cast<int64_t>(p.dw_bias.size()) == layers,
              "hwnas::", op, ": pw_weight, dw_weight and dw_bias must have the same length, got ", layers, ", ",
              p.dw_weight.size(), ", ", p.dw_bias.size());
  TORCH_CHECK(p.split >= 1 && p.split < layers, "hwnas::", op, ": split must be in [1, ", layers - 1,
              "] (LiteConvs of the first branch), got ", p.split);
  for (int64_t i = 0; i < layers; ++i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    check_param(op, ("pw_weight" + idx).c_str(), p.pw_weight[i], x, {mid, mid});
    check_param(op, ("dw_weight" + idx).c_str(), p.dw_weight[i], x, {mid, 1, 3, 3});
    check_param(op, ("dw_bias" + idx).c_str(), p.dw_bias[i], x, {mid});
  }
  TORCH_CHECK(p.fc1_weight.defined() && p.fc1_weight.dim() == 2, "hwnas::", op,
              ": fc1_weight must be (hid, mid), got ", p.fc1_weight.sizes());
  const int64_t hid = p.fc1_weight.size(0);
  check_param(op, "fc1_weight", p.fc1_weight, x, {hid, mid});
  check_param(op, "fc1_bias", p.fc1_bias, x, {hid});
  check_param(op, "fc2_weight", p.fc2_weight, x, {mid, hid});
  check_param(op, "fc2_bias", p.fc2_bias, x, {mid});
}

at::Tensor to_channels_last(const at::Tensor& x) { return x.contiguous(at::MemoryFormat::ChannelsLast); }

// The (N*H*W, C) row-major matrix of a channels_last-contiguous (N, C, H, W) tensor.
at::Tensor as_rows(const at::Tensor& x) {
  return x.as_strided({x.size(0) * x.size(2) * x.size(3), x.size(1)}, {x.size(1), 1});
}

at::Tensor empty_channels_last(const at::Tensor& like, int64_t c) {
  return at::empty({like.size(0), c, like.size(2), like.size(3)},
                   like.options().memory_format(at::MemoryFormat::ChannelsLast));
}

// Gate values (N, mid) from per-(n, c) sums over H*W: sigmoid(fc2(relu(fc1(mean)))).
at::Tensor gate_values(const at::Tensor& sums, int64_t hw, const BranchParams& p) {
  at::Tensor hidden = at::addmm(p.fc1_bias, sums, p.fc1_weight.t(), 1.0, 1.0 / static_cast<double>(hw)).relu_();
  return at::addmm(p.fc2_bias, hidden, p.fc2_weight.t()).sigmoid_();
}

// Runs LiteConvs [begin, end) on s (rows); `scratch` holds each pointwise output, `dst` the result.
void run_branch(const at::Tensor& s, const BranchParams& p, int64_t begin, int64_t end, at::Tensor& scratch,
                at::Tensor& dst, int64_t n, int64_t h, int64_t w, const at::Tensor& sums, const DeviceKernels& k) {
  const int64_t mid = s.size(1);
  at::Tensor src = s;
  for (int64_t i = begin; i < end; ++i) {
    at::mm_out(scratch, src, p.pw_weight[i].t());
    at::Tensor w9 = p.dw_weight[i].reshape({mid, 9}).t().contiguous();
    k.dw3x3_bias_relu(scratch, w9, p.dw_bias[i].contiguous(), dst, n, h, w, i + 1 == end ? sums : at::Tensor());
    src = dst;
  }
}

// Both gated branches of s (rows, (N*H*W, mid)); the sum is written into `out` (rows).
void branch_sum_rows(const at::Tensor& s, const BranchParams& p, int64_t n, int64_t h, int64_t w, at::Tensor& out,
                     const DeviceKernels& k) {
  const int64_t mid = s.size(1);
  const auto layers = static_cast<int64_t>(p.pw_weight.size());
  at::Tensor scratch = at::empty_like(s);
  at::Tensor t1 = at::empty_like(s), t2 = at::empty_like(s);
  at::Tensor sums1 = at::zeros({n, mid}, s.options()), sums2 = at::zeros({n, mid}, s.options());
  run_branch(s, p, 0, p.split, scratch, t1, n, h, w, sums1, k);
  run_branch(s, p, p.split, layers, scratch, t2, n, h, w, sums2, k);
  k.gated_sum(t1, gate_values(sums1, h * w, p), t2, gate_values(sums2, h * w, p), out, n);
}

}  // namespace

BranchParams make_branch_params(at::TensorList pw_weight, at::TensorList dw_weight, at::TensorList dw_bias,
                                int64_t split, const at::Tensor& fc1_weight, const at::Tensor& fc1_bias,
                                const at::Tensor& fc2_weight, const at::Tensor& fc2_bias) {
  BranchParams p;
  p.pw_weight.assign(pw_weight.begin(), pw_weight.end());
  p.dw_weight.assign(dw_weight.begin(), dw_weight.end());
  p.dw_bias.assign(dw_bias.begin(), dw_bias.end());
  p.split = split;
  p.fc1_weight = fc1_weight;
  p.fc1_bias = fc1_bias;
  p.fc2_weight = fc2_weight;
  p.fc2_bias = fc2_bias;
  return p;
}

at::Tensor gated_branch_sum_impl(const at::Tensor& x, const BranchParams& p, const DeviceKernels& k) {
  TORCH_CHECK(x.dim() == 4, "hwnas::gated_branch_sum: x must be (N, mid, H, W), got ", x.dim(), " dims");
  check_input("gated_branch_sum", x, x.size(1));
  check_branch_params("gated_branch_sum", x, p);
  const at::Tensor xc = to_channels_last(x);
  at::Tensor out = empty_channels_last(xc, xc.size(1));
  at::Tensor rows = as_rows(out);
  branch_sum_rows(as_rows(xc), p, x.size(0), x.size(2), x.size(3), rows, k);
  return out;
}

at::Tensor cblock_impl(const at::Tensor& x, const at::Tensor& squeeze_weight, const at::Tensor& squeeze_bias,
                       const BranchParams& p, const at::Tensor& restore_weight, const at::Tensor& restore_bias,
                       const std::optional<at::Tensor>& shortcut_weight,
                       const std::optional<at::Tensor>& shortcut_bias, const DeviceKernels& k) {
  TORCH_CHECK(x.dim() == 4, "hwnas::cblock: x must be (N, C, H, W), got ", x.dim(), " dims");
  TORCH_CHECK(squeeze_weight.dim() == 2 && restore_weight.dim() == 2,
              "hwnas::cblock: squeeze_weight must be (mid, in) and restore_weight (out, mid), got ",
              squeeze_weight.sizes(), " and ", restore_weight.sizes());
  const int64_t cin = x.size(1), mid = squeeze_weight.size(0), cout = restore_weight.size(0);
  check_input("cblock", x, squeeze_weight.size(1));
  check_param("cblock", "squeeze_weight", squeeze_weight, x, {mid, cin});
  check_param("cblock", "squeeze_bias", squeeze_bias, x, {mid});
  check_param("cblock", "restore_weight", restore_weight, x, {cout, mid});
  check_param("cblock", "restore_bias", restore_bias, x, {cout});
  const bool projection = shortcut_weight.has_value() && shortcut_weight->defined();
  TORCH_CHECK(projection == (shortcut_bias.has_value() && shortcut_bias->defined()), "hwnas::cblock: ",
              "shortcut_weight and shortcut_bias must both be given (projection) or both be None (identity)");
  if (projection) {
    check_param("cblock", "shortcut_weight", *shortcut_weight, x, {cout, cin});
    check_param("cblock", "shortcut_bias", *shortcut_bias, x, {cout});
  } else {
    TORCH_CHECK(cin == cout, "hwnas::cblock: an identity shortcut needs in == out channels, got ", cin, " -> ",
                cout, "; pass shortcut_weight/shortcut_bias");
  }
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const at::Tensor xc = to_channels_last(x);
  const at::Tensor xr = as_rows(xc);
  at::Tensor s = at::mm(xr, squeeze_weight.t());
  k.bias_relu_(s, squeeze_bias);
  check_branch_params("cblock", empty_channels_last(xc, mid), p);
  at::Tensor mixed = at::empty_like(s);
  branch_sum_rows(s, p, n, h, w, mixed, k);

  at::Tensor out = empty_channels_last(xc, cout);
  at::Tensor rows = as_rows(out);
  if (projection) {
    at::mm_out(rows, xr, shortcut_weight->t());
    rows.addmm_(mixed, restore_weight.t());
    k.bias_relu_(rows, at::add(restore_bias, *shortcut_bias));
  } else {
    at::addmm_out(rows, xr, mixed, restore_weight.t());
    k.bias_relu_(rows, restore_bias);
  }
  return out;
}

}  // namespace hwnas

TORCH_LIBRARY(hwnas, m) {
  // Inference only (BN folded, no autograd): x (N, mid, H, W) -> sum of both gated branches (N, mid, H, W).
  m.def(
      "gated_branch_sum(Tensor x, Tensor[] pw_weight, Tensor[] dw_weight, Tensor[] dw_bias, int split, "
      "Tensor fc1_weight, Tensor fc1_bias, Tensor fc2_weight, Tensor fc2_bias) -> Tensor");
  // Inference only: one whole CBlock, x (N, in, H, W) -> (N, out, H, W), channels_last.
  m.def(
      "cblock(Tensor x, Tensor squeeze_weight, Tensor squeeze_bias, Tensor[] pw_weight, Tensor[] dw_weight, "
      "Tensor[] dw_bias, int split, Tensor fc1_weight, Tensor fc1_bias, Tensor fc2_weight, Tensor fc2_bias, "
      "Tensor restore_weight, Tensor restore_bias, Tensor? shortcut_weight, Tensor? shortcut_bias) -> Tensor");
}
