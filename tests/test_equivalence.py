"""With default flags and a copied state_dict, our cells equal torch.nn.RNN / LSTM / GRU:
outputs, final states and every gradient, in float64 to 1e-9."""
import itertools

import pytest
import torch

import cells

F64 = torch.float64
I, H, T, B = 3, 5, 7, 4
CASES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]


def make_pair(name, flags, num_layers, batch_first, bias=True):
    ref = getattr(torch.nn, name)(I, H, num_layers, bias=bias, batch_first=batch_first, dtype=F64, **flags)
    ours = getattr(cells, name)(I, H, num_layers, bias=bias, batch_first=batch_first, dtype=F64, **flags)
    ours.load_state_dict(ref.state_dict())  # also proves names and shapes agree
    return ref, ours


def run(module, x, hx):
    """Forward, then backward of a loss touching every output; returns all tensors to compare."""
    x = x.clone().requires_grad_()
    hx = None if hx is None else tuple(h.clone().requires_grad_() for h in hx)
    out, state = module(x, None if hx is None else (hx if len(hx) == 2 else hx[0]))
    states = state if isinstance(state, tuple) else (state,)
    weights = torch.linspace(-1, 1, out.numel(), dtype=F64).reshape(out.shape)
    ((out * weights).sum() + sum((s ** 2).sum() for s in states)).backward()
    grads = [x.grad] + ([] if hx is None else [h.grad for h in hx])
    return [out, *states, *grads, *(p.grad for p in module.parameters())]


def assert_same(a_list, b_list, tol=1e-9):
    assert len(a_list) == len(b_list)
    for a, b in zip(a_list, b_list):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= tol


@pytest.mark.parametrize("name,flags", CASES, ids=[f"{n}-{f}" for n, f in CASES])
@pytest.mark.parametrize("num_layers,batch_first,with_hx", list(itertools.product((1, 2), (False, True), (False, True))))
def test_matches_torch(name, flags, num_layers, batch_first, with_hx):
    ref, ours = make_pair(name, flags, num_layers, batch_first)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=F64)
    hx = tuple(torch.randn(num_layers, B, H, dtype=F64) for _ in range(2 if name == "LSTM" else 1))
    hx = hx if with_hx else None
    assert_same(run(ours, x, hx), run(ref, x, hx))


@pytest.mark.parametrize("name,flags", CASES, ids=[f"{n}-{f}" for n, f in CASES])
@pytest.mark.parametrize("num_layers,with_hx", list(itertools.product((1, 2), (False, True))))
def test_unbatched_matches_torch(name, flags, num_layers, with_hx):
    ref, ours = make_pair(name, flags, num_layers, batch_first=False)
    x = torch.randn(T, I, dtype=F64)
    hx = tuple(torch.randn(num_layers, H, dtype=F64) for _ in range(2 if name == "LSTM" else 1))
    hx = hx if with_hx else None
    got, want = run(ours, x, hx), run(ref, x, hx)
    assert got[0].shape == (T, H)
    assert_same(got, want)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_without_bias_matches_torch(name):
    ref, ours = make_pair(name, {}, 2, False, bias=False)
    assert not any("bias" in n for n, _ in ours.named_parameters())
    x = torch.randn(T, B, I, dtype=F64)
    assert_same(run(ours, x, None), run(ref, x, None))


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_parameter_names_and_shapes_are_torchs(name):
    ref, ours = make_pair(name, {}, 2, False)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_positional_constructor_arguments_are_torchs(name):
    extra = ("tanh",) if name == "RNN" else ()  # nn.RNN takes nonlinearity fourth
    args = (I, H, 2, *extra, False, True, 0.0)  # ..., bias, batch_first, dropout
    ours, ref = getattr(cells, name)(*args), getattr(torch.nn, name)(*args)
    assert (ours.num_layers, ours.bias, ours.batch_first) == (ref.num_layers, ref.bias, ref.batch_first) == (2, False, True)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_dropout_sits_between_layers_only(name):
    """dropout=1 zeroes layer 0's output before layer 1, so the result is layer 1 on zeros; in
    eval mode dropout is off and the cell equals torch's."""
    ref, ours = make_pair(name, {}, 2, False)
    ours.dropout = ref.dropout = 1.0
    x = torch.randn(T, B, I, dtype=F64)
    out, _ = ours.train()(x)
    top = getattr(cells, name)(H, H, 1, dtype=F64)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in ours.state_dict().items() if k.endswith("_l1")})
    assert torch.allclose(out, top(torch.zeros(T, B, H, dtype=F64))[0], atol=1e-12)
    assert_same([ours.eval()(x)[0]], [ref.eval()(x)[0]])


@pytest.mark.parametrize("cfg", [("RNN", {"init": "identity", "nonlinearity": "relu"}),
                                 ("LSTM", {"forget_bias": 1.0}), ("LSTM", {"init": "chrono", "t_max": 50}),
                                 ("GRU", {"init": "orthogonal"})], ids=str)
def test_init_flags_keep_torchs_equations(cfg):
    """Flags that only set starting values have torch twins through to_torch()."""
    name, flags = cfg
    ours = getattr(cells, name)(I, H, 2, dtype=F64, **flags)
    twin = ours.to_torch()
    assert isinstance(twin, getattr(torch.nn, name))
    x = torch.randn(T, B, I, dtype=F64)
    assert_same(run(ours, x, None), run(twin, x, None))


def test_ablations_have_no_torch_twin():
    assert cells.GRU(I, H, reset_after=False).to_torch() is None
    assert cells.LSTM(I, H, peepholes=True).to_torch() is None
