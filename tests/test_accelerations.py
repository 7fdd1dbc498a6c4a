"""Every registered acceleration (cells/accelerations.py) equals the step loop, the definition of
each cell, over every flag set it claims: outputs, final states and every gradient in float64. A
new acceleration, or a new flag, joins this test by being registered: the flag sets are every
combination of each family's equation flags that its make_layout accepts. Dispatch: which path
a call takes, and that each layer records it."""
import contextlib
import itertools

import pytest
import torch

import cells
from cells import accelerations, scans
from cells._base import INIT_FLAGS

from test_ablations import B, F64, H, I, T, outputs_and_grads


def flag_sets(cls) -> list[dict]:
    """Every combination of cls's equation flags (those with a finite set of values; the init
    flags set starting values only) that its make_layout accepts."""
    names = [f for f, spec in cls.FLAGS.items()
             if f not in INIT_FLAGS and not any(isinstance(a, type) for a in spec.allowed)]
    out = []
    for values in itertools.product(*(cls.FLAGS[f].allowed for f in names)):
        flags = cls.resolve_flags(dict(zip(names, values)))
        try:
            cls.make_layout(flags)
        except ValueError:  # a contradiction: no such cell
            continue
        out.append(dict(zip(names, values)))
    return out


def changed(cls, flags: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in flags.items() if v != cls.FLAGS[k].default) or "standard"


FAMILIES = {cls.__name__.lower(): cls for cls in (cells.RNN, cells.LSTM, cells.GRU)}
CASES = [pytest.param(a, flags, chunked, id=f"{a.family}-{a.name}-{changed(FAMILIES[a.family], flags)}"
                      + ("-chunked" if chunked else ""))
         for a in accelerations.REGISTRY for flags in flag_sets(FAMILIES[a.family])
         if a.covers(FAMILIES[a.family].resolve_flags(flags))
         for chunked in ((False, True) if (a.family, a.name) != ("lstm", "scan") else (False,))]  # its loops never chunk


def test_every_family_has_its_flag_sets_and_every_acceleration_cases():
    assert len(flag_sets(cells.GRU)) >= 10 and len(flag_sets(cells.LSTM)) >= 60
    assert {a.family for a in accelerations.REGISTRY} == {"lstm", "gru"}
    assert all(any(p.values[0] is a for p in CASES) for a in accelerations.REGISTRY)


@pytest.mark.parametrize("acceleration,flags,chunked", CASES)
def test_acceleration_equals_the_step_loop(acceleration, flags, chunked, monkeypatch):
    """With only this acceleration registered, a 2-layer cell (float64, grad) runs it on every
    layer, and its outputs, final states and all gradients equal the step loop's. Chunked: the
    backward's buffer holds fewer steps than T (partial weight-gradient sums)."""
    if not acceleration.available():
        pytest.skip(f"{acceleration.name} is not available here (cells/native.py could not build its loops)")
    if chunked:
        monkeypatch.setattr(scans, "CHUNK_BYTES", {"cpu": 4 * B * 3 * H * 8})
    monkeypatch.setattr(accelerations, "REGISTRY", [acceleration])
    cell = FAMILIES[acceleration.family](I, H, 2, dtype=F64, **flags)
    x = torch.randn(T, B, I, dtype=F64)
    hx = tuple(torch.randn(2, B, H, dtype=F64) for _ in range(cell.n_states))
    call = lambda x, hx: cell(x, hx if cell.n_states > 1 else hx[0])  # noqa: E731
    fast = outputs_and_grads(call, cell, x, hx)
    assert cell.paths == [acceleration.name] * 2
    with cell.steps_through(lambda step: step):
        steps = outputs_and_grads(call, cell, x, hx)
    assert cell.paths == [accelerations.STEPS] * 2
    for a, b in zip(fast, steps, strict=True):
        assert (a - b).abs().max().item() < 1e-12


@pytest.mark.parametrize("where,expected", [
    ("grad", "compiled"), ("no_grad", "compiled"), ("float16", "scan"), ("no_grad float16", "steps"),
    ("trace", "steps"), ("autocast", "steps"), ("no compiled loops", "scan"), ("no compiled loops, no_grad", "steps"),
])
def test_dispatch_takes_the_first_acceleration_that_serves_the_call(where, expected, monkeypatch):
    from cells import native
    if "compiled" in expected and not native.active():
        pytest.skip("the compiled loops are not built here")
    if "no compiled loops" in where:
        monkeypatch.setattr(native, "_enabled", False)
    dtype = torch.float16 if "float16" in where else torch.float32
    cell = cells.LSTM(I, H, 2, dtype=dtype)
    with contextlib.ExitStack() as stack:
        if "no_grad" in where:
            stack.enter_context(torch.no_grad())
        if where == "autocast":
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        if where == "trace":
            stack.enter_context(cell.trace())
        cell(torch.randn(T, B, I, dtype=dtype))
    assert cell.paths == [expected] * 2


def test_an_rnn_runs_its_steps_and_says_so():
    cell = cells.RNN(I, H, 1)
    cell(torch.randn(T, B, I))
    assert cell.paths == ["steps"]


@pytest.mark.parametrize("acceleration,flags,chunked", [c for c in CASES if not c.values[2]])
def test_double_backward_through_an_acceleration_equals_the_step_loops(acceleration, flags, chunked, monkeypatch):
    """create_graph=True (a gradient penalty): the acceleration's backward replays the step loop,
    so the penalty's gradients (input, every parameter) are the step loop's; none is missing.
    Bidirectional: reverse units replay too."""
    if not acceleration.available():
        pytest.skip(f"{acceleration.name} is not available here")
    monkeypatch.setattr(accelerations, "REGISTRY", [acceleration])
    cell = FAMILIES[acceleration.family](I, H, 2, dtype=F64, bidirectional=True, **flags)
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)

    def penalty_grads():
        g, = torch.autograd.grad(cell(x)[0].sin().sum(), x, create_graph=True)
        return torch.autograd.grad((g ** 2).sum(), [x, *cell.parameters()], allow_unused=True)

    fast = penalty_grads()
    assert cell.paths == [acceleration.name] * 4
    with cell.steps_through(lambda step: step):
        steps = penalty_grads()
    for a, b in zip(fast, steps, strict=True):
        assert (a is None) == (b is None)
        assert a is None or (a - b).abs().max().item() <= 1e-10 * (1 + b.abs().max().item())
