"""Each init and forget_bias sets the values docs/cells.md gives, on every layer."""
import math

import pytest
import torch

import cells

F64 = torch.float64
I, H = 3, 16


def blocks(cell, kind, k):
    """block name -> that block of parameter `kind` in layer k (docs/design.md's layout)."""
    t = getattr(cell, f"{kind}_l{k}")
    return dict(zip(cell.layout.blocks, t.split(cell.hidden_size)))


def effective_bias(cell, k):
    b_ih, b_hh = blocks(cell, "bias_ih", k), blocks(cell, "bias_hh", k)
    return {b: b_ih[b] + b_hh[b] for b in b_ih}


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_default_init_is_torchs_uniform(name):
    cell = getattr(cells, name)(I, 400, 2, dtype=F64)
    bound = 1 / math.sqrt(400)
    for p in cell.parameters():
        assert p.abs().max() <= bound
        assert abs(p.std().item() - bound / math.sqrt(3)) < 0.05 * bound  # U(-a, a) has std a/sqrt(3)


@pytest.mark.parametrize("name,flags", [("RNN", {}), ("LSTM", {}), ("GRU", {}), ("GRU", {"tied_gates": False}),
                                        ("LSTM", {"peepholes": True})], ids=str)
def test_orthogonal_sets_each_hidden_block(name, flags):
    cell = getattr(cells, name)(I, H, 2, dtype=F64, init="orthogonal", **flags)
    eye = torch.eye(H, dtype=F64)
    for k in range(2):
        for block in blocks(cell, "weight_hh", k).values():
            assert torch.allclose(block @ block.T, eye, atol=1e-12)
        assert getattr(cell, f"weight_ih_l{k}").abs().max() <= 1 / math.sqrt(H)  # input weights keep torch's


@pytest.mark.parametrize("name,flags", [("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {}),
                                        ("GRU", {"minimal": True})], ids=str)
def test_identity_sets_hidden_blocks_to_identity_and_zeroes_biases(name, flags):
    cell = getattr(cells, name)(I, H, 2, dtype=F64, init="identity", **flags)
    for k in range(2):
        for block in blocks(cell, "weight_hh", k).values():
            assert torch.equal(block, torch.eye(H, dtype=F64))
        assert not getattr(cell, f"bias_ih_l{k}").any() and not getattr(cell, f"bias_hh_l{k}").any()


def test_irnn_starts_as_a_relu_identity_map():
    """IRNN with zero input and positive state keeps h_t = h_0 (W_hh = I, b = 0, ReLU)."""
    cell = cells.RNN(I, H, nonlinearity="relu", init="identity", dtype=F64)
    h0 = torch.rand(1, 2, H, dtype=F64)
    out, h = cell(torch.zeros(5, 2, I, dtype=F64), h0)
    assert torch.equal(h, h0) and torch.equal(out[-1], h0[0])


# (flags, keep: the block whose effective bias is log U[1, t_max - 1], its sign, the input block or None)
CHRONO = [
    ("LSTM", {}, ("f", 1), "i"),
    ("LSTM", {"input_gate": False}, ("f", 1), None),
    ("LSTM", {"coupled_gates": True}, ("f", 1), None),
    ("GRU", {}, ("z", 1), None),  # z keeps the old state: it plays the LSTM's f
    ("GRU", {"tied_gates": False}, ("z", 1), "i"),
    ("GRU", {"minimal": True}, ("f", -1), None),  # z = 1 - f, so b_f = -log U
]


@pytest.mark.parametrize("name,flags,keep,inp", CHRONO, ids=str)
def test_chrono_writes_log_uniform_keep_bias_into_bias_ih_only(name, flags, keep, inp):
    t_max = 50
    cell = getattr(cells, name)(I, 2000, 2, dtype=F64, init="chrono", t_max=t_max, **flags)
    block, sign = keep
    for k in range(2):
        b = sign * effective_bias(cell, k)[block]
        assert b.min() >= 0 and b.max() <= math.log(t_max - 1)
        # exp(b) ~ U[1, t_max - 1]: its mean is t_max / 2 (standard error ~0.3 here)
        assert abs(b.exp().mean().item() - t_max / 2) < 2
        assert not blocks(cell, "bias_hh", k)[block].any()  # bias_ih alone carries it
        if inp is not None:
            assert torch.equal(effective_bias(cell, k)[inp], -sign * effective_bias(cell, k)[block])
            assert not blocks(cell, "bias_hh", k)[inp].any()
        others = [v for n, v in effective_bias(cell, k).items() if n not in (block, inp)]
        assert all(v.abs().max() <= 2 / math.sqrt(2000) for v in others)  # untouched: torch's init


@pytest.mark.parametrize("value", [1.0, -2.5, 0.0, 3])
def test_forget_bias_makes_the_effective_forget_bias_exact(value):
    cell = cells.LSTM(I, H, 2, dtype=F64, forget_bias=value)
    for k in range(2):
        assert torch.equal(blocks(cell, "bias_ih", k)["f"], torch.full((H,), float(value), dtype=F64))
        assert not blocks(cell, "bias_hh", k)["f"].any()
        for b in "igo":
            assert effective_bias(cell, k)[b].abs().max() <= 2 / math.sqrt(H)


def test_reset_parameters_reapplies_the_init():
    cell = cells.LSTM(I, H, forget_bias=1.0, init="orthogonal", dtype=F64)
    with torch.no_grad():
        for p in cell.parameters():
            p.fill_(7.0)
    cell.reset_parameters()
    assert torch.equal(cell.bias_ih_l0[H:2 * H], torch.ones(H, dtype=F64))
    w = cell.weight_hh_l0[:H]
    assert torch.allclose(w @ w.T, torch.eye(H, dtype=F64), atol=1e-12)
