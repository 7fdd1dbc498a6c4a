"""The GRU layer as one autograd Function: a forward loop without autograd bookkeeping that keeps
what the backward needs, and a hand-written backward loop with few passes over memory per step
(fused tanh/sigmoid backward kernels, results written in place) whose weight gradient is one
matmul over all steps instead of T small ones.

Every GRU flag is covered. Blocks come in the order gates, then n (the caller permutes torch's
r, z, n, i into it), so that the gates are one contiguous slice of the columns:
    g = σ(xg_t + h W_g^T)                         for each gate r, z, i (MGU: f, with r = f)
    after:  hn = h W_n^T + b_hn,  n = tanh(xn_t + r ⊙ hn)
    before: rh = r ⊙ h,           n = tanh(xn_t + rh W_n^T)   (b_hn sits in xn: outside r)
    tied: h' = n + z ⊙ (h - n);  untied: h' = z ⊙ h + i ⊙ n;  MGU: h' = h + f ⊙ (n - h);  no z: h' = n
xg and xn are the input projections, with b_ih and the hidden biases that sit outside r. Equality
with the step-by-step cell (outputs and every gradient) is tested for each flag, and gradcheck.
"""
from dataclasses import dataclass

import torch

tanh_backward = torch.ops.aten.tanh_backward.grad_input  # grad * (1 - y²), written into grad_input
sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input  # grad * y (1 - y)


@dataclass(frozen=True)
class Spec:
    gates: tuple[str, ...]  # gate blocks, in their column order
    reset: str | None  # the gate acting as r ('r', 'f' for MGU) or None
    mix: str  # 'tied' | 'untied' | 'minimal' | 'replace'
    reset_after: bool


def _steps(a: torch.Tensor | None):
    """The per-step views of a (T, ...) buffer, or None."""
    return None if a is None else a.unbind(0)


class GRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xg, xn, h0, w_hh, b_hn, spec: Spec):
        """xg (T, B, nG), xn (T, B, H), h0 (B, H), w_hh (nG + H, H) gates then n, b_hn (H,) or
        None (reset after only) -> h_1 .. h_T (T, B, H)."""
        T, B, H = xn.shape
        nG = xg.shape[-1]
        col = {g: slice(j * H, (j + 1) * H) for j, g in enumerate(spec.gates)}
        hs = xn.new_empty(T + 1, B, H)  # h_0 .. h_T
        hs[0] = h0
        gates, ns = xn.new_empty(T, B, nG), xn.new_empty(T, B, H)
        diff = xn.new_empty(T, B, H) if spec.mix in ("tied", "minimal") else None  # h - n, or n - h
        # after: hn = h W_n^T + b_hn, needed by the backward; before: r ⊙ h, W_n's input
        aux = xn.new_empty(T, B, H) if spec.reset_after or spec.reset else None
        w_g_t, w_n_t = w_hh[:nG].t(), w_hh[nG:].t()
        # per-step views, made once (indexing inside the loop costs as much as a small kernel)
        H_, G_, N_, XG, XN = hs.unbind(0), gates.unbind(0), ns.unbind(0), xg.unbind(0), xn.unbind(0)
        gate = {name: gates[..., c].unbind(0) for name, c in col.items()}
        r_, A_, D_ = gate.get(spec.reset), _steps(aux), _steps(diff)
        for t in range(T):
            h, n = H_[t], N_[t]
            torch.addmm(XG[t], h, w_g_t, out=G_[t]).sigmoid_()  # two matmuls: xg rides in the first
            r = r_[t] if r_ else None
            if spec.reset_after:
                hn = torch.mm(h, w_n_t, out=A_[t]) if b_hn is None else torch.addmm(b_hn, h, w_n_t, out=A_[t])
                (torch.add(XN[t], hn, out=n) if r is None else torch.addcmul(XN[t], r, hn, out=n)).tanh_()
            else:
                torch.addmm(XN[t], torch.mul(r, h, out=A_[t]), w_n_t, out=n).tanh_()
            if spec.mix == "tied":
                torch.addcmul(n, gate["z"][t], torch.sub(h, n, out=D_[t]), out=H_[t + 1])
            elif spec.mix == "minimal":
                torch.addcmul(h, gate["f"][t], torch.sub(n, h, out=D_[t]), out=H_[t + 1])
            elif spec.mix == "untied":
                torch.mul(gate["z"][t], h, out=H_[t + 1]).addcmul_(gate["i"][t], n)
            else:
                H_[t + 1].copy_(n)
        ctx.spec, ctx.has_b_hn = spec, b_hn is not None
        ctx.save_for_backward(hs, gates, ns, diff, aux, w_hh)
        return hs[1:]

    @staticmethod
    def backward(ctx, dout):
        hs, gates, ns, diff, aux, w_hh = ctx.saved_tensors
        spec = ctx.spec
        T, B, H = dout.shape
        nG = gates.shape[-1]
        col = {g: slice(j * H, (j + 1) * H) for j, g in enumerate(spec.gates)}
        # ∂L/∂(h W^T): the gates' pre-activations, then hn (after) or nothing (before)
        dhid = dout.new_empty(T, B, nG + H if spec.reset_after else nG)
        dxn = dout.new_empty(T, B, H)  # ∂L/∂ n's pre-activation
        w_rows, w_n = (w_hh if spec.reset_after else w_hh[:nG]), w_hh[nG:]
        H_, N_, A_, D_, DH, DXN = (_steps(a) for a in (hs, ns, aux, diff, dhid, dxn))
        gate = {name: gates[..., c].unbind(0) for name, c in col.items()}
        dgate = {name: dhid[..., c].unbind(0) for name, c in col.items()}
        dhn_ = dhid[..., nG:].unbind(0) if spec.reset_after else None
        D = dout[T - 1]  # ∂L/∂h_{t+1} along all paths
        douts = (None, *dout[:-1].unbind(0))  # douts[t]: h_t's own output gradient (h_0 has none)
        for t in range(T - 1, -1, -1):
            h, n, d_next = H_[t], N_[t], douts[t]
            act = {}  # ∂L/∂ each gate's activation
            if spec.mix == "tied":  # direct: the part of ∂L/∂h_t that does not pass the matmul
                z = gate["z"][t]
                dn, act["z"] = torch.addcmul(D, D, z, value=-1), D * D_[t]
                direct = D * z if d_next is None else torch.addcmul(d_next, D, z)
            elif spec.mix == "minimal":
                dn = D * gate["f"][t]
                direct, act["f"] = D - dn, D * D_[t]
                if d_next is not None:
                    direct += d_next
            elif spec.mix == "untied":
                z = gate["z"][t]
                dn, act["z"], act["i"] = D * gate["i"][t], D * h, D * n
                direct = D * z if d_next is None else torch.addcmul(d_next, D, z)
            else:
                dn, direct = D, d_next
            dpre_n = tanh_backward(dn, n, grad_input=DXN[t])
            r = gate[spec.reset][t] if spec.reset else None
            if spec.reset_after:
                if r is None:
                    dhn_[t].copy_(dpre_n)
                else:
                    torch.mul(dpre_n, r, out=dhn_[t])
                    hn = A_[t]
                    act[spec.reset] = torch.addcmul(act[spec.reset], dpre_n, hn) if spec.reset in act else dpre_n * hn
            else:
                drh = torch.mm(dpre_n, w_n)  # ∂L/∂(r ⊙ h)
                act[spec.reset] = torch.addcmul(act[spec.reset], drh, h) if spec.reset in act else drh * h
                direct = drh * r if direct is None else torch.addcmul(direct, drh, r)
            for name in spec.gates:
                sigmoid_backward(act[name], gate[name][t], grad_input=dgate[name][t])
            D = torch.mm(DH[t], w_rows) if direct is None else torch.addmm(direct, DH[t], w_rows)
        dh0 = D  # the last product is ∂L/∂h_0 (no output of its own)
        flat = lambda a: a.reshape(T * B, a.shape[-1])  # noqa: E731
        dw = (flat(hs[:-1]).t() @ flat(dhid)).t()  # the weight gradient: one matmul over all steps
        if not spec.reset_after:
            dw = torch.cat([dw, (flat(aux).t() @ flat(dxn)).t()])  # W_n saw r ⊙ h
        db_hn = dhid[..., nG:].sum((0, 1)) if ctx.has_b_hn else None
        return dhid[..., :nG], dxn, dh0, dw, db_hn, None
