"""The GRU layer as one autograd Function: the input projection of every step in one matmul (the
bias as a column of x's ones), a forward loop without autograd bookkeeping that keeps what the
backward needs in the layer's reused workspace, and a hand-written backward loop with few passes
over memory per step (fused tanh/sigmoid backward kernels, results written in place).

Every GRU flag is covered. The projection p (T, B, W) holds, per step, the columns
    [ xn (H) | the gates, in their order (nG) | reset after: a slot (H) ]
where the slot's weights are zero and its bias is b_hn. Each step's hidden matmul adds into p in
place (no copies): after, h W^T over the gates and n lands in [gates | slot], so the slot holds
hn = h W_n^T + b_hn; before, the gates' matmul lands in the gates and W_n's into xn:
    g = σ(xg_t + h W_g^T)                         for each gate r, z, i (MGU: f, with r = f)
    after:  n = tanh(xn_t + r ⊙ hn)
    before: n = tanh(xn_t + (r ⊙ h) W_n^T)         (b_hn sits in xn: outside r)
    tied: h' = n + z ⊙ (h - n);  untied: h' = z ⊙ h + i ⊙ n;  MGU: h' = h + f ⊙ (n - h);  no z: h' = n
The backward writes ∂L/∂p_t in p's layout (from column H on, it is also ∂L/∂ the hidden matmul)
into a buffer of a few steps that stays in cache, and turns each full buffer into its share of
every weight gradient and of ∂L/∂x with a few matmuls over those steps: a buffer of all T steps
would be written cold, and costs more than the matmuls gain from being larger (on a CPU; on a
GPU one buffer of all steps is faster).
On a CPU, in float32 or float64, both loops run compiled where cells/native.py could build them
(gru_native.cpp: the same function, whose forward also leaves in p what makes each backward step
one elementwise pass, two about W_n's matmul before); elsewhere the torch loops below.
Equality with the step-by-step cell (outputs and every gradient) is tested for each flag, both
loops, and gradcheck.
"""
from dataclasses import dataclass

import torch

from .scans import block_slices, replayed, sigmoid_backward, steps, steps_per_buffer, tanh_backward
from .workspace import Workspace

MIXES = ("tied", "untied", "minimal", "replace")  # GRUSpec.mix; gru_native.cpp's Mix, in this order


@dataclass(frozen=True)
class GRUSpec:
    blocks: tuple[str, ...]  # the parameters' blocks, in their row order (n and the gates)
    reset: str | None  # the gate acting as r ('r', 'f' for MGU) or None
    mix: str  # one of MIXES
    reset_after: bool

    @property
    def gates(self) -> tuple[str, ...]:  # in their column order in p
        return tuple(b for b in self.blocks if b != "n")


class GRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, spec: GRUSpec, space: Workspace, grad: bool, loops, replay):
        """x (T, B, I); the layer's parameters, blocks in spec.blocks' order (biases None or both);
        h0 (B, H) -> h_1 .. h_T (T, B, H). The buffers only this Function reads (p, n, r ⊙ h, the
        backward's) come from the layer's `space`. grad: whether autograd records the call (the
        compiled loops skip the backward's coefficients without it). replay: the same function of
        the first six arguments by the step loop, for a backward that must be differentiable
        (scans.replayed)."""
        inputs = (x, w_ih, w_hh, b_ih, b_hh, h0)
        ctx.replay, ctx.n_inputs = replay, len(inputs)
        T, B, _ = x.shape
        H = h0.shape[-1]
        w_proj, w_hh = _assemble(spec, w_ih, w_hh, b_ih, b_hh, H)
        nG, W = w_hh.shape[0] - H, w_proj.shape[0]
        x2, p = x.reshape(T * B, -1), space.empty("p", (T * B, W), x)
        # a column of ones against w_proj's bias column: the matmul adds the bias (no copy of it
        # into all of p first), and the backward's matmul gives its gradient (no sum)
        if b_ih is not None:
            x2 = torch.cat([x2, x2.new_ones(T * B, 1)], 1)
        torch.mm(x2, w_proj.t(), out=p)
        p = p.view(T, B, W)
        hs = space.empty("hs", (T + 1, B, H), x)  # h_0 .. h_T: the output (reused once the caller drops it)
        hs[0] = h0
        ctx.spec, ctx.space, ctx.has_bias = spec, space, b_ih is not None
        ctx.native = loops
        if ctx.native:  # p becomes the backward's coefficients, e its direct path's (before: and r's)
            after = spec.reset_after
            e = (space.empty("e", (T, B, H if after else 3 * H), x) if grad and (spec.mix != "replace" or not after)
                 else x.new_empty(0))
            rh = x.new_empty(0) if after else space.empty("rh", (T if grad else 1, B, H), x)  # r ⊙ h, W_n's input
            ctx.native.gru_forward(p, hs, e, rh, w_hh.t(), MIXES.index(spec.mix), spec.reset is not None, after, grad)
            ctx.save_for_backward(x2, w_proj, p, hs, e, rh, w_hh, *inputs)
            return hs[1:]
        ns = space.empty("n", (T, B, H), x)
        diff = x.new_empty(B, H)  # h - n, or n - h: a scratch the backward recomputes
        rh = None if spec.reset_after else space.empty("rh", (T, B, H), x)  # r ⊙ h, W_n's input (before)
        w_rows_t, w_n_t = (w_hh if spec.reset_after else w_hh[:nG]).t(), w_hh[nG:].t()
        # per-step views, made once (indexing inside the loop costs as much as a small kernel)
        H_, N_, RH_ = (steps(a) for a in (hs, ns, rh))
        XN, HW, G_, HN_ = steps(p[..., :H]), steps(p[..., H:]), steps(p[..., H:H + nG]), steps(p[..., H + nG:])
        gate = {name: steps(p[..., c]) for name, c in _gate_columns(spec, H).items()}
        r_ = gate.get(spec.reset)
        for t in range(T):
            h, n = H_[t], N_[t]
            if spec.reset_after:  # gates and hn: one matmul
                HW[t].addmm_(h, w_rows_t)
                G_[t].sigmoid_()
                r, hn = (r_[t] if r_ else None), HN_[t]
                (torch.add(XN[t], hn, out=n) if r is None else torch.addcmul(XN[t], r, hn, out=n)).tanh_()
            else:
                G_[t].addmm_(h, w_rows_t).sigmoid_()
                torch.tanh(XN[t].addmm_(torch.mul(r_[t], h, out=RH_[t]), w_n_t), out=n)
            if spec.mix == "tied":
                torch.addcmul(n, gate["z"][t], torch.sub(h, n, out=diff), out=H_[t + 1])
            elif spec.mix == "minimal":
                torch.addcmul(h, gate["f"][t], torch.sub(n, h, out=diff), out=H_[t + 1])
            elif spec.mix == "untied":
                torch.mul(gate["z"][t], h, out=H_[t + 1]).addcmul_(gate["i"][t], n)
            else:
                H_[t + 1].copy_(n)
        ctx.save_for_backward(x2, w_proj, p, hs, ns, rh, w_hh, *inputs)
        return hs[1:]

    @staticmethod
    def backward(ctx, dout):
        if torch.is_grad_enabled():  # create_graph=True: gradients autograd can differentiate again
            return replayed(ctx, (dout,))
        x2, w_proj, p, hs = ctx.saved_tensors[:4]  # x2, w_proj: with the bias column; w_hh gates then n
        spec, w_hh = ctx.spec, ctx.saved_tensors[6]
        T, B, H = dout.shape
        I, nG, W = x2.shape[-1] - ctx.has_bias, w_hh.shape[0] - H, p.shape[-1]
        K = steps_per_buffer(dout, W)
        dp = ctx.space.empty("dp", (K, B, W), dout)  # ∂L/∂p_t of K steps, step t in row t % K
        # The weight gradients accumulate transposed, (I', W) and (H, nG + H): MKL's chunk products
        # into the untransposed shapes are slower (docs/backends.md)
        dw_hh_t, dw_proj_t = w_hh.new_zeros(H, w_hh.shape[0]), w_proj.new_zeros(w_proj.shape[1], W)
        dx = dout.new_empty(T, B, I) if ctx.needs_input_grad[0] else None
        if ctx.native:
            dx_rows = dout.new_empty(0) if dx is None else dx.view(T * B, I)
            D = ctx.native.gru_backward(dout.contiguous(), p, *ctx.saved_tensors[4:6], hs, w_hh, dp, x2, dw_hh_t,
                                        dw_proj_t, dx_rows, w_proj[:, :I])
            return _param_grads(ctx, dx, dw_proj_t.t(), I, D, dw_hh_t.t())
        ns, rh = ctx.saved_tensors[4:6]
        w_rows, w_n = (w_hh if spec.reset_after else w_hh[:nG]), w_hh[nG:]
        H_, N_ = steps(hs), steps(ns)
        HN_ = steps(p[..., H + nG:])
        gate = {name: steps(p[..., c]) for name, c in _gate_columns(spec, H).items()}
        dgate = {name: steps(dp[..., c]) for name, c in _gate_columns(spec, H).items()}
        DXN, DHN = steps(dp[..., :H]), steps(dp[..., H + nG:])  # ∂L/∂ n's pre-activation, ∂L/∂hn
        DH = steps(dp[..., H:] if spec.reset_after else dp[..., H:H + nG])  # ∂L/∂ the hidden matmul
        D = dout[T - 1]  # ∂L/∂h_{t+1} along all paths
        douts = (None, *dout[:-1].unbind(0))  # douts[t]: h_t's own output gradient (h_0 has none)
        for t in range(T - 1, -1, -1):
            h, n, d_next, j = H_[t], N_[t], douts[t], t % K
            act = {}  # ∂L/∂ each gate's activation
            if spec.mix == "tied":  # direct: the part of ∂L/∂h_t that does not pass the matmul
                z = gate["z"][t]
                dn, act["z"] = torch.addcmul(D, D, z, value=-1), torch.sub(h, n).mul_(D)
                direct = D * z if d_next is None else torch.addcmul(d_next, D, z)
            elif spec.mix == "minimal":
                dn = D * gate["f"][t]
                direct, act["f"] = D - dn, torch.sub(n, h).mul_(D)
                if d_next is not None:
                    direct += d_next
            elif spec.mix == "untied":
                z = gate["z"][t]
                dn, act["z"], act["i"] = D * gate["i"][t], D * h, D * n
                direct = D * z if d_next is None else torch.addcmul(d_next, D, z)
            else:
                dn, direct = D, d_next
            dpre_n = tanh_backward(dn, n, grad_input=DXN[j])
            r = gate[spec.reset][t] if spec.reset else None
            if spec.reset_after:
                if r is None:
                    DHN[j].copy_(dpre_n)
                else:
                    torch.mul(dpre_n, r, out=DHN[j])
                    hn = HN_[t]
                    act[spec.reset] = torch.addcmul(act[spec.reset], dpre_n, hn) if spec.reset in act else dpre_n * hn
            else:
                drh = torch.mm(dpre_n, w_n)  # ∂L/∂(r ⊙ h)
                act[spec.reset] = torch.addcmul(act[spec.reset], drh, h) if spec.reset in act else drh * h
                direct = drh * r if direct is None else torch.addcmul(direct, drh, r)
            for name in spec.gates:
                sigmoid_backward(act[name], gate[name][t], grad_input=dgate[name][j])
            D = torch.mm(DH[j], w_rows) if direct is None else torch.addmm(direct, DH[j], w_rows)
            if j == 0:  # steps t .. t+k-1 are in the buffer: their share of every gradient
                k = min(K, T - t)
                rows, seen = dp[:k].view(k * B, W), slice(t, t + k)
                hid = rows[:, H:] if spec.reset_after else rows[:, H:H + nG]
                dw_hh_t[:, :hid.shape[1]].addmm_(hs[seen].reshape(k * B, H).t(), hid)
                if not spec.reset_after:  # W_n saw r ⊙ h
                    dw_hh_t[:, nG:].addmm_(rh[seen].reshape(k * B, H).t(), rows[:, :H])
                dw_proj_t.addmm_(x2[t * B:(t + k) * B].t(), rows)
                if dx is not None:
                    torch.mm(rows, w_proj[:, :I], out=dx[seen].view(k * B, I))
        return _param_grads(ctx, dx, dw_proj_t.t(), I, D, dw_hh_t.t())  # the last D is ∂L/∂h_0


def _assemble(spec: GRUSpec, w_ih, w_hh, b_ih, b_hh, H: int):
    """The parameters in the loops' order: the projection's rows in p's column order (n, the
    gates, reset after the slot with zero weights), with the bias as a last column (the hidden
    biases outside r folded in; b_hn is the slot's, or, before, xn's); w_hh's rows gates then n."""
    rows = block_slices(spec.blocks, H)
    order = (*spec.gates, "n")
    if order != spec.blocks:
        w_hh = torch.cat([w_hh[rows[b]] for b in order])
    slot = [w_ih.new_zeros(H, w_ih.shape[1])] if spec.reset_after else []
    w_proj = torch.cat([*(w_ih[rows[b]] for b in ("n", *spec.gates)), *slot])
    if b_ih is not None:
        b_hn = b_hh[rows["n"]]
        bias = [b_ih[rows["n"]] + (0 if spec.reset_after else b_hn),
                *(b_ih[rows[g]] + b_hh[rows[g]] for g in spec.gates), *([b_hn] if spec.reset_after else [])]
        w_proj = torch.cat([w_proj, torch.cat(bias)[:, None]], 1)
    return w_proj, w_hh


def _param_grads(ctx, dx, dw_proj, I, dh0, dw_hh):
    """GRUScan.forward's input gradients from those of _assemble's parameters: dw_proj (W, I')
    in p's column order, dw_hh (nG + H, H) gates then n."""
    spec, H = ctx.spec, dh0.shape[-1]
    rows, cols = block_slices(spec.blocks, H), {"n": slice(0, H), **_gate_columns(spec, H)}  # p's columns, less the slot
    d_ih, d_hh = dw_proj.new_empty(len(spec.blocks) * H, I), dw_hh.new_empty(dw_hh.shape)
    for b, c in cols.items():
        d_ih[rows[b]] = dw_proj[c, :I]
    for j, b in enumerate((*spec.gates, "n")):
        d_hh[rows[b]] = dw_hh[j * H:(j + 1) * H]
    db_ih = db_hh = None
    if ctx.has_bias:
        db = dw_proj[:, I]
        db_ih, db_hh = db.new_empty(d_ih.shape[0]), db.new_empty(d_ih.shape[0])
        for b, c in cols.items():
            db_ih[rows[b]] = db[c]
            db_hh[rows[b]] = db[-H:] if b == "n" and spec.reset_after else db[c]
    return dx, d_ih, d_hh, db_ih, db_hh, dh0, None, None, None, None, None


def _gate_columns(spec: GRUSpec, H: int) -> dict[str, slice]:
    """Each gate's columns in p (after xn's H)."""
    return block_slices(spec.gates, H, start=H)
