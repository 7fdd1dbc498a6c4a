"""The LSTM layer as one autograd Function, like gru_scan.py: a forward loop without autograd
bookkeeping that keeps the activations (in the layer's reused workspace), and a hand-written
backward whose weight gradients are one matmul over all steps. Every LSTM flag is covered;
blocks keep torch's order i, f, g, o less the removed ones:
    a = xw_t + h W^T (all blocks, one matmul)     i, f = σ(a_i/f + p_i/f ⊙ c),  g = act_in(a_g)
    c' = f ⊙ c + i ⊙ g   (f = 1 without f; i = 1 without i; i = 1 - f coupled)
    o = σ(a_o + p_o ⊙ c'),  h' = o ⊙ act_out(c')   (o = 1 without o)
xw holds the input projection with both biases. Tested equal to the step loop and the reference
equations for every flag, and by gradcheck.
"""
from dataclasses import dataclass

import torch

from .gru_scan import _steps, sigmoid_backward, tanh_backward
from .workspace import Workspace

tanh_grad = torch.ops.aten.tanh_backward.default  # grad * (1 - y²), into a new tensor


@dataclass(frozen=True)
class Spec:
    blocks: tuple[str, ...]  # weight blocks in column order, a subset of i, f, g, o
    peepholes: tuple[str, ...]  # the rows of w_ch
    coupled: bool
    tanh_in: bool  # act_in is tanh (else identity)
    tanh_out: bool  # act_out is tanh (else identity)


class LSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xw, h0, c0, w_hh, w_ch, spec: Spec, space: Workspace):
        """xw (T, B, G*H), h0, c0 (B, H), w_hh (G*H, H), w_ch (P, H) or None -> (h_1..h_T, c_T).
        The buffers only this Function reads (activations, the backward's) come from `space`."""
        T, B, GH = xw.shape
        H = h0.shape[-1]
        col = {b: slice(j * H, (j + 1) * H) for j, b in enumerate(spec.blocks)}
        peep = dict(zip(spec.peepholes, w_ch)) if w_ch is not None else {}
        hs, cs = xw.new_empty(T + 1, B, H), xw.new_empty(T + 1, B, H)
        hs[0], cs[0] = h0, c0
        acts = space.empty("acts", (T, B, GH), xw)  # the activations i, f, g, o of every step
        outs = space.empty("outs", (T, B, H), xw) if spec.tanh_out else None  # act_out(c')
        H_, C_, A_, O_, XW = hs.unbind(0), cs.unbind(0), acts.unbind(0), _steps(outs), xw.unbind(0)
        blk = {b: acts[..., c].unbind(0) for b, c in col.items()}
        w_t = w_hh.t()
        for t in range(T):
            c = C_[t]
            torch.addmm(XW[t], H_[t], w_t, out=A_[t])  # pre-activations, in place of the activations
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
        ctx.spec, ctx.space = spec, space
        ctx.save_for_backward(hs, cs, acts, outs, w_hh, w_ch)
        return hs[1:], cs[T]

    @staticmethod
    def backward(ctx, dout, dc_last):
        hs, cs, acts, outs, w_hh, w_ch = ctx.saved_tensors
        spec = ctx.spec
        T, B, H = dout.shape
        col = {b: slice(j * H, (j + 1) * H) for j, b in enumerate(spec.blocks)}
        peep = dict(zip(spec.peepholes, w_ch)) if w_ch is not None else {}
        dpre = ctx.space.empty("dpre", acts.shape, dout)  # ∂L/∂ pre-activations of every block and step
        blk = {b: acts[..., c].unbind(0) for b, c in col.items()}
        dblk = {b: dpre[..., c].unbind(0) for b, c in col.items()}
        C_, O_, DP, DOUT = cs.unbind(0), _steps(outs), dpre.unbind(0), dout.unbind(0)
        dh = torch.zeros_like(dout[0])
        dc = torch.zeros_like(dout[0]) if dc_last is None else dc_last.clone()
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
        flat = lambda a: a.reshape(T * B, a.shape[-1])  # noqa: E731
        dw = (flat(hs[:-1]).t() @ flat(dpre)).t()  # the weight gradient: one matmul over all steps
        dw_ch = None
        if w_ch is not None:  # i, f saw c_{t-1}; o saw c_t
            seen = {"i": cs[:-1], "f": cs[:-1], "o": cs[1:]}
            dw_ch = torch.stack([(dpre[..., col[n]] * seen[n]).sum((0, 1)) for n in spec.peepholes])
        return dpre, dh, dc, dw, dw_ch, None, None
