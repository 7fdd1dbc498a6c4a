// The LSTM's two time loops (cells/lstm_scan.py) in C++, for the CPU, every flag: as
// gru_native.cpp for the GRU, the per-step Python calls and the elementwise kernels are what the
// torch loops lose; the matmuls and tanh stay ATen's (MKL), sigmoid is ATen's vectorised formula.
//
// coef (T, B, G H) holds each step's input projection (both biases), blocks i, f, g, o less the
// removed ones. A step: hw = h W^T into a scratch that stays in cache, then
//     i, f = σ(xw + hw + p ⊙ c)   g = act_in(xw_g + hw_g)     c' = f ⊙ c + i ⊙ g
//     o = σ(xw_o + hw_o + p_o ⊙ c')                            h' = o ⊙ act_out(c')
// with f = 1, i = 1, o = 1 for a removed gate, i = 1 - f coupled, p = 0 without peepholes.
// The backward of a step is linear in D = ∂L/∂h' and Dc = ∂L/∂c' (from the steps after) and
// elementwise, with coefficients of the forward's values only, which the forward writes (with
// grad) into coef (over the step's projection, once read) and kf:
//     dc = Dc + D ⊙ K       K = o act_out'(c') + C_o p_o       (∂L/∂c' along all paths)
//     ∂L/∂pre_o = D ⊙ C_o   C_o = act_out(c') σ'(o)
//     ∂L/∂pre_q = dc ⊙ C_q  C_i = g σ'(i),  C_f = (c, coupled c - g) σ'(f),  C_g = i act_in'(g)
//     ∂L/∂c = dc ⊙ F        F = f + C_i p_i + C_f p_f
// and ∂L/∂h = ∂L/∂pre W (+ h's own output gradient): one pass and one matmul per step. As in
// gru_native.cpp, ∂L/∂pre goes to a buffer of a few steps, turned into its share of the weight
// gradients and of ∂L/∂x while in cache.
// The loops are instantiated per set of gates present (I, F, O: own i, f, o columns); a removed
// peephole reads zeros.
#include "loops.h"

#include <type_traits>

namespace {

using rnnbench::grain;

// What a step reads and writes, each (B, ·) with the row stride given.
template <typename s>
struct Step {
  s* coef;                // coef_t (B, GH): the projection, activations, then coefficients
  int64_t ci, cf, cg, co;  // the blocks' columns in it (0 where absent: unused)
  const s *pi, *pf, *po;  // peephole weights (H), zeros where there are none
  const s* see_c[2];      // the peepholes of the row's first two blocks (i, f), null where none
  bool see_c2;            // o has a peephole
  s* gb;                  // g (B, H): its pre-activation, then act_in of it (over all rows at once)
  const s* c;             // c (B, H)
  s* c2;                  // c' (B, H)
  const s* a;             // act_out(c') (B, H): c2, or tanh's scratch
  s* h2;                  // h' (B, H)
  s* kf;                  // K and F (B, 2H), or null without grad
};

// Rows [b0, b1) after the hidden matmul hw (B, GH): coef_t += hw, with σ over i and f (the row's
// first n_if blocks) after their peepholes on c, and g's pre-activation copied to gb.
template <typename s>
void pre(const Step<s>& st, const s* hw, int64_t n_if, int64_t b0, int64_t b1, int64_t H, int64_t GH) {
  const bool peep = st.see_c[0] || st.see_c[1];
  for (int64_t b = b0; b < b1; ++b) {
    s* __restrict__ a = st.coef + b * GH;
    const s* __restrict__ y = hw + b * GH;
    if (peep) {
      #pragma omp simd
      for (int64_t k = 0; k < GH; ++k) a[k] += y[k];
      const s* __restrict__ c = st.c + b * H;
      for (int64_t q = 0; q < n_if; ++q) {
        const s* __restrict__ p = st.see_c[q];
        if (!p) continue;
        s* __restrict__ aq = a + q * H;
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) aq[k] += p[k] * c[k];
      }
      rnnbench::sigmoid(a, a, static_cast<const s*>(nullptr), n_if * H);
    } else {
      rnnbench::sigmoid(a, a, y, n_if * H);
      #pragma omp simd
      for (int64_t k = n_if * H; k < GH; ++k) a[k] += y[k];
    }
    s* __restrict__ g = st.gb + b * H;
    const s* __restrict__ ag = a + st.cg;
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) g[k] = ag[k];
  }
}

// Rows [b0, b1): c' = f ⊙ c + i ⊙ g.
template <typename s, bool I, bool F>
void cell(const Step<s>& st, int64_t b0, int64_t b1, int64_t H, int64_t GH, bool coupled) {
  for (int64_t b = b0; b < b1; ++b) {
    const s* __restrict__ row = st.coef + b * GH;
    const s* __restrict__ i = row + st.ci;
    const s* __restrict__ f = row + st.cf;
    const s* __restrict__ g = st.gb + b * H;
    const s* __restrict__ c = st.c + b * H;
    s* __restrict__ c2 = st.c2 + b * H;
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      const s fk = F ? f[k] : s(1), ik = I ? i[k] : (coupled ? 1 - fk : s(1));
      c2[k] = fk * c[k] + ik * g[k];
    }
  }
}

// Rows [b0, b1): o (after its peephole on c'), h' = o ⊙ act_out(c'); with C (autograd records
// the call) the coefficients, into the gates' columns and kf.
template <typename s, bool I, bool F, bool O, bool C>
void out(const Step<s>& st, int64_t b0, int64_t b1, int64_t H, int64_t GH, bool coupled, bool tanh_in,
         bool tanh_out) {
  for (int64_t b = b0; b < b1; ++b) {
    s* __restrict__ row = st.coef + b * GH;
    s* __restrict__ o = row + st.co;
    s* __restrict__ i = row + st.ci;
    s* __restrict__ f = row + st.cf;
    s* __restrict__ g = row + st.cg;
    const s* __restrict__ a = st.a + b * H;
    s* __restrict__ h2 = st.h2 + b * H;
    if constexpr (O) {
      if (st.see_c2) {
        const s* __restrict__ po = st.po;
        const s* __restrict__ c2 = st.c2 + b * H;
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) o[k] += po[k] * c2[k];
      }
      rnnbench::sigmoid(o, o, static_cast<const s*>(nullptr), H);
    }
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) h2[k] = O ? o[k] * a[k] : a[k];
    if constexpr (!C) continue;
    const s* __restrict__ gv = st.gb + b * H;
    const s* __restrict__ c = st.c + b * H;
    const s* __restrict__ pi = st.pi;
    const s* __restrict__ pf = st.pf;
    const s* __restrict__ po = st.po;
    s* __restrict__ K = st.kf + b * 2 * H;
    s* __restrict__ Fc = K + H;
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      const s ok = O ? o[k] : s(1), ak = a[k], fk = F ? f[k] : s(1), gk = gv[k];
      const s ik = I ? i[k] : (coupled ? 1 - fk : s(1));
      const s c_o = ak * ok * (1 - ok), c_i = gk * ik * (1 - ik);
      const s c_f = (coupled ? c[k] - gk : c[k]) * fk * (1 - fk);
      K[k] = ok * (tanh_out ? 1 - ak * ak : s(1)) + c_o * po[k];
      Fc[k] = fk + c_i * pi[k] + c_f * pf[k];
      g[k] = ik * (tanh_in ? 1 - gk * gk : s(1));
      if constexpr (O) o[k] = c_o;
      if constexpr (I) i[k] = c_i;
      if constexpr (F) f[k] = c_f;
    }
  }
}

// fn(I, F, O) with the three as std::bool_constant.
template <typename Fn>
void with_gates(bool i, bool f, bool o, Fn&& fn) {
  using Y = std::true_type;
  using N = std::false_type;
  switch (i * 4 + f * 2 + o) {
    case 0: return fn(N{}, N{}, N{});
    case 1: return fn(N{}, N{}, Y{});
    case 2: return fn(N{}, Y{}, N{});
    case 3: return fn(N{}, Y{}, Y{});
    case 4: return fn(Y{}, N{}, N{});
    case 5: return fn(Y{}, N{}, Y{});
    case 6: return fn(Y{}, Y{}, N{});
    default: return fn(Y{}, Y{}, Y{});
  }
}

// One backward step, rows [b0, b1): dc = Dc + D ⊙ K, ∂L/∂pre = dc ⊙ C (D ⊙ C for o, from column
// o_col on), Dc becomes ∂L/∂c = dc ⊙ F.
template <typename s>
void back_step(const s* coef, const s* kf, const s* D, s* Dc, s* dpre, int64_t o_col, int64_t b0, int64_t b1,
               int64_t H, int64_t GH) {
  for (int64_t b = b0; b < b1; ++b) {
    const s* __restrict__ Db = D + b * H;
    const s* __restrict__ K = kf + b * 2 * H;
    const s* __restrict__ F = K + H;
    s* __restrict__ dc = Dc + b * H;
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) dc[k] += Db[k] * K[k];
    for (int64_t q = 0; q < GH; q += H) {
      const s* __restrict__ cq = coef + b * GH + q;
      const s* __restrict__ by = q == o_col ? Db : dc;
      s* __restrict__ dq = dpre + b * GH + q;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) dq[k] = by[k] * cq[k];
    }
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) dc[k] *= F[k];
  }
}

}  // namespace

// coef (T, B, GH): the projection of every step (both biases); hs (T + 1, B, H) with hs[0] = h_0;
// cs (Tc, B, H) with cs[0] = c_0, c_t in cs[t % Tc] (Tc = T + 1 keeps every c, 2 only the last);
// kf (T, B, 2H), empty without grad; w_t (H, GH) the hidden weights transposed; w_ch (P, H) or
// empty; cols: the columns of i, f, g, o (-1: absent); peep: w_ch's row of i, f, o (-1: none).
// Writes hs[1..T], c and, with grad, the coefficients into coef and kf.
void lstm_forward(at::Tensor coef, at::Tensor hs, at::Tensor cs, at::Tensor kf, at::Tensor w_t, at::Tensor w_ch,
                  std::vector<int64_t> cols, std::vector<int64_t> peep, bool coupled, bool tanh_in, bool tanh_out,
                  bool grad) {
  at::NoGradGuard no_grad;
  const int64_t T = coef.size(0), B = coef.size(1), GH = coef.size(2), H = hs.size(2), Tc = cs.size(0);
  const int64_t n_if = (cols[0] >= 0) + (cols[1] >= 0);
  const at::Tensor w = w_t.contiguous();
  at::Tensor hw = at::empty({B, GH}, coef.options()), gb = at::empty({B, H}, coef.options());
  at::Tensor tb = at::empty({B, H}, coef.options()), zeros = at::zeros({H}, coef.options());
  const auto Hs = hs.unbind(0), Cs = cs.unbind(0);
  AT_DISPATCH_FLOATING_TYPES(coef.scalar_type(), "lstm_native_forward", [&] {
    using s = scalar_t;
    auto weight = [&](int64_t gate) {
      return peep[gate] < 0 ? zeros.data_ptr<s>() : w_ch.data_ptr<s>() + peep[gate] * H;
    };
    auto col = [&](int64_t gate) { return std::max<int64_t>(cols[gate], 0); };
    Step<s> st{};
    st.ci = col(0), st.cf = col(1), st.cg = col(2), st.co = col(3);
    st.pi = weight(0), st.pf = weight(1), st.po = weight(2);
    int64_t q = 0;  // i's and f's peepholes, by their block's place in the row
    for (int64_t gate = 0; gate < 2; ++gate) {
      if (cols[gate] >= 0) st.see_c[q++] = peep[gate] < 0 ? nullptr : weight(gate);
    }
    st.see_c2 = peep[2] >= 0;
    st.gb = gb.data_ptr<s>();
    const s* y = hw.data_ptr<s>();
    with_gates(cols[0] >= 0, cols[1] >= 0, cols[3] >= 0, [&](auto I, auto F, auto O) {
      constexpr bool i = decltype(I)::value, f = decltype(F)::value, o = decltype(O)::value;
      for (int64_t t = 0; t < T; ++t) {
        st.coef = coef.data_ptr<s>() + t * B * GH;
        st.c = Cs[t % Tc].data_ptr<s>();
        st.c2 = Cs[(t + 1) % Tc].data_ptr<s>();
        st.a = tanh_out ? tb.data_ptr<s>() : st.c2;
        st.h2 = Hs[t + 1].data_ptr<s>();
        st.kf = grad ? kf.data_ptr<s>() + t * B * 2 * H : nullptr;
        at::mm_out(hw, Hs[t], w);
        at::parallel_for(0, B, grain(GH), [&](int64_t b0, int64_t b1) { pre(st, y, n_if, b0, b1, H, GH); });
        if (tanh_in) gb.tanh_();
        at::parallel_for(0, B, grain(GH), [&](int64_t b0, int64_t b1) { cell<s, i, f>(st, b0, b1, H, GH, coupled); });
        if (tanh_out) at::tanh_out(tb, Cs[(t + 1) % Tc]);
        at::parallel_for(0, B, grain(GH), [&](int64_t b0, int64_t b1) {
          if (grad) {
            out<s, i, f, o, true>(st, b0, b1, H, GH, coupled, tanh_in, tanh_out);
          } else {
            out<s, i, f, o, false>(st, b0, b1, H, GH, coupled, tanh_in, tanh_out);
          }
        });
      }
    });
  });
}

// dout (T, B, H) contiguous; dc (B, H) ∂L/∂c_T, overwritten; coef, kf, hs, cs: the forward's; w
// (GH, H) the hidden weights; dp (K, B, GH) a buffer of K steps; x2 (T B, I') the projection's
// input; accumulates into dw_hh_t (H, GH), dw_proj_t (I', GH) and dw_ch (P, H) unless it is empty;
// writes dx (T B, I) unless it is empty (w_proj_x (GH, I): the projection's weights without the
// bias column); cols, peep: as lstm_forward's. Returns ∂L/∂h_0 and ∂L/∂c_0.
std::vector<at::Tensor> lstm_backward(at::Tensor dout, at::Tensor dc, at::Tensor coef, at::Tensor kf, at::Tensor hs,
                                      at::Tensor cs, at::Tensor w, at::Tensor dp, at::Tensor x2, at::Tensor dw_hh_t,
                                      at::Tensor dw_proj_t, at::Tensor dx, at::Tensor w_proj_x, at::Tensor dw_ch,
                                      std::vector<int64_t> cols, std::vector<int64_t> peep) {
  at::NoGradGuard no_grad;
  const int64_t T = dout.size(0), B = dout.size(1), H = dout.size(2), GH = coef.size(2), K = dp.size(0);
  at::Tensor Ds = at::empty({2, B, H}, dout.options());
  auto D = Ds.unbind(0);
  const auto DP = dp.unbind(0), DOUT = dout.unbind(0);
  D[0].copy_(DOUT[T - 1]);
  int cur = 0;  // D[cur] = ∂L/∂h_{t+1} along all paths
  AT_DISPATCH_FLOATING_TYPES(dout.scalar_type(), "lstm_native_backward", [&] {
    using s = scalar_t;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t j = t % K;
      const s *c = coef.data_ptr<s>() + t * B * GH, *k = kf.data_ptr<s>() + t * B * 2 * H;
      const s* Dp = D[cur].data_ptr<s>();
      s *dcp = dc.data_ptr<s>(), *dpp = DP[j].data_ptr<s>();
      at::parallel_for(0, B, grain(GH), [&](int64_t b0, int64_t b1) {
        back_step(c, k, Dp, dcp, dpp, cols[3], b0, b1, H, GH);
      });
      cur ^= 1;
      if (t) {
        at::addmm_out(D[cur], DOUT[t - 1], DP[j], w);
      } else {
        at::mm_out(D[cur], DP[j], w);
      }
      if (j == 0) {  // steps t .. t+k-1 are in the buffer
        const int64_t n = std::min(K, T - t);
        const at::Tensor rows = dp.narrow(0, 0, n).view({n * B, GH});
        dw_hh_t.addmm_(hs.narrow(0, t, n).reshape({n * B, H}).t(), rows);
        rnnbench::projection_grads(rows, x2, w_proj_x, dw_proj_t, dx, t, n, B);
        for (int64_t gate = 0; gate < 3; ++gate) {  // i and f saw c_t, o saw c_{t+1}
          if (peep[gate] < 0) continue;
          const at::Tensor seen = cs.narrow(0, t + (gate == 2), n).reshape({n * B, H});
          dw_ch[peep[gate]].add_((rows.narrow(1, cols[gate == 2 ? 3 : gate], H) * seen).sum(0));
        }
      }
    }
  });
  return {D[cur].clone(), dc};
}
