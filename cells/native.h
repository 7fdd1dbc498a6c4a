// The compiled loops' entry points (gru_native.cpp, lstm_native.cpp) and the float mode of torch's
// threads (threads.cpp), as native.cpp binds them.
// Only the tensor type here: the bindings' translation unit, the build's longest, stays small.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

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
bool set_flush_denormal(bool on);
