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

}  // namespace rnnbench
