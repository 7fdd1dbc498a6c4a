"""The LSTM and its ablations (Greff et al. 2017, "LSTM: A Search Space Odyssey").

Standard cell, torch's gate order i, f, g, o (g is the seed's input activation z):
    i, f, o = σ(W_i/f/o [x_t, h_{t-1}] + b)     g = tanh(W_g [x_t, h_{t-1}] + b)
    c_t = f ⊙ c_{t-1} + i ⊙ g                   h_t = o ⊙ tanh(c_t)
"""
import numbers

import torch

from . import accelerations
from ._base import COMMON_FLAGS, Flag, Layout, Recurrent, flag_error, gate_mul
from .lstm_scan import LSTMScan, LSTMSpec

ACTIVATIONS = {"tanh": torch.tanh, "identity": lambda v: v}
BOOL = (True, False)


class LSTM(Recurrent):
    """Drop-in for torch.nn.LSTM; forward(input, (h_0, c_0)) -> (output, (h_n, c_n)).

    Flags (defaults give the standard cell; a removed gate's block leaves the parameters):
        input_gate=True           # False: i = 1 (NIG)
        forget_gate=True          # False: f = 1, the 1997 LSTM (NFG)
        output_gate=True          # False: o = 1 (NOG)
        input_activation='tanh'   # 'identity': g = W_g [x, h] + b (NIAF)
        output_activation='tanh'  # 'identity': h = o ⊙ c (NOAF)
        peepholes=False           # True: i, f see p ⊙ c_{t-1}, o sees p ⊙ c_t; weight_ch_l{k} (P, H)
                                  #   with one row for each of i, f, o that has its own block
        coupled_gates=False       # True: i = 1 - f (CIFG), the LSTM analogue of GRU's z / 1 - z tie
        coupled_shift=0           # a number β with coupled_gates: i = 1 - σ(a_f + p_f ⊙ c - β) (JANET: β = 1)
        gate_recurrence=False     # True: each of i, f, o also sees all their activations at t-1 (FGR,
                                  #   Greff et al. 2017): weight_gg_l{k} (R*H, R*H), R the gates with own blocks
        forget_bias=None          # a number b: forget bias_ih = b, bias_hh = 0, so the effective bias is b
        init='default'            # 'orthogonal' | 'identity' | 'chrono' (f bias log U[1, t_max-1], i = -f)
        t_max=None                # chrono's longest expected dependency
    """

    FLAGS = {
        "input_gate": Flag(True, BOOL),
        "forget_gate": Flag(True, BOOL),
        "output_gate": Flag(True, BOOL),
        "input_activation": Flag("tanh", tuple(ACTIVATIONS)),
        "output_activation": Flag("tanh", tuple(ACTIVATIONS)),
        "peepholes": Flag(False, BOOL),
        "coupled_gates": Flag(False, BOOL),
        "coupled_shift": Flag(0, (numbers.Real,)),
        "gate_recurrence": Flag(False, BOOL),
        "forget_bias": Flag(None, (None, numbers.Real)),
        **COMMON_FLAGS,
    }
    n_states = 2
    projects = True  # proj_size=P: h = W_hr (o ⊙ act_out(c)), weight_hr_l{k} (P, H), as torch's

    @classmethod
    def make_layout(cls, flags: dict) -> Layout:
        err = lambda msg: flag_error("cells.LSTM", msg)  # noqa: E731
        if flags["coupled_gates"] and not flags["input_gate"]:
            raise err("coupled_gates=True sets i = 1 - f and contradicts input_gate=False (i = 1)")
        if flags["coupled_gates"] and not flags["forget_gate"]:
            raise err("coupled_gates=True needs the forget gate (i = 1 - f); it contradicts forget_gate=False")
        if flags["coupled_shift"] and not flags["coupled_gates"]:
            raise err("coupled_shift shifts the coupled input gate i = 1 - σ(a_f - β) and needs coupled_gates=True")
        if flags["forget_bias"] is not None and not flags["forget_gate"]:
            raise err("forget_bias sets the forget gate's bias and contradicts forget_gate=False")
        if flags["forget_bias"] is not None and flags["init"] == "chrono":
            raise err("forget_bias and init='chrono' both set the forget bias; choose one")
        own_i = flags["input_gate"] and not flags["coupled_gates"]
        has = {"i": own_i, "f": flags["forget_gate"], "g": True, "o": flags["output_gate"]}
        blocks = tuple(b for b in "ifgo" if has[b])
        peepholes = tuple(b for b in "ifo" if has[b]) if flags["peepholes"] else ()
        if flags["peepholes"] and not peepholes:
            raise err("peepholes=True needs at least one of the input, forget and output gates")
        recurrent = tuple(b for b in "ifo" if has[b]) if flags["gate_recurrence"] else ()
        if flags["gate_recurrence"] and not recurrent:
            raise err("gate_recurrence=True needs at least one of the input, forget and output gates")
        chrono = (("f", 1.0), ("i", -1.0)) if own_i else (("f", 1.0),)
        return Layout(blocks, peepholes, chrono if has["f"] else (), recurrent)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.forget_bias is not None:
            for k in range(self._units):
                self.set_gate_bias(k, "f", self.forget_bias)

    def _prepare(self, k, x):
        _, w_hh, _, _, w_ch = self._params(k)
        xw = self._project(k, x)  # (T, B, G*H)
        blocks, w_hh_t = self.layout.blocks, w_hh.t()
        peep = dict(zip(self.layout.peepholes, w_ch)) if w_ch is not None else {}  # gate -> (H,)
        act_in, act_out = ACTIVATIONS[self.input_activation], ACTIVATIONS[self.output_activation]
        coupled, shift = self.coupled_gates, self.coupled_shift
        fed, w_gg = self.layout.recurrent_gates, self._param("weight_gg", k)
        w_hr = self._param("weight_hr", k)  # the projection (P, H), or None
        last = []  # FGR: the gates fed back, (B, R*H), of the step before; none (zero) at t = 0

        def step(xw_t, state):
            h, c = state  # (B, H) each; h (B, P) with a projection
            pre = dict(zip(blocks, torch.addmm(xw_t, h, w_hh_t).chunk(len(blocks), -1)))
            if last:  # each fed gate's pre-activation gets R_g [i, f, o]_{t-1}
                prev = last[-1][:len(h)]  # packed input: fewer rows; in reverse more, begun now (zero gates)
                prev = torch.cat([prev, prev.new_zeros(len(h) - len(prev), prev.shape[1])]) if len(prev) < len(h) else prev
                pre.update((g, pre[g] + r) for g, r in zip(fed, (prev @ w_gg.t()).chunk(len(fed), -1)))

            def act(name, cell):  # pre + p ⊙ cell
                return torch.addcmul(pre[name], peep[name], cell) if name in peep else pre[name]

            def gate(name, cell):  # σ(pre + p ⊙ cell), or None (= 1) for a removed gate
                return torch.sigmoid(act(name, cell)) if name in pre else None

            f, i = gate("f", c), None if coupled else gate("i", c)
            # coupled: i = 1 - σ(a_f + p_f ⊙ c - β), CIFG's 1 - f without a shift (not a gate of its own)
            inp = (1 - (torch.sigmoid(act("f", c) - shift) if shift else f)) if coupled else i
            c = gate_mul(f, c) + gate_mul(inp, act_in(pre["g"]))
            o = gate("o", c)
            h = gate_mul(o, act_out(c))
            if w_hr is not None:
                h = h @ w_hr.t()  # (B, P)
            gates = {name: v for name, v in (("i", i), ("f", f), ("o", o)) if v is not None}
            if fed:
                last[:] = [torch.cat([gates[g] for g in fed], -1)]
            return (h, c), gates

        return step, xw


def _scan(cell: LSTM, k, x, state, loops):
    """Unit k through LSTMScan (the compiled loops, or its torch loops where `loops` is None):
    the same function as _prepare's steps, with a hand-written backward (the steps replayed where
    autograd wants the gradients' own graph). LSTMScan makes the input projection itself (into its
    reused workspace). Every flag set but a shifted coupling (JANET) and gate recurrence (FGR), and
    no projection (proj_size)."""
    spec = LSTMSpec(cell.layout.blocks, cell.layout.peepholes, cell.coupled_gates,
                    cell.input_activation == "tanh", cell.output_activation == "tanh")

    def replay(x, w_ih, w_hh, b_ih, b_hh, w_ch, h0, c0):  # LSTMScan's outputs, by the steps
        out, (_, c) = cell.replay(k, x, (w_ih, w_hh, b_ih, b_hh, w_ch), (h0, c0))
        return out, c

    out, c = LSTMScan.apply(x, *cell._params(k), *state, spec, cell._workspaces[k], torch.is_grad_enabled(), loops,
                            replay)
    return out, (out[-1], c)


accelerations.register_scan("lstm", _scan, covers=lambda flags: not (
    flags["coupled_shift"] or flags["gate_recurrence"] or flags.get("proj_size")))
