"""The GRU, both reset placements, and its ablations.

z has torch's meaning throughout: z KEEPS the old state. The seed (and Cho et al. 2014) write
h_t = (1 - z) ⊙ h_{t-1} + z ⊙ h', so the seed's z is our 1 - z. Blocks in torch's order r, z, n:
    r, z = σ(W_r/z [x_t, h_{t-1}] + b)
    reset after (torch, cuDNN):  n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t-1} + b_hn))
    reset before (seed, Cho):    n = tanh(W_in x_t + b_in + W_hn (r ⊙ h_{t-1}) + b_hn)
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
Jozefowicz et al. 2015's MUT1-3 (found by an architecture search) are GRUs resetting before, each
with one change (z keeping the state here, where the paper's z writes the candidate: the same cells,
the gate's weights negated):
    MUT1: z = σ(W_iz x_t + b_z), no h;   n = tanh(tanh(x_t) + b_in + W_hn (r ⊙ h_{t-1}) + b_hn)
    MUT2: r = σ(x_t + W_hr h_{t-1} + b_r), x unweighted
    MUT3: z = σ(W_iz x_t + W_hz tanh(h_{t-1}) + b_z)
MUT1 and MUT2 add x_t to an H-wide sum: they take input_size = hidden_size only.
"""
from typing import Callable, NamedTuple

import torch
from torch.nn import functional as F

from ._base import COMMON_FLAGS, Flag, Layout, Recurrent, flag_error, gate_mul
from . import accelerations
from .gru_scan import GRUScan, GRUSpec

BOOL = (True, False)


class Mutation(NamedTuple):
    """What one of MUT1-3 changes in the GRU resetting before."""
    raw_input: tuple[str, Callable] | None = None  # (block, fn): the block's input term is fn(x_t), no W_i
    no_hidden: str | None = None  # the block whose pre-activation has no hidden term
    squashed: str | None = None  # the block whose hidden term is W_h tanh(h_{t-1})


MUTATIONS = {
    1: Mutation(raw_input=("n", torch.tanh), no_hidden="z"),
    2: Mutation(raw_input=("r", lambda x: x)),
    3: Mutation(squashed="z"),
}


class GRU(Recurrent):
    """Drop-in for torch.nn.GRU; forward(input, h_0) -> (output, h_n).

    Flags (defaults give torch's GRU; a removed gate's block leaves the parameters):
        reset_after=True   # False: r multiplies h before W_hn (the seed's and Cho's GRU), b_hn outside r
        reset_gate=True    # False: r = 1
        update_gate=True   # False: h_t = n, the new state replaces the old
        tied_gates=True    # False: h_t = f ⊙ h_{t-1} + i ⊙ n with f the z block and its own input
                           #   gate i, a block appended after n (r, z, n, i)
        minimal=False      # True: MGU (Zhou et al. 2016), blocks f, n with r = f and z = 1 - f
        mutation=None      # 1 | 2 | 3: Jozefowicz et al. 2015's MUT1-3 (above), with reset_after=False
        init='default'     # 'orthogonal' | 'identity' | 'chrono' (z bias log U[1, t_max-1]; i = -z; MGU f = -z)
        t_max=None         # chrono's longest expected dependency
    """

    FLAGS = {
        "reset_after": Flag(True, BOOL),
        "reset_gate": Flag(True, BOOL),
        "update_gate": Flag(True, BOOL),
        "tied_gates": Flag(True, BOOL),
        "minimal": Flag(False, BOOL),
        "mutation": Flag(None, (None, *MUTATIONS)),
        **COMMON_FLAGS,
    }

    @classmethod
    def make_layout(cls, flags: dict) -> Layout:
        err = lambda msg: flag_error("cells.GRU", msg)  # noqa: E731
        if flags["mutation"] is not None:
            name = f"mutation={flags['mutation']} (MUT{flags['mutation']}, a GRU resetting before)"
            if flags["reset_after"]:
                raise err(f"{name} needs reset_after=False")
            for flag in ("reset_gate", "update_gate", "tied_gates"):
                if not flags[flag]:
                    raise err(f"{name} contradicts {flag}=False")
            if flags["minimal"]:
                raise err(f"{name} contradicts minimal=True")
            m = MUTATIONS[flags["mutation"]]
            return Layout(("r", "z", "n"), chrono=(("z", 1.0),), no_input=m.raw_input[:1] if m.raw_input else (),
                          no_hidden=(m.no_hidden,) if m.no_hidden else ())
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

    @classmethod
    def adds_raw_input(cls, flags):
        return flags["mutation"] is not None and MUTATIONS[flags["mutation"]].raw_input is not None

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
        mutation = MUTATIONS.get(self.mutation, Mutation())
        if mutation.raw_input is None:
            xw = F.linear(x, w_ih, b_gates)  # (T, B, G*H)
        else:  # one block's input term is fn(x), not a weight's
            raw, fn = mutation.raw_input
            terms = dict(zip(self.layout.rows("weight_ih"), F.linear(x, w_ih).chunk(len(blocks) - 1, -1)))
            terms[raw] = fn(x)
            xw = torch.cat([terms[b] for b in blocks], -1)
            xw = xw if b_gates is None else xw + b_gates

        if self._after:
            w_hh_t, b_hn = w_hh.t(), None if b_hh is None else b_hh * is_n

            def hidden(h):  # one matmul for all blocks; r multiplies the n block after it
                hw = dict(zip(blocks, (h @ w_hh_t if b_hn is None else torch.addmm(b_hn, h, w_hh_t))
                              .chunk(len(blocks), -1)))
                return hw, lambda r: gate_mul(r, hw["n"])
        else:  # reset before: n needs r ⊙ h, so the gates' matmul comes first
            seen = [g for g in gates if g not in (mutation.no_hidden, mutation.squashed)]  # W_h h
            w_seen_t = torch.cat([self._block(w_hh, g, "weight_hh") for g in seen]).t()  # (H, len(seen)*H)
            w_sq_t = self._block(w_hh, mutation.squashed, "weight_hh").t() if mutation.squashed else None
            w_n, b_n = self._block(w_hh, "n", "weight_hh"), None if b_hh is None else self._block(b_hh, "n")

            def hidden(h):
                hw = dict(zip(seen, (h @ w_seen_t).chunk(len(seen), -1)))
                if mutation.no_hidden:
                    hw[mutation.no_hidden] = 0
                if w_sq_t is not None:
                    hw[mutation.squashed] = torch.tanh(h) @ w_sq_t
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
    """Unit k through GRUScan (the compiled loops, or its torch loops where `loops` is None): the
    same function as _prepare's steps, with a hand-written backward (the steps replayed where
    autograd wants the gradients' own graph). GRUScan reads the parameters in their layout and
    orders them itself. Every flag set but MUT1-3."""
    w_ih, w_hh, b_ih, b_hh, _ = cell._params(k)
    mix = ("minimal" if cell.minimal else "untied" if not cell.tied_gates
           else "tied" if cell.update_gate else "replace")
    spec = GRUSpec(cell.layout.blocks, cell._reset, mix, cell._after)

    def replay(x, w_ih, w_hh, b_ih, b_hh, h0):  # GRUScan's output, by the steps
        return cell.replay(k, x, (w_ih, w_hh, b_ih, b_hh, None), (h0,))[0]

    out = GRUScan.apply(x, w_ih, w_hh, b_ih, b_hh, state[0], spec, cell._workspaces[k],
                        torch.is_grad_enabled(), loops, replay)
    return out, (out[-1],)


accelerations.register_scan("gru", _scan, covers=lambda flags: flags["mutation"] is None)
