"""Behaviours PyTorch's own tests check for nn.RNN, nn.LSTM and nn.GRU, with torch's module as the
oracle (torch 2.13; each test names the torch test it follows). Errors: ours keep their one-line
messages and raise classes that torch's callers catch."""
import warnings

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import cells

F64 = torch.float64
NAMES = ["RNN", "LSTM", "GRU"]


def both(name, *args, **kwargs):
    """torch's module and ours, built alike, ours with torch's weights."""
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    ours = getattr(cells, name)(*args, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def raised(fn) -> type | None:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 (the class is what is compared)
        return type(e)
    return None


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kwargs", [
    {"input_size": 10, "hidden_size": 0}, {"input_size": 10, "hidden_size": 10, "num_layers": 0},
    {"input_size": 10, "hidden_size": 10, "bias": 1}, {"input_size": 10, "hidden_size": 10, "bias": "True"},
    {"input_size": 10, "hidden_size": 10, "batch_first": 0}, {"input_size": 3.0, "hidden_size": 10},
    {"input_size": "10", "hidden_size": 10}, {"input_size": 0, "hidden_size": 10},
    {"input_size": 10, "hidden_size": 5.0}, {"input_size": 10, "hidden_size": 10, "dropout": 1.5},
], ids=str)
def test_constructor_errors_are_the_classes_torch_raises(name, kwargs):
    """TestModule.test_errors on module_error_inputs_torch_nn_RNN_GRU (common_modules.py)."""
    theirs = raised(lambda: getattr(torch.nn, name)(**kwargs))
    assert theirs is not None
    with pytest.raises(theirs) as info:
        getattr(cells, name)(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shapes_raise_runtime_errors_as_torch_does(name):
    """test_rnn_args_check and test_cudnn_forward_exception (test_nn.py): a wrong batch, input
    size or state shape, and an empty sequence (test_error_RNN_seq_len_zero), raise RuntimeError."""
    theirs, ours = both(name, 3, 5, 2)
    good_x, good_h = torch.randn(6, 4, 3), torch.randn(2, 4, 5)
    bad = [(torch.randn(6, 4, 7), None), (good_x, torch.randn(2, 7, 5)), (good_x, torch.randn(2, 4, 7)),
           (good_x, torch.randn(7, 4, 5)), (torch.randn(0, 4, 3), None)]
    for x, h in bad:
        hx = None if h is None else ((h, good_h) if name == "LSTM" else h)
        assert raised(lambda: theirs(x, hx)) is RuntimeError
        with pytest.raises(RuntimeError):
            ours(x, hx)


@pytest.mark.parametrize("name", NAMES)
def test_an_input_of_another_dtype_is_a_value_error(name):
    """TestModule.test_errors' forward entry: an input of another float dtype than the weights."""
    theirs, ours = both(name, 3, 5)
    x = torch.randn(2, 4, 3, dtype=F64)
    assert raised(lambda: theirs(x)) is ValueError
    with pytest.raises(ValueError, match="input dtype torch.float64 does not match the weights' torch.float32"):
        ours(x)


@pytest.mark.parametrize("name", NAMES)
def test_dropout_with_one_layer_warns(name):
    """RNNBase.__init__ warns that dropout acts between layers only (not tested by torch)."""
    for module in (getattr(torch.nn, name), getattr(cells, name)):
        with pytest.warns(UserWarning, match="dropout"):
            module(3, 5, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cells.LSTM(3, 5, 2, dropout=0.5)


@pytest.mark.parametrize("name", NAMES)
def test_repr_shows_what_differs_from_the_defaults(name):
    """RNNBase.extra_repr's rule (TestModule.test_repr only checks that repr runs)."""
    for kwargs in ({}, {"num_layers": 2, "dropout": 0.5}, {"bias": False, "batch_first": True}):
        theirs, ours = (m(3, 5, **kwargs) for m in (getattr(torch.nn, name), getattr(cells, name)))
        assert repr(ours) == repr(theirs)
    assert repr(cells.GRU(3, 5, minimal=True)) == "GRU(3, 5, minimal=True)"


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_batch_runs_forward_and_backward(name):
    """test_RNN_input_size_zero (test_nn.py): input (5, 0, 3) gives an output (5, 0, 4) whose
    backward runs."""
    theirs, ours = both(name, 3, 4)
    x = torch.zeros(5, 0, 3, requires_grad=True)
    outs = [m(x)[0] for m in (theirs, ours)]
    assert outs[1].shape == outs[0].shape == (5, 0, 4)
    outs[1].sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bias", [True, False])
def test_grad_and_gradgrad_match_torch(name, bias):
    """test_LSTM_grad_and_gradgrad and test_GRU_grad_and_gradgrad (test_nn.py; the RNN by
    TestModule.test_gradgrad): gradcheck and gradgradcheck through the input, on the path our
    cell takes (compiled loops or scan for the LSTM and the GRU), and the double backward of a
    gradient penalty equal to torch's."""
    theirs, ours = both(name, 4, 4, bias=bias, dtype=F64)
    x = torch.rand(1, 3, 4, dtype=F64, requires_grad=True)

    def flat(x):  # the output and the final states, as one vector
        out, state = ours(x)
        return torch.cat([t.flatten() for t in (out, *(state if isinstance(state, tuple) else (state,)))])

    assert torch.autograd.gradcheck(flat, (x,))
    assert torch.autograd.gradgradcheck(flat, (x,), check_batched_grad=False)
    penalties = []
    for m in (theirs, ours):
        g, = torch.autograd.grad(m(x)[0].sin().sum(), x, create_graph=True)
        penalties.append(torch.autograd.grad((g ** 2).sum(), [x, *m.parameters()]))
    for a, b in zip(*penalties, strict=True):
        assert (a - b).abs().max().item() < 1e-10
    assert ours.paths != ["steps"] or name == "RNN"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_bidirectional_equals_torch(name, num_layers, batch_first):
    """Bidirectional layers as torch's (the ModuleInfo samples of common_modules.py, batched and
    unbatched; test_rnn_initial_hidden_state): the same parameter names ('_reverse'), outputs
    (T, B, 2H), h_n (2L, B, H) layer-major, every gradient, on the path each unit takes; eval-mode
    dropout between layers changes nothing."""
    theirs, ours = both(name, 3, 4, num_layers, batch_first=batch_first, bidirectional=True, dtype=F64,
                        dropout=0.3 if num_layers > 1 else 0.0)
    theirs.eval(), ours.eval()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert cells.count_params(name, 3, 4, num_layers, bidirectional=True) == sum(p.numel() for p in ours.parameters())
    B, T = 2, 5
    x = torch.randn(B, T, 3, dtype=F64) if batch_first else torch.randn(T, B, 3, dtype=F64)
    h = torch.randn(2 * num_layers, B, 4, dtype=F64)
    for hx in (None, (h, torch.randn_like(h)) if name == "LSTM" else h):
        results = []
        for m in (theirs, ours):
            m.zero_grad()
            xi = x.clone().requires_grad_()
            out, state = m(xi, hx)
            states = state if isinstance(state, tuple) else (state,)
            (out.sin().sum() + sum(s.sum() for s in states)).backward()
            results.append([out, *states, xi.grad, *(p.grad for p in m.parameters())])
        for a, b in zip(*results, strict=True):
            assert a.shape == b.shape and (a - b).abs().max().item() < 1e-10
    unbatched = torch.randn(T, 3, dtype=F64)
    assert (theirs(unbatched)[0] - ours(unbatched)[0]).abs().max().item() < 1e-10
    assert len(ours.paths) == 2 * num_layers


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (2, True)])
def test_lstm_projection_equals_torch(num_layers, bidirectional):
    """proj_size as torch's (test_projections_lstm_initial_hidden_state, test_variable_sequence's
    proj_size case without packing): weight_hr_l{k} named and placed as torch's, h of width
    proj_size, every gradient; repr; and test_projections_lstm_args_check's shape errors."""
    theirs, ours = both("LSTM", 3, 5, num_layers, bidirectional=bidirectional, proj_size=2, dtype=F64)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert repr(ours) == repr(theirs)
    assert cells.count_params("lstm", 3, 5, num_layers, bidirectional=bidirectional, proj_size=2) == sum(
        p.numel() for p in ours.parameters())
    D = 2 if bidirectional else 1
    x = torch.randn(6, 4, 3, dtype=F64)
    for hx in (None, (torch.randn(num_layers * D, 4, 2, dtype=F64), torch.randn(num_layers * D, 4, 5, dtype=F64))):
        results = []
        for m in (theirs, ours):
            m.zero_grad()
            xi = x.clone().requires_grad_()
            out, (h, c) = m(xi, hx)
            (out.sin().sum() + h.sum() + c.cos().sum()).backward()
            results.append([out, h, c, xi.grad, *(p.grad for p in m.parameters())])
        for a, b in zip(*results, strict=True):
            assert a.shape == b.shape and (a - b).abs().max().item() < 1e-10
    h, c = torch.randn(num_layers * D, 4, 2, dtype=F64), torch.randn(num_layers * D, 4, 5, dtype=F64)
    for bad in ((c, c), (h, h), (torch.randn(7, 4, 2, dtype=F64), c)):
        assert raised(lambda: theirs(x, bad)) is RuntimeError
        with pytest.raises(RuntimeError):
            ours(x, bad)


@pytest.mark.parametrize("name,kwargs", [("GRU", {"proj_size": 2}), ("RNN", {"proj_size": 2}),
                                         ("LSTM", {"proj_size": 5}), ("LSTM", {"proj_size": -1})])
def test_projection_errors_are_torchs_classes(name, kwargs):
    """test_projections_errors_on_gru_and_rnn; proj_size >= hidden_size or < 0 (RNNBase.__init__)."""
    assert raised(lambda: getattr(torch.nn, name)(3, 5, **kwargs)) is ValueError
    with pytest.raises(ValueError, match="proj_size"):
        getattr(cells, name)(3, 5, **kwargs)


@pytest.mark.parametrize("name,num_layers,bidirectional,proj", [
    ("RNN", 1, False, 0), ("RNN", 2, True, 0), ("LSTM", 1, False, 0), ("LSTM", 2, True, 0), ("LSTM", 2, True, 2),
    ("GRU", 1, False, 0), ("GRU", 2, True, 0)])
@pytest.mark.parametrize("lengths,enforce_sorted", [([5], True), ([5, 5, 3, 2, 1, 1], True),
                                                    ([2, 1, 3, 5, 4], False)])
def test_packed_sequences_equal_torch(name, num_layers, bidirectional, proj, lengths, enforce_sorted):
    """test_variable_sequence (test_nn.py): a PackedSequence in (sorted or not, an initial state
    in the caller's batch order), a PackedSequence out, h_n in the caller's order, each sequence's
    own last state; outputs and every gradient equal torch's."""
    extra = {"proj_size": proj} if proj else {}
    theirs, ours = both(name, 3, 4, num_layers, bidirectional=bidirectional, dtype=F64, **extra)
    D, B = 2 if bidirectional else 1, len(lengths)
    x = torch.randn(max(lengths), B, 3, dtype=F64)
    h = torch.randn(num_layers * D, B, proj or 4, dtype=F64)
    hx = (h, torch.randn(num_layers * D, B, 4, dtype=F64)) if name == "LSTM" else h
    results = []
    for m in (theirs, ours):
        m.zero_grad()
        xi = x.clone().requires_grad_()
        out, state = m(pack_padded_sequence(xi, lengths, enforce_sorted=enforce_sorted), hx)
        assert isinstance(out, PackedSequence)
        padded, got_lengths = pad_packed_sequence(out)
        assert got_lengths.tolist() == lengths
        states = state if isinstance(state, tuple) else (state,)
        (padded.sin().sum() + sum(s.sum() for s in states)).backward()
        results.append([padded, *states, xi.grad, *(p.grad for p in m.parameters())])
    for a, b in zip(*results, strict=True):
        assert a.shape == b.shape and (a - b).abs().max().item() < 1e-10


@pytest.mark.parametrize("impl", ["torch", "ours"])
@pytest.mark.parametrize("p", [0.0, 0.276, 0.731, 1.0])
@pytest.mark.parametrize("train", [True, False])
def test_dropout_acts_on_the_input_of_the_second_layer_only(impl, p, train):
    """test_RNN_dropout (test_nn.py): with every weight 1 and ReLU, layer 1 outputs 10 in each of
    its 1000 units; inverted dropout between the layers keeps each with probability 1 - p and
    scales it by 1 / (1 - p), so layer 2's units all equal 10 / (1 - p) times the units kept: a
    multiple of 10 near 10,000. Not applied to layer 1's h_n, nor after the last layer, nor in eval."""
    module = (torch.nn.RNN if impl == "torch" else cells.RNN)(10, 1000, 2, bias=False, dropout=p,
                                                               nonlinearity="relu", dtype=F64)
    with torch.no_grad():
        for w in module.parameters():
            w.fill_(1)
    module.train(train)
    out, hy = module(torch.ones(1, 1, 10, dtype=F64), torch.zeros(2, 1, 1000, dtype=F64))
    value = out.max().item()
    assert out.min().item() == value and hy[0].min() == hy[0].max() == 10
    assert hy[1].min() == hy[1].max() == value
    if p == 0 or not train:
        assert value == 10000
    elif p == 1:
        assert value == 0
    else:
        assert 8000 < value < 12000
        kept = value * (1 - p) / 10  # units layer 1 passed on
        assert abs(kept - round(kept)) < 1e-3  # torch: (value (1 - p)) mod 10 within 1e-2 of 0 or 10


@pytest.mark.parametrize("impl", ["torch", "ours"])
@pytest.mark.parametrize("p", [0.0, 0.1234])
@pytest.mark.parametrize("train", [True, False])
def test_dropout_draws_a_new_mask_each_call_and_survives_pickling(impl, p, train, tmp_path):
    """test_RNN_dropout_state (test_nn.py): two calls, then a copy through torch.save and load: in
    training with p > 0 all three outputs differ (a new mask each call), else all are equal."""
    module = (torch.nn.RNN if impl == "torch" else cells.RNN)(100, 100, 2, bias=False, dropout=p,
                                                               nonlinearity="relu")
    module.train(train)
    x, h = torch.rand(1, 1, 100), torch.rand(2, 1, 100)
    first, second = module(x, h), module(x, h)
    torch.save(module, tmp_path / "rnn.pt")
    third = torch.load(tmp_path / "rnn.pt", weights_only=False)(x, h)
    pairs = [(a, b) for a, b in ((first, second), (first, third), (second, third))]
    same = [torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs]
    assert same == ([False] * 3 if p > 0 and train else [True] * 3)


@pytest.mark.parametrize("impl", ["torch", "ours"])
@pytest.mark.parametrize("train", [True, False])
def test_dropout_changed_after_construction_takes_effect(impl, train):
    """test_RNN_change_dropout (test_nn.py): `module.dropout = p` after construction: in training,
    two calls agree only at p = 0 or 1 and each p's output differs from the previous p's; in eval
    every call gives the same output."""
    torch.manual_seed(0)
    module = (torch.nn.RNN if impl == "torch" else cells.RNN)(100, 100, 2, dropout=0.0, nonlinearity="relu",
                                                               dtype=F64)
    module.train(train)
    x = torch.rand(3, 2, 100, dtype=F64)
    previous = None
    for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
        module.dropout = p
        a, b = module(x)[0], module(x)[0]
        assert torch.equal(a, b) == (p in (0, 1) or not train), p
        if previous is not None:
            assert torch.equal(a, previous) == (not train), p
        previous = a
