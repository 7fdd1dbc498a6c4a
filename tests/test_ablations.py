"""Every flag against the equations of docs/design.md and docs/cells.md (tests/reference.py), outputs and gradients,
on 1 and 2 layers; then cross-checks that tie each ablation to a cell we already trust."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import cells
from cells import accelerations

from reference import reference_forward

F64 = torch.float64
I, H, T, B = 3, 4, 6, 2

FLAG_CASES = [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("RNN", {"nonlinearity": "relu", "init": "identity"}),
    ("LSTM", {}), ("LSTM", {"input_gate": False}), ("LSTM", {"forget_gate": False}),
    ("LSTM", {"output_gate": False}), ("LSTM", {"input_activation": "identity"}),
    ("LSTM", {"output_activation": "identity"}), ("LSTM", {"peepholes": True}),
    ("LSTM", {"coupled_gates": True}), ("LSTM", {"coupled_gates": True, "peepholes": True}),
    ("LSTM", {"input_gate": False, "peepholes": True}), ("LSTM", {"output_gate": False, "peepholes": True}),
    ("LSTM", {"forget_gate": False, "input_gate": False, "output_activation": "identity"}),
    ("LSTM", {"coupled_gates": True, "coupled_shift": 1.0, "output_gate": False, "output_activation": "identity"}),
    ("LSTM", {"coupled_gates": True, "coupled_shift": -0.5, "peepholes": True}),
    ("LSTM", {"gate_recurrence": True, "peepholes": True}), ("LSTM", {"gate_recurrence": True, "coupled_gates": True}),
    ("LSTM", {"gate_recurrence": True, "output_gate": False, "input_gate": False}),
    ("LSTM", {"forget_bias": 1.0}), ("LSTM", {"init": "chrono", "t_max": 20}),
    ("GRU", {}), ("GRU", {"reset_after": False}), ("GRU", {"reset_gate": False}),
    ("GRU", {"update_gate": False}), ("GRU", {"tied_gates": False}), ("GRU", {"minimal": True}),
    ("GRU", {"minimal": True, "reset_after": False}), ("GRU", {"tied_gates": False, "reset_after": False}),
    ("GRU", {"reset_gate": False, "update_gate": False}), ("GRU", {"update_gate": False, "reset_after": False}),
    ("GRU", {"reset_gate": False, "tied_gates": False}), ("GRU", {"init": "chrono", "t_max": 20}),
    ("GRU", {"reset_after": False, "mutation": 1}), ("GRU", {"reset_after": False, "mutation": 2}),
    ("GRU", {"reset_after": False, "mutation": 3}),
]


def make(case, input_size, hidden_size, num_layers, **kwargs):
    """The case's cell; input_size is hidden_size where the flags add x_t unweighted (MUT1, MUT2)."""
    name, flags = case
    cls = getattr(cells, name)
    square = cls.adds_raw_input(cls.resolve_flags(flags))
    return cls(hidden_size if square else input_size, hidden_size, num_layers, **kwargs, **flags)


def ids(case):
    name, flags = case
    return name + "".join(f"-{k}={v}" for k, v in flags.items())


def outputs_and_grads(fn, cell, x, hx):
    x = x.clone().requires_grad_()
    hx = tuple(h.clone().requires_grad_() for h in hx)
    out, states = fn(x, hx)
    (out.sin().sum() + sum(s.sum() for s in states)).backward()
    result = [out, *states, x.grad, *(h.grad for h in hx), *(p.grad for p in cell.parameters())]
    cell.zero_grad(set_to_none=True)
    return result


def call(cell):
    """cell as fn(x, hx) -> (outputs, states), hx and states tuples (h,) or (h, c)."""
    def fn(x, hx):
        out, state = cell(x, hx if len(hx) == 2 else hx[0])
        return out, (state if isinstance(state, tuple) else (state,))
    return fn


def scan_and_steps(cell, x, hx):
    """outputs_and_grads through the whole-layer Functions, then through the step loop."""
    scan = outputs_and_grads(call(cell), cell, x, hx)
    with cell.trace() as trace:
        steps = outputs_and_grads(call(cell), cell, x, hx)
    assert len(trace) == cell.num_layers  # the step loop did run
    return scan, steps


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (1, True), (2, True)],
                         ids=["1-layer", "2-layer", "1-layer-bidirectional", "2-layer-bidirectional"])
@pytest.mark.parametrize("case", FLAG_CASES, ids=ids)
def test_flag_follows_its_equation(case, num_layers, bidirectional):
    if bidirectional and num_layers > 1 and case[1].get("mutation") in (1, 2):
        pytest.skip("MUT1 and MUT2 take H-wide input: no second bidirectional layer (its input is 2H)")
    cell = make(case, I, H, num_layers, dtype=F64, bidirectional=bidirectional)
    with torch.no_grad():  # spread the parameters so that every gate is away from 1/2
        for p in cell.parameters():
            p.mul_(3)
    x = torch.randn(T, B, cell.input_size, dtype=F64)
    hx = tuple(torch.randn(num_layers * (1 + bidirectional), B, H, dtype=F64) for _ in range(cell.n_states))
    got = outputs_and_grads(call(cell), cell, x, hx)
    want = outputs_and_grads(lambda x, hx: reference_forward(cell, x, hx), cell, x, hx)
    for a, b in zip(got, want, strict=True):  # relative: the IRNN's identity x 3 grows like 3^T
        assert (a - b).abs().max().item() <= 1e-10 * (1 + b.abs().max().item())


@pytest.mark.parametrize("case", [c for c in FLAG_CASES if c[0] == "LSTM"], ids=ids)
def test_lstm_flags_with_a_projection_follow_their_equations(case):
    """torch's proj_size (h = W_hr (o ⊙ tanh(c))) with every LSTM flag case, bidirectional, 2 layers."""
    cell = make(case, I, H, 2, dtype=F64, bidirectional=True, proj_size=2)
    x = torch.randn(T, B, I, dtype=F64)
    hx = (torch.randn(4, B, 2, dtype=F64), torch.randn(4, B, H, dtype=F64))
    got = outputs_and_grads(call(cell), cell, x, hx)
    want = outputs_and_grads(lambda x, hx: reference_forward(cell, x, hx), cell, x, hx)
    for a, b in zip(got, want, strict=True):
        assert (a - b).abs().max().item() <= 1e-10 * (1 + b.abs().max().item())


@pytest.mark.parametrize("case", FLAG_CASES, ids=ids)
def test_a_packed_batch_equals_each_sequence_alone(case):
    """Every flag on a PackedSequence (unsorted lengths, 2 bidirectional layers but for MUT1/MUT2):
    each sequence's outputs and last state are those of the sequence run alone (test_nn.py's
    test_variable_sequence), gradients included."""
    square = case[1].get("mutation") in (1, 2)
    cell = make(case, I, H, 1 if square else 2, dtype=F64, bidirectional=not square)
    units, lengths = (1 if square else 4), [4, 6, 1, 4]
    x = torch.randn(max(lengths), len(lengths), cell.input_size, dtype=F64, requires_grad=True)
    hx = tuple(torch.randn(units, len(lengths), H, dtype=F64) for _ in range(cell.n_states))
    out, state = call(cell)(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
    padded, _ = pad_packed_sequence(out)
    got = [padded, *state]
    for i, n in enumerate(lengths):
        alone, last = call(cell)(x[:n, i:i + 1], tuple(h[:, i:i + 1] for h in hx))
        assert (got[0][:n, i:i + 1] - alone).abs().max().item() < 1e-12
        assert (got[0][n:, i] == 0).all()
        for s, a in zip(got[1:], last):
            assert (s[:, i:i + 1] - a).abs().max().item() < 1e-12
    grad_packed = torch.autograd.grad(padded.sin().sum(), x)[0]
    grad_alone = torch.cat([torch.autograd.grad(call(cell)(x[:n, i:i + 1], tuple(h[:, i:i + 1] for h in hx))[0]
                                                .sin().sum(), x)[0][:, i:i + 1] for i, n in enumerate(lengths)], 1)
    assert (grad_packed - grad_alone).abs().max().item() < 1e-12


SCAN_CASES = [(name, flags) for name, flags in FLAG_CASES  # the cases an acceleration computes
              if any(a.family == name.lower() and a.covers(getattr(cells, name).resolve_flags(flags))
                     for a in accelerations.REGISTRY)]


def copy_blocks(src, dst, mapping):
    """dst block <- src block (or its negation with a leading '-'), for every layer and tensor."""
    with torch.no_grad():
        for k in range(src.num_layers):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                s, d = getattr(src, f"{kind}_l{k}"), getattr(dst, f"{kind}_l{k}")
                for dst_block, src_block in mapping.items():
                    sign = -1 if src_block.startswith("-") else 1
                    dst._block(d, dst_block).copy_(sign * src._block(s, src_block.lstrip("-")))


def run(cell, x):
    out, state = cell(x)
    return out


def test_untied_gru_with_i_equal_one_minus_z_is_the_gru():
    """tied_gates=False: h = f ⊙ h + i ⊙ n. With i's weights = -z's, i = σ(-a) = 1 - z: the GRU."""
    gru = cells.GRU(I, H, 2, dtype=F64)
    untied = cells.GRU(I, H, 2, dtype=F64, tied_gates=False)
    copy_blocks(gru, untied, {"r": "r", "z": "z", "n": "n", "i": "-z"})
    x = torch.randn(T, B, I, dtype=F64)
    assert torch.allclose(run(untied, x), run(gru, x), atol=1e-12)


def test_cifg_is_the_lstm_whose_input_gate_is_one_minus_forget():
    lstm = cells.LSTM(I, H, 2, dtype=F64)
    cifg = cells.LSTM(I, H, 2, dtype=F64, coupled_gates=True)
    copy_blocks(cifg, lstm, {"i": "-f", "f": "f", "g": "g", "o": "o"})
    x = torch.randn(T, B, I, dtype=F64)
    assert torch.allclose(run(cifg, x), run(lstm, x), atol=1e-12)


def test_mgu_is_the_untied_gru_with_r_equal_f_and_z_equal_one_minus_f():
    mgu = cells.GRU(I, H, 2, dtype=F64, minimal=True)
    untied = cells.GRU(I, H, 2, dtype=F64, tied_gates=False)
    # untied: h = z ⊙ h + i ⊙ n; MGU: h = (1 - f) ⊙ h + f ⊙ n, so r <- f, z <- -f, i <- f
    copy_blocks(mgu, untied, {"r": "f", "z": "-f", "n": "n", "i": "f"})
    x = torch.randn(T, B, I, dtype=F64)
    assert torch.allclose(run(mgu, x), run(untied, x), atol=1e-12)


def test_gru_without_reset_and_update_is_a_vanilla_rnn():
    """r = 1 and h_t = n: n = tanh(W_in x + b_in + W_hn h + b_hn), the tanh RNN."""
    gru = cells.GRU(I, H, 2, dtype=F64, reset_gate=False, update_gate=False)
    rnn = torch.nn.RNN(I, H, 2, dtype=F64)
    rnn.load_state_dict(gru.state_dict())  # one block each: the same names and shapes
    x = torch.randn(T, B, I, dtype=F64)
    assert torch.allclose(run(gru, x), rnn(x)[0], atol=1e-12)


def test_reset_placement_matters_only_with_a_reset_gate():
    after = cells.GRU(I, H, dtype=F64)
    before = cells.GRU(I, H, dtype=F64, reset_after=False)
    before.load_state_dict(after.state_dict())  # reset_after=False keeps torch's shapes
    x = torch.randn(T, B, I, dtype=F64)
    assert (run(after, x) - run(before, x)).abs().max() > 1e-3
    after_nr = cells.GRU(I, H, dtype=F64, reset_gate=False)
    before_nr = cells.GRU(I, H, dtype=F64, reset_gate=False, reset_after=False)
    before_nr.load_state_dict(after_nr.state_dict())
    assert torch.allclose(run(after_nr, x), run(before_nr, x), atol=1e-12)


def test_zero_peepholes_are_the_lstm():
    peep = cells.LSTM(I, H, 2, dtype=F64, peepholes=True)
    lstm = cells.LSTM(I, H, 2, dtype=F64)
    with torch.no_grad():
        for k in range(2):
            getattr(peep, f"weight_ch_l{k}").zero_()
    lstm.load_state_dict({n: v for n, v in peep.state_dict().items() if "weight_ch" not in n})
    x = torch.randn(T, B, I, dtype=F64)
    assert torch.allclose(run(peep, x), run(lstm, x), atol=1e-12)


@pytest.mark.parametrize("activation,expect", [("tanh", torch.tanh), ("identity", lambda c: c)])
def test_without_output_gate_h_is_the_output_activation_of_c(activation, expect):
    cell = cells.LSTM(I, H, 2, dtype=F64, output_gate=False, output_activation=activation)
    _, (h, c) = cell(torch.randn(T, B, I, dtype=F64))
    assert torch.allclose(h, expect(c), atol=1e-14)


def test_without_forget_and_input_gates_c_accumulates_g():
    """f = 1 and i = 1: c_t = c_{t-1} + g_t, so c_T - c_0 is the sum of the g_t."""
    cell = cells.LSTM(I, H, 1, dtype=F64, forget_gate=False, input_gate=False)
    x = torch.randn(T, B, I, dtype=F64)
    c0 = torch.randn(1, B, H, dtype=F64)
    out, (_, c) = cell(x, (torch.zeros(1, B, H, dtype=F64), c0))
    hs = torch.cat([torch.zeros(1, B, H, dtype=F64), out[:-1]])  # h_{t-1}
    w_ih, w_hh, b_ih, b_hh, _ = cell._params(0)
    g = torch.tanh(x @ cell._block(w_ih, "g").T + hs @ cell._block(w_hh, "g").T
                   + cell._block(b_ih, "g") + cell._block(b_hh, "g"))
    assert torch.allclose(c[0] - c0[0], g.sum(0), atol=1e-12)




def test_janet_is_the_forget_gate_alone_with_its_shifted_input():
    """conf/cell/janet.yaml against JANET's equations written directly (van der Westhuizen &
    Lasenby 2018, eq. 3-6): s = W_f x + U_f h + b_f, c' = σ(s) ⊙ c + (1 - σ(s - 1)) ⊙ tanh(W_c x +
    U_c h + b_c), h' = c'; two weight blocks (f, g), chrono's forget bias."""
    from omegaconf import OmegaConf
    from hydra.utils import instantiate
    from shrunk import ROOT
    config = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "cell" / "janet.yaml"), resolve=True)
    cell = instantiate({**config, "hidden_size": H}, input_size=I).double()
    assert cell.layout.blocks == ("f", "g") and cell.init == "chrono"
    x, c = torch.randn(T, B, I, dtype=F64), torch.randn(1, B, H, dtype=F64)
    out, (h_n, c_n) = cell(x, (c.clone(), c.clone()))  # h_0 = c_0: JANET's state is c alone
    (w_f, w_c), (u_f, u_c) = cell.weight_ih_l0.chunk(2), cell.weight_hh_l0.chunk(2)
    b_f, b_c = (cell.bias_ih_l0 + cell.bias_hh_l0).chunk(2)
    state, want = c[0], []
    for t in range(T):
        s = x[t] @ w_f.T + state @ u_f.T + b_f
        state = torch.sigmoid(s) * state + (1 - torch.sigmoid(s - 1)) * torch.tanh(x[t] @ w_c.T + state @ u_c.T + b_c)
        want.append(state)
    assert torch.allclose(out, torch.stack(want), atol=1e-12) and torch.equal(h_n, c_n)


def test_ugrnn_is_the_gru_without_reset_gate():
    """conf/cell/ugrnn.yaml against the UGRNN's equations written directly (Collins et al. 2017):
    c = tanh(W_c x + U_c h + b_c), g = σ(W_g x + U_g h + b_g), h' = g ⊙ h + (1 - g) ⊙ c."""
    from omegaconf import OmegaConf
    from hydra.utils import instantiate
    from shrunk import ROOT
    config = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "cell" / "ugrnn.yaml"), resolve=True)
    cell = instantiate({**config, "hidden_size": H}, input_size=I).double()
    assert cell.layout.blocks == ("z", "n")
    x, h = torch.randn(T, B, I, dtype=F64), torch.randn(1, B, H, dtype=F64)
    out, _ = cell(x, h)
    (w_g, w_c), (u_g, u_c) = cell.weight_ih_l0.chunk(2), cell.weight_hh_l0.chunk(2)
    b_g, b_c = (cell.bias_ih_l0 + cell.bias_hh_l0).chunk(2)
    state, want = h[0], []
    for t in range(T):
        g = torch.sigmoid(x[t] @ w_g.T + state @ u_g.T + b_g)
        state = g * state + (1 - g) * torch.tanh(x[t] @ w_c.T + state @ u_c.T + b_c)
        want.append(state)
    assert torch.allclose(out, torch.stack(want), atol=1e-12)
