// The GRU's two time loops (cells/gru_scan.py) in C++, for the CPU, every flag: the per-step
// Python calls and the elementwise kernels that each pass over memory once are what the torch
// loops lose to torch's fused kernels. The matmuls stay ATen's (MKL), and so does tanh (MKL's
// vector math); sigmoid is ATen's vectorised formula (equal to torch.sigmoid's); the rest of a
// step is two passes over the batch. Built on first use by cells/native.py.
//
// Reset after (and no reset): p (T, B, W) holds per step the columns of gru_scan.py, W = (nG + 2) H:
//     [ xn | the gates (nG blocks, r first where there is one) | slot ]
// Each step's hidden matmul goes to a scratch that stays in cache (MKL took 0.87x the time so
// than adding into p_t, which the projection wrote long before); then p_t's gate columns take
// g = σ(p_g + h W_g^T), the slot hn = p_slot + h W_n^T (the slot's bias is b_hn), and
//     n = tanh(xn + r ⊙ hn)    h' = mix(h, n, gates)
// Every reset-after step is linear in ∂L/∂h' and elementwise: ∂L/∂ column block q of p_t is
// D ⊙ C_q and the direct path (not through the matmul) D ⊙ E, where D = ∂L/∂h_{t+1} and C, E
// depend on the forward's values only. So the forward, while a step's values are in cache,
// overwrites p_t with C and writes E; the backward of a step is one pass D ⊙ C plus its matmul.
//     a_n = ∂h'/∂n:  tied 1 - z, untied i, minimal f, replace 1
//     C_xn = a_n (1 - n²),  C_slot = C_xn ⊙ r (C_xn without r)
//     C_g = a_g σ'(g), a_g = ∂h'/∂g:  tied z: h - n;  untied z: h, i: n;
//                                    r: C_xn ⊙ hn;  minimal f: n - h + C_xn ⊙ hn
//     E = ∂h'/∂h (direct):  tied z, untied z, minimal 1 - f, replace 0 (none)
// Reset before: p has no slot, W = (nG + 1) H; the gates' matmul comes first, then r ⊙ h (kept
// per step in rh: W_n's input, for its gradient) goes through W_n:
//     n = tanh(xn + (r ⊙ h) W_n^T)
// A step's backward is linear in D too, but through a second matmul: with drh = ∂L/∂(r ⊙ h) =
// (D ⊙ C_xn) W_n, the reset gate's pre-activation takes drh ⊙ C_r, C_r = h σ'(r), and the direct
// path drh ⊙ r besides D ⊙ E. So C holds the parts of every column linear in D (r's: 0, MGU's
// f: (n - h) σ'(f)), and e per step [E | r | C_r] (E = 0 without update gate); a backward step
// is a pass, W_n's matmul, a second pass and the gates' matmul.
#include "loops.h"

namespace {

using rnnbench::grain;

enum Mix : int64_t { TIED = 0, UNTIED = 1, MINIMAL = 2, REPLACE = 3 };

// Rows [b0, b1) of p_t after the hidden matmul hw (B, W - H) = h W^T, gates then n:
// gates = σ(p_g + hw_g), the slot's hn = p_slot + hw_n, and n's pre-activation xn + r ⊙ hn into nb.
template <typename s>
void gates_pre_n(s* p, const s* hw, s* nb, int64_t b0, int64_t b1, int64_t H, int64_t W, bool has_r) {
  const int64_t G = W - 2 * H;  // gate columns
  for (int64_t b = b0; b < b1; ++b) {
    s* __restrict__ xn = p + b * W;
    s* __restrict__ g = xn + H;
    s* __restrict__ hn = xn + W - H;
    const s* __restrict__ hg = hw + b * (W - H);
    const s* __restrict__ hh = hg + G;
    s* __restrict__ o = nb + b * H;
    rnnbench::sigmoid(g, g, hg, G);
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) hn[k] += hh[k];
    if (has_r) {
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) o[k] = xn[k] + g[k] * hn[k];
    } else {
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) o[k] = xn[k] + hn[k];
    }
  }
}

// Reset before, rows [b0, b1) after the gates' matmul hw (B, W - H) = h W_g^T: the gates
// σ(p_g + hw) in p_t, and rh = r ⊙ h (r: the first gate).
template <typename s>
void gates_rh(s* p, const s* hw, const s* h, s* rh, int64_t b0, int64_t b1, int64_t H, int64_t W) {
  for (int64_t b = b0; b < b1; ++b) {
    s* __restrict__ g = p + b * W + H;
    const s* __restrict__ hb = h + b * H;
    s* __restrict__ o = rh + b * H;
    rnnbench::sigmoid(g, g, hw + b * (W - H), W - H);
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) o[k] = g[k] * hb[k];
  }
}

// Reset before, rows [b0, b1): n's pre-activation xn + hn into nb, hn (B, H) = (r ⊙ h) W_n^T.
template <typename s>
void pre_n(const s* p, const s* hn, s* nb, int64_t b0, int64_t b1, int64_t H, int64_t W) {
  for (int64_t b = b0; b < b1; ++b) {
    const s* __restrict__ xn = p + b * W;
    const s* __restrict__ y = hn + b * H;
    s* __restrict__ o = nb + b * H;
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) o[k] = xn[k] + y[k];
  }
}

// h' of rows [b0, b1) from h, n and the gates; with C (autograd records the call) p's row
// becomes the coefficients C, and E its rows of e (after: (B, H); before: (B, 3H), [E | r | C_r]).
template <typename s, bool C, bool After>
void mix(s* p, const s* h, const s* nb, s* hout, s* e, int64_t b0, int64_t b1, int64_t H, int64_t W,
         Mix kind, bool has_r) {
  const int64_t es = After ? H : 3 * H;  // e's row stride
  const int64_t z_col = has_r ? 2 * H : H;  // untied/tied: z after r; untied: i after z
  for (int64_t b = b0; b < b1; ++b) {
    s* __restrict__ xn = p + b * W;
    s* __restrict__ g0 = xn + H;  // r, or MGU's f
    s* __restrict__ z = xn + z_col;
    s* __restrict__ ig = z + H;
    s* __restrict__ slot = xn + W - H;
    const s* __restrict__ hb = h + b * H;
    const s* __restrict__ n = nb + b * H;
    s* __restrict__ o = hout + b * H;
    s* __restrict__ eb = e ? e + b * es : nullptr;
    s* __restrict__ rb = After ? nullptr : eb + H;    // before: r, for the direct path
    s* __restrict__ crb = After ? nullptr : eb + 2 * H;  // before: C_r
    switch (kind) {
      case TIED:
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          const s zk = z[k], nk = n[k], d = hb[k] - nk;
          o[k] = nk + zk * d;
          if constexpr (C) {
            eb[k] = zk;
            z[k] = d * zk * (1 - zk);
            xn[k] = (1 - zk) * (1 - nk * nk);
          }
        }
        break;
      case UNTIED:
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          const s zk = z[k], ik = ig[k], nk = n[k], hk = hb[k];
          o[k] = zk * hk + ik * nk;
          if constexpr (C) {
            eb[k] = zk;
            z[k] = hk * zk * (1 - zk);
            ig[k] = nk * ik * (1 - ik);
            xn[k] = ik * (1 - nk * nk);
          }
        }
        break;
      case MINIMAL:  // f is the reset too: its coefficient takes both paths
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          const s fk = g0[k], nk = n[k], d = nk - hb[k];
          o[k] = hb[k] + fk * d;
          if constexpr (C) {
            const s cn = fk * (1 - nk * nk);
            eb[k] = 1 - fk;
            if constexpr (After) {
              g0[k] = (d + cn * slot[k]) * fk * (1 - fk);
              slot[k] = cn * fk;
            } else {
              rb[k] = fk;
              crb[k] = hb[k] * fk * (1 - fk);
              g0[k] = d * fk * (1 - fk);
            }
            xn[k] = cn;
          }
        }
        continue;
      case REPLACE:
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          o[k] = n[k];
          if constexpr (C) {
            xn[k] = 1 - n[k] * n[k];
            if constexpr (!After) eb[k] = 0;
          }
        }
        break;
    }
    if constexpr (!C) continue;
    if constexpr (!After) {  // r's coefficients: on drh, and the direct path's
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        const s rk = g0[k];
        rb[k] = rk;
        crb[k] = hb[k] * rk * (1 - rk);
        g0[k] = 0;
      }
    } else if (has_r) {  // r's coefficient reads hn before the slot becomes C_slot
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        const s rk = g0[k], cn = xn[k];
        g0[k] = cn * slot[k] * rk * (1 - rk);
        slot[k] = cn * rk;
      }
    } else {
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) slot[k] = xn[k];
    }
  }
}

// One backward step for rows [b0, b1): dp_t = D ⊙ C_t (every column block) and, unless direct
// is null (reset before: back_before's), direct = D ⊙ E_t (+ h_t's own output gradient dn, where
// there is one).
template <typename s>
void back_step(const s* c, const s* D, const s* e, const s* dn, s* dp, s* direct, int64_t b0, int64_t b1,
               int64_t H, int64_t W) {
  for (int64_t b = b0; b < b1; ++b) {
    const s* __restrict__ Db = D + b * H;
    for (int64_t q = 0; q < W; q += H) {
      const s* __restrict__ cq = c + b * W + q;
      s* __restrict__ dq = dp + b * W + q;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) dq[k] = Db[k] * cq[k];
    }
    if (!direct) continue;
    s* __restrict__ o = direct + b * H;
    const s* __restrict__ dnb = dn ? dn + b * H : nullptr;
    if (e) {
      const s* __restrict__ eb = e + b * H;
      if (dnb) {
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) o[k] = dnb[k] + Db[k] * eb[k];
      } else {
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) o[k] = Db[k] * eb[k];
      }
    } else {
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) o[k] = dnb ? dnb[k] : s(0);
    }
  }
}

// Reset before, the second pass of a backward step for rows [b0, b1), with drh (B, H) =
// ∂L/∂(r ⊙ h): r's column of dp_t takes drh ⊙ C_r, and direct = D ⊙ E + drh ⊙ r (+ dn).
template <typename s>
void back_before(const s* D, const s* e, const s* drh, const s* dn, s* dp, s* direct, int64_t b0, int64_t b1,
                 int64_t H, int64_t W) {
  for (int64_t b = b0; b < b1; ++b) {
    const s* __restrict__ Db = D + b * H;
    const s* __restrict__ E = e + b * 3 * H;
    const s* __restrict__ r = E + H;
    const s* __restrict__ cr = E + 2 * H;
    const s* __restrict__ d = drh + b * H;
    s* __restrict__ dr = dp + b * W + H;
    s* __restrict__ o = direct + b * H;
    #pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      dr[k] += d[k] * cr[k];
      o[k] = Db[k] * E[k] + d[k] * r[k];
    }
    if (dn) {
      const s* __restrict__ dnb = dn + b * H;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) o[k] += dnb[k];
    }
  }
}

}  // namespace

// p (T, B, W) after the projection, hs (T + 1, B, H) with hs[0] = h_0; e with grad (T, B, H)
// (after; empty for replace) or (T, B, 3H) (before), else empty; rh (Tr, B, H) before, r ⊙ h of
// step t in rh[t % Tr] (Tr = T with grad), else empty; w_t (H, W') the hidden weights
// transposed, gates then n (copied contiguous: MKL is faster on it). Writes hs[1..T] and, with
// grad, C into p and e.
void gru_forward(at::Tensor p, at::Tensor hs, at::Tensor e, at::Tensor rh, at::Tensor w_t, int64_t kind, bool has_r,
                 bool after, bool grad) {
  at::NoGradGuard no_grad;
  const int64_t T = p.size(0), B = p.size(1), W = p.size(2), H = hs.size(2), es = after ? H : 3 * H;
  const auto Hs = hs.unbind(0);
  // the first matmul's weights (after: all blocks; before: the gates'), W - H columns either way
  const at::Tensor w = w_t.narrow(1, 0, W - H).contiguous();
  const at::Tensor w_n = after ? at::Tensor() : w_t.narrow(1, W - H, H).contiguous();
  at::Tensor n = at::empty({B, H}, hs.options()), hw = at::empty({B, W - H}, hs.options());
  at::Tensor hn = after ? at::Tensor() : at::empty({B, H}, hs.options());
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "gru_native_forward", [&] {
    using s = scalar_t;
    s *pp = p.data_ptr<s>(), *hp = hs.data_ptr<s>(), *np = n.data_ptr<s>(), *hwp = hw.data_ptr<s>();
    s* ep = e.numel() ? e.data_ptr<s>() : nullptr;
    for (int64_t t = 0; t < T; ++t) {
      s *pt = pp + t * B * W, *h = hp + t * B * H, *e_t = ep ? ep + t * B * es : nullptr;
      at::mm_out(hw, Hs[t], w);
      if (after) {
        at::parallel_for(0, B, grain(W), [&](int64_t b0, int64_t b1) {
          gates_pre_n(pt, hwp, np, b0, b1, H, W, has_r);
        });
      } else {
        const at::Tensor rh_t = rh[t % rh.size(0)];
        at::parallel_for(0, B, grain(W), [&](int64_t b0, int64_t b1) {
          gates_rh(pt, hwp, h, rh_t.data_ptr<s>(), b0, b1, H, W);
        });
        at::mm_out(hn, rh_t, w_n);
        at::parallel_for(0, B, grain(W), [&](int64_t b0, int64_t b1) {
          pre_n(pt, hn.data_ptr<s>(), np, b0, b1, H, W);
        });
      }
      n.tanh_();
      at::parallel_for(0, B, grain(W), [&](int64_t b0, int64_t b1) {
        const Mix m = static_cast<Mix>(kind);
        if (grad && after) {
          mix<s, true, true>(pt, h, np, h + B * H, e_t, b0, b1, H, W, m, has_r);
        } else if (grad) {
          mix<s, true, false>(pt, h, np, h + B * H, e_t, b0, b1, H, W, m, has_r);
        } else {
          mix<s, false, true>(pt, h, np, h + B * H, e_t, b0, b1, H, W, m, has_r);
        }
      });
    }
  });
}

// dout (T, B, H) contiguous; p, e, rh, hs: the forward's; w (W', H) the hidden weights, gates
// then n; dp (K, B, W) a buffer of K steps; x2 (T B, I') the projection's input; accumulates into
// dw_hh_t (H, W') and dw_proj_t (I', W), writes dx (T B, I) unless it is empty (w_proj_x (W, I):
// the projection's weights without the bias column). As gru_scan.py's backward: every K steps the
// buffer turns into its share of the weight gradients. Returns ∂L/∂h_0.
at::Tensor gru_backward(at::Tensor dout, at::Tensor p, at::Tensor e, at::Tensor rh, at::Tensor hs, at::Tensor w,
                        at::Tensor dp, at::Tensor x2, at::Tensor dw_hh_t, at::Tensor dw_proj_t, at::Tensor dx,
                        at::Tensor w_proj_x) {
  at::NoGradGuard no_grad;
  const int64_t T = dout.size(0), B = dout.size(1), H = dout.size(2), W = p.size(2), K = dp.size(0);
  const bool after = rh.numel() == 0;
  const int64_t es = after ? H : 3 * H;
  at::Tensor Ds = at::empty({2, B, H}, dout.options());
  at::Tensor drh = after ? at::Tensor() : at::empty({B, H}, dout.options());
  const at::Tensor w_first = w.narrow(0, 0, W - H), w_n = after ? at::Tensor() : w.narrow(0, W - H, H);
  const auto DH = dp.narrow(2, H, W - H).unbind(0), DXN = dp.narrow(2, 0, H).unbind(0);
  auto D = Ds.unbind(0);
  D[0].copy_(dout[T - 1]);
  int cur = 0;  // D[cur] = ∂L/∂h_{t+1} along all paths
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "gru_native_backward", [&] {
    using s = scalar_t;
    const s *pp = p.data_ptr<s>(), *dop = dout.data_ptr<s>();
    const s* ep = e.numel() ? e.data_ptr<s>() : nullptr;
    s* dpp = dp.data_ptr<s>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t j = t % K;
      const s *Dp = D[cur].data_ptr<s>(), *e_t = ep ? ep + t * B * es : nullptr;
      s* dirp = D[cur ^ 1].data_ptr<s>();  // the direct path, to which the matmul then adds
      const s* dn = t ? dop + (t - 1) * B * H : nullptr;
      at::parallel_for(0, B, grain(W), [&](int64_t b0, int64_t b1) {
        back_step(pp + t * B * W, Dp, e_t, dn, dpp + j * B * W, after ? dirp : nullptr, b0, b1, H, W);
      });
      if (!after) {  // through W_n: drh = ∂L/∂(r ⊙ h), then r's share and the direct path
        at::mm_out(drh, DXN[j], w_n);
        at::parallel_for(0, B, grain(W), [&](int64_t b0, int64_t b1) {
          back_before(Dp, e_t, drh.data_ptr<s>(), dn, dpp + j * B * W, dirp, b0, b1, H, W);
        });
      }
      cur ^= 1;
      D[cur].addmm_(DH[j], w_first);
      if (j == 0) {  // steps t .. t+k-1 are in the buffer
        const int64_t k = std::min(K, T - t);
        const at::Tensor rows = dp.narrow(0, 0, k).view({k * B, W});
        dw_hh_t.narrow(1, 0, W - H).addmm_(hs.narrow(0, t, k).reshape({k * B, H}).t(), rows.narrow(1, H, W - H));
        if (!after) {  // W_n saw r ⊙ h
          dw_hh_t.narrow(1, W - H, H).addmm_(rh.narrow(0, t, k).reshape({k * B, H}).t(), rows.narrow(1, 0, H));
        }
        rnnbench::projection_grads(rows, x2, w_proj_x, dw_proj_t, dx, t, k, B);
      }
    }
  });
  return D[cur].clone();
}
