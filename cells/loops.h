// What the compiled loops (gru_native.cpp, lstm_native.cpp) share.
#pragma once
#include "native.h"

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

// A backward's buffer rows (n B, W) = ∂L/∂ the projection of steps t .. t+n-1: their share of
// its weight gradient, accumulated transposed into dw_proj_t (I', W) from its input x2 (T B, I'),
// and of ∂L/∂x into dx (T B, I) unless dx is empty (w_proj_x (W, I): the weights without the
// bias column).
inline void projection_grads(const at::Tensor& rows, const at::Tensor& x2, const at::Tensor& w_proj_x,
                             at::Tensor& dw_proj_t, at::Tensor& dx, int64_t t, int64_t n, int64_t B) {
  dw_proj_t.addmm_(x2.narrow(0, t * B, n * B).t(), rows);
  if (dx.numel()) {
    at::Tensor part = dx.narrow(0, t * B, n * B);
    at::mm_out(part, rows, w_proj_x);
  }
}

}  // namespace rnnbench
