"""The LSTM layer as one autograd Function, like gru_scan.py: the input projection of every step in
one matmul (the bias as a column of x's ones), a forward loop without autograd bookkeeping that
keeps the activations (in the layer's reused workspace), and a hand-written backward whose weight
gradients are a few matmuls over many steps. Every LSTM flag is covered; blocks keep torch's order
i, f, g, o less the removed ones:
    a = xw_t + h W^T (all blocks, one matmul)     i, f = σ(a_i/f + p_i/f ⊙ c),  g = act_in(a_g)
    c' = f ⊙ c + i ⊙ g   (f = 1 without f; i = 1 without i; i = 1 - f coupled)
    o = σ(a_o + p_o ⊙ c'),  h' = o ⊙ act_out(c')   (o = 1 without o)
xw holds the input projection with both biases. On a CPU in float32 or float64 both loops run
compiled where cells/native.py could build them (lstm_native.cpp: the same function, whose forward
also leaves what makes each backward step one elementwise pass, and whose backward turns a buffer
of a few steps into gradients while it is in cache); elsewhere the torch loops below.
Tested equal to the step loop and the reference equations for every flag, both loops, and by
gradcheck.
"""
from dataclasses import dataclass

import torch

from .scans import block_slices, replayed, sigmoid_backward, steps, steps_per_buffer, tanh_backward, tanh_grad
from .workspace import Workspace


@dataclass(frozen=True)
class LSTMSpec:
    blocks: tuple[str, ...]  # weight blocks in column order, a subset of i, f, g, o
    peepholes: tuple[str, ...]  # the rows of w_ch
    coupled: bool
    tanh_in: bool  # act_in is tanh (else identity)
    tanh_out: bool  # act_out is tanh (else identity)


class LSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, w_ch, h0, c0, spec: LSTMSpec, space: Workspace, grad: bool, loops,
                replay):
        """x (T, B, I); the layer's parameters (biases None or both; w_ch (P, H) or None); h0, c0
        (B, H) -> (h_1 .. h_T, c_T). The buffers only this Function reads (the activations, the
        backward's) come from `space`. grad: whether autograd records the call (the compiled loops
        skip the backward's coefficients without it). replay: the same function of the first eight
        arguments by the step loop, for a backward that must be differentiable (scans.replayed)."""
        inputs = (x, w_ih, w_hh, b_ih, b_hh, w_ch, h0, c0)
        ctx.replay, ctx.n_inputs = replay, len(inputs)
        T, B, _ = x.shape
        H, GH = h0.shape[-1], w_hh.shape[0]
        x2, w_proj = x.reshape(T * B, -1), w_ih
        if b_ih is not None:  # both biases as a column of w_proj, against a column of ones in x2
            x2 = torch.cat([x2, x2.new_ones(T * B, 1)], 1)
            w_proj = torch.cat([w_ih, (b_ih + b_hh)[:, None]], 1)
        # every step's projection, overwritten step by step with its activations (torch loops) or
        # the backward's coefficients (compiled)
        acts = space.empty("acts", (T, B, GH), x)
        torch.mm(x2, w_proj.t(), out=acts.view(T * B, GH))
        hs = space.empty("hs", (T + 1, B, H), x)  # h_0 .. h_T: the output (reused once the caller drops it)
        hs[0] = h0
        ctx.spec, ctx.space, ctx.has_bias, ctx.native = spec, space, b_ih is not None, loops
        if ctx.native:
            cs = space.empty("cs", (T + 1 if w_ch is not None else 2, B, H), x)  # every c where the peepholes' gradient needs them
            cs[0] = c0
            kf = space.empty("kf", (T, B, 2 * H), x) if grad else x.new_empty(0)  # K and F, per step
            ctx.native.lstm_forward(acts, hs, cs, kf, w_hh.t(), _or_empty(w_ch, x), *_indices(spec, H),
                                    spec.coupled, spec.tanh_in, spec.tanh_out, grad)
            ctx.save_for_backward(x2, w_proj, hs, cs, acts, kf, w_hh, w_ch, *inputs)
            return hs[1:], cs[T % len(cs)]
        col = block_slices(spec.blocks, H)  # each block's columns in a step's activations
        peep = dict(zip(spec.peepholes, w_ch)) if w_ch is not None else {}
        cs = space.empty("cs", (T + 1, B, H), x)
        cs[0] = c0
        outs = space.empty("outs", (T, B, H), x) if spec.tanh_out else None  # act_out(c')
        H_, C_, A_, O_ = hs.unbind(0), cs.unbind(0), acts.unbind(0), steps(outs)
        blk = {b: acts[..., c].unbind(0) for b, c in col.items()}
        w_t = w_hh.t()
        for t in range(T):
            c = C_[t]
            A_[t].addmm_(H_[t], w_t)  # pre-activations, in place of the activations
            for name in ("i", "f"):
                if name in col:
                    a = blk[name][t]
                    if name in peep:
                        a.addcmul_(peep[name], c)
                    a.sigmoid_()
            g = blk["g"][t]
            if spec.tanh_in:
                g.tanh_()
            f = blk["f"][t] if "f" in col else None
            i = blk["i"][t] if "i" in col else None
            c_new = C_[t + 1]
            if f is None:
                torch.add(c, g if i is None else i * g, out=c_new)
            elif spec.coupled:
                torch.mul(f, c, out=c_new).addcmul_(g, 1 - f)
            elif i is None:
                torch.mul(f, c, out=c_new).add_(g)
            else:
                torch.mul(f, c, out=c_new).addcmul_(g, i)
            out = torch.tanh(c_new, out=O_[t]) if spec.tanh_out else c_new
            if "o" in col:
                o = blk["o"][t]
                if "o" in peep:
                    o.addcmul_(peep["o"], c_new)
                torch.mul(o.sigmoid_(), out, out=H_[t + 1])
            else:
                H_[t + 1].copy_(out)
        ctx.save_for_backward(x2, w_proj, hs, cs, acts, outs, w_hh, w_ch, *inputs)
        return hs[1:], cs[T]

    @staticmethod
    def backward(ctx, dout, dc_last):
        if torch.is_grad_enabled():  # create_graph=True: gradients autograd can differentiate again
            return replayed(ctx, (dout, dc_last))
        x2, w_proj, hs, cs, acts, outs, w_hh, w_ch = ctx.saved_tensors[:8]  # outs: K and F where compiled
        spec = ctx.spec
        T, B, H = dout.shape
        GH, I = acts.shape[-1], x2.shape[-1] - ctx.has_bias
        dc = torch.zeros_like(dout[0]) if dc_last is None else dc_last.clone()
        dx = dout.new_empty(T, B, I) if ctx.needs_input_grad[0] else None
        # the weight gradients accumulate transposed, as in gru_scan.py
        dw_hh_t, dw_proj_t = w_hh.new_zeros(H, GH), w_proj.new_zeros(w_proj.shape[1], GH)
        dw_ch = None if w_ch is None else torch.zeros_like(w_ch)
        if ctx.native:
            K = steps_per_buffer(dout, GH)
            dp = ctx.space.empty("dp", (K, B, GH), dout)  # ∂L/∂ the pre-activations of K steps, step t in row t % K
            dh, dc = ctx.native.lstm_backward(
                dout.contiguous(), dc, acts, outs, hs, cs, w_hh, dp, x2, dw_hh_t, dw_proj_t,
                _or_empty(dx, dout).view(-1, I), w_proj[:, :I], _or_empty(dw_ch, dout), *_indices(spec, H))
            return _param_grads(ctx, dx, dw_proj_t, I, dw_hh_t, dw_ch, dh, dc)
        col = block_slices(spec.blocks, H)  # each block's columns in a step's activations
        peep = dict(zip(spec.peepholes, w_ch)) if w_ch is not None else {}
        dpre = ctx.space.empty("dpre", acts.shape, dout)  # ∂L/∂ pre-activations of every block and step
        blk = {b: acts[..., c].unbind(0) for b, c in col.items()}
        dblk = {b: dpre[..., c].unbind(0) for b, c in col.items()}
        C_, O_, DP, DOUT = cs.unbind(0), steps(outs), dpre.unbind(0), dout.unbind(0)
        dh = torch.zeros_like(dout[0])
        for t in range(T - 1, -1, -1):
            D = dh + DOUT[t]
            c, c_new = C_[t], C_[t + 1]
            out = O_[t] if spec.tanh_out else c_new
            if "o" in col:
                o = blk["o"][t]
                d_out = D * o
                sigmoid_backward(D * out, o, grad_input=dblk["o"][t])
            else:
                d_out = D
            dc = dc + (tanh_grad(d_out, out) if spec.tanh_out else d_out)  # ∂L/∂c', along all paths
            if "o" in peep:
                dc.addcmul_(dblk["o"][t], peep["o"])
            g = blk["g"][t]
            f = blk["f"][t] if "f" in col else None
            i = (1 - f) if spec.coupled else (blk["i"][t] if "i" in col else None)
            dg = dc if i is None else dc * i
            if spec.tanh_in:
                tanh_backward(dg, g, grad_input=dblk["g"][t])
            else:
                dblk["g"][t].copy_(dg)
            if "i" in col:
                sigmoid_backward(dc * g, blk["i"][t], grad_input=dblk["i"][t])
            if f is not None:
                df = dc * c if not spec.coupled else dc * (c - g)  # i = 1 - f: ∂i/∂f = -1
                sigmoid_backward(df, f, grad_input=dblk["f"][t])
                dc = dc * f
            for name in ("i", "f"):
                if name in peep:
                    dc.addcmul_(dblk[name][t], peep[name])
            dh = torch.mm(DP[t], w_hh)
        rows = dpre.view(T * B, GH)  # the gradients: a few matmuls over all steps
        dw_hh_t.addmm_(hs[:-1].reshape(T * B, H).t(), rows)
        dw_proj_t.addmm_(x2.t(), rows)
        if dx is not None:
            torch.mm(rows, w_proj[:, :I], out=dx.view(T * B, I))
        if w_ch is not None:  # i, f saw c_{t-1}; o saw c_t
            seen = {"i": cs[:-1], "f": cs[:-1], "o": cs[1:]}
            for j, n in enumerate(spec.peepholes):
                dw_ch[j] = (dpre[..., col[n]] * seen[n]).sum((0, 1))
        return _param_grads(ctx, dx, dw_proj_t, I, dw_hh_t, dw_ch, dh, dc)


def _param_grads(ctx, dx, dw_proj_t, I, dw_hh_t, dw_ch, dh0, dc0):
    """LSTMScan.forward's input gradients, from the transposed ones of w_proj (I', GH), the bias
    its last row, and of w_hh (H, GH)."""
    db = dw_proj_t[I] if ctx.has_bias else None
    return (dx, dw_proj_t[:I].t(), dw_hh_t.t(), db, None if db is None else db.clone(), dw_ch, dh0, dc0,
            None, None, None, None, None)


def _indices(spec: LSTMSpec, H: int) -> tuple[list[int], list[int]]:
    """For the compiled loops: the first column of i, f, g, o and the peephole row of i, f, o (-1:
    none)."""
    cols = [spec.blocks.index(b) * H if b in spec.blocks else -1 for b in "ifgo"]
    return cols, [spec.peepholes.index(b) if b in spec.peepholes else -1 for b in "ifo"]


def _or_empty(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return like.new_empty(0) if t is None else t
