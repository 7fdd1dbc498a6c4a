// What the compiled loops (gru_native.cpp, lstm_native.cpp; bound in native.cpp) share.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

namespace rnnbench {

// Batch rows per at::parallel_for task, for rows of W values.
inline int64_t grain(int64_t W) { return std::max<int64_t>(1, 32768 / W); }

// out[k] = σ(a[k] + b[k]) for k < n (b may be null: σ(a)); out may be a. ATen's vectorised
// formula, equal to torch.sigmoid's.
template <typename s>
void sigmoid(s* out, const s* a, const s* b, int64_t n) {
  using V = at::vec::Vectorized<s>;
  int64_t k = 0;
  for (; k + V::size() <= n; k += V::size()) {
    const V v = b ? V::loadu(a + k) + V::loadu(b + k) : V::loadu(a + k);
    (V(1) / (V(1) + v.neg().exp())).store(out + k);
  }
  for (; k < n; ++k) out[k] = s(1) / (s(1) + std::exp(-(b ? a[k] + b[k] : a[k])));
}

}  // namespace rnnbench

void gru_forward(at::Tensor p, at::Tensor hs, at::Tensor e, at::Tensor rh, at::Tensor w_t, int64_t kind, bool has_r,
                 bool after, bool grad);
at::Tensor gru_backward(at::Tensor dout, at::Tensor p, at::Tensor e, at::Tensor rh, at::Tensor hs, at::Tensor w,
                        at::Tensor dp, at::Tensor x2, at::Tensor dw_hh_t, at::Tensor dw_proj_t, at::Tensor dx,
                        at::Tensor w_proj_x);
void lstm_forward(at::Tensor coef, at::Tensor hs, at::Tensor cs, at::Tensor kf, at::Tensor w_t, at::Tensor w_ch,
                  std::vector<int64_t> cols, std::vector<int64_t> peep, bool coupled, bool tanh_in, bool tanh_out,
                  bool grad);
std::vector<at::Tensor> lstm_backward(at::Tensor dout, at::Tensor dc, at::Tensor coef, at::Tensor kf, at::Tensor hs,
                                      at::Tensor cs, at::Tensor w, at::Tensor dp, at::Tensor x2, at::Tensor dw_hh_t,
                                      at::Tensor dw_proj_t, at::Tensor dx, at::Tensor w_proj_x, at::Tensor dw_ch,
                                      std::vector<int64_t> cols, std::vector<int64_t> peep);
