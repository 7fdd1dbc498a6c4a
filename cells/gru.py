"""The GRU, both reset placements, and its ablations.

z has torch's meaning throughout: z KEEPS the old state. The seed (and Cho et al. 2014) write
h_t = (1 - z) ⊙ h_{t-1} + z ⊙ h', so the seed's z is our 1 - z. Blocks in torch's order r, z, n:
    r, z = σ(W_r/z [x_t, h_{t-1}] + b)
    reset after (torch, cuDNN):  n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t-1} + b_hn))
    reset before (seed, Cho):    n = tanh(W_in x_t + b_in + W_hn (r ⊙ h_{t-1}) + b_hn)
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
"""
import torch
from torch.nn import functional as F

from ._base import COMMON_FLAGS, Flag, Layout, Recurrent, flag_error, gate_mul
from . import accelerations, gru_scan
from .gru_scan import Spec

BOOL = (True, False)


class GRU(Recurrent):
    """Drop-in for torch.nn.GRU; forward(input, h_0) -> (output, h_n).

    Flags (defaults give torch's GRU; a removed gate's block leaves the parameters):
        reset_after=True   # False: r multiplies h before W_hn (the seed's and Cho's GRU), b_hn outside r
        reset_gate=True    # False: r = 1
        update_gate=True   # False: h_t = n, the new state replaces the old
        tied_gates=True    # False: h_t = f ⊙ h_{t-1} + i ⊙ n with f the z block and its own input
                           #   gate i, a block appended after n (r, z, n, i)
        minimal=False      # True: MGU (Zhou et al. 2016), blocks f, n with r = f and z = 1 - f
        init='default'     # 'orthogonal' | 'identity' | 'chrono' (z bias log U[1, t_max-1]; i = -z; MGU f = -z)
        t_max=None         # chrono's longest expected dependency
    """

    FLAGS = {
        "reset_after": Flag(True, BOOL),
        "reset_gate": Flag(True, BOOL),
        "update_gate": Flag(True, BOOL),
        "tied_gates": Flag(True, BOOL),
        "minimal": Flag(False, BOOL),
        **COMMON_FLAGS,
    }

    @classmethod
    def make_layout(cls, flags: dict) -> Layout:
        err = lambda msg: flag_error("cells.GRU", msg)  # noqa: E731
        if flags["minimal"]:
            for flag in ("reset_gate", "update_gate", "tied_gates"):
                if not flags[flag]:
                    raise err(f"minimal=True (one gate f serving as r = f and z = 1 - f) "
                              f"contradicts {flag}=False")
            return Layout(("f", "n"), chrono=(("f", -1.0),))
        if not flags["tied_gates"] and not flags["update_gate"]:
            raise err("tied_gates=False splits the update gate in two and contradicts update_gate=False")
        blocks = ("r",) * flags["reset_gate"] + ("z",) * flags["update_gate"] + ("n",)
        blocks += ("i",) * (not flags["tied_gates"])
        chrono = (("z", 1.0),) + (("i", -1.0),) * (not flags["tied_gates"])
        return Layout(blocks, chrono=chrono if flags["update_gate"] else ())

    @property
    def _reset(self) -> str | None:
        """The block that acts as the reset gate r, if any."""
        return "f" if self.minimal else ("r" if self.reset_gate else None)

    @property
    def _after(self) -> bool:
        """n's hidden matmul is one with the gates' (reset after, or no reset at all)."""
        return self.reset_after or self._reset is None

    def _prepare(self, k, x):
        w_ih, w_hh, b_ih, b_hh, _ = self._params(k)
        blocks, H = self.layout.blocks, self.hidden_size
        gates, reset = [b for b in blocks if b != "n"], self._reset
        # The gates' hidden biases fold into the input projection; b_hn must stay inside r.
        is_n = torch.zeros(len(blocks), 1, dtype=w_hh.dtype, device=w_hh.device)
        is_n[blocks.index("n")] = 1
        is_n = is_n.expand(-1, H).reshape(-1)  # (G*H,) 1 on the n block
        b_gates = None if b_ih is None else b_ih + b_hh * (1 - is_n)
        xw = F.linear(x, w_ih, b_gates)  # (T, B, G*H)

        if self._after:
            w_hh_t, b_hn = w_hh.t(), None if b_hh is None else b_hh * is_n

            def hidden(h):  # one matmul for all blocks; r multiplies the n block after it
                hw = dict(zip(blocks, (h @ w_hh_t if b_hn is None else torch.addmm(b_hn, h, w_hh_t))
                              .chunk(len(blocks), -1)))
                return hw, lambda r: gate_mul(r, hw["n"])
        else:  # reset before: n needs r ⊙ h, so the gates' matmul comes first
            n_rows = slice(blocks.index("n") * H, (blocks.index("n") + 1) * H)
            w_gates_t = torch.cat([self._block(w_hh, g) for g in gates]).t()  # (H, (G-1)*H)
            w_n, b_n = w_hh[n_rows], None if b_hh is None else b_hh[n_rows]

            def hidden(h):
                hw = dict(zip(gates, (h @ w_gates_t).chunk(len(gates), -1)))
                return hw, lambda r: F.linear(r * h, w_n, b_n)

        def step(xw_t, state):
            h = state[0]  # (B, H)
            xs = dict(zip(blocks, xw_t.chunk(len(blocks), -1)))
            hw, hidden_n = hidden(h)
            g = {b: torch.sigmoid(xs[b] + hw[b]) for b in gates}
            n = torch.tanh(xs["n"] + hidden_n(g.get(reset)))
            if self.minimal:
                h = h + g["f"] * (n - h)  # z = 1 - f: h_t = f ⊙ n + (1 - f) ⊙ h
            elif not self.tied_gates:
                h = g["z"] * h + g["i"] * n
            else:
                # (1 - z) ⊙ n + z ⊙ h, as torch writes it; not lerp, which refuses mixed dtypes (autocast)
                h = n if "z" not in g else n + g["z"] * (h - n)
            return (h,), g

        return step, xw



def _scan(cell: GRU, k, x, state, loops):
    """Layer k through GRUScan (the compiled loops, or its torch loops where `loops` is None): the
    same function as _prepare's steps, with a hand-written backward. GRUScan reads the parameters
    in their layout and orders them itself. Every flag set is covered."""
    w_ih, w_hh, b_ih, b_hh, _ = cell._params(k)
    mix = ("minimal" if cell.minimal else "untied" if not cell.tied_gates
           else "tied" if cell.update_gate else "replace")
    spec = Spec(cell.layout.blocks, cell._reset, mix, cell._after)
    out = gru_scan.GRUScan.apply(x, w_ih, w_hh, b_ih, b_hh, state[0], spec, cell._workspaces[k],
                                 torch.is_grad_enabled(), loops)
    return out, (out[-1],)


accelerations.register_scan("gru", _scan)
