"""The compiled loops (cells/native.py; lstm_native.cpp, gru_native.cpp): built where there is a
C++ compiler, taken where they apply, equal to the torch loops in float32 too (test_ablations and
test_gradcheck hold them to the equations in float64), and a clean fallback where they cannot be
built or are turned off."""
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

import cells
from cells import native
from test_ablations import SCAN_CASES, ids

# every LSTM and GRU flag, less the cases that differ from another only in the initial parameters
COMPILED = [c for c in SCAN_CASES if not c[1].get("init") and "forget_bias" not in c[1]]
# what torch's extension builder needs besides ninja (a dependency): a C++ compiler, Python's headers
CAN_BUILD = (shutil.which(os.environ.get("CXX", "c++")) is not None
             and Path(sysconfig.get_paths()["include"], "Python.h").exists())


@pytest.mark.skipif(not CAN_BUILD, reason="no C++ compiler or no Python headers on this machine")
def test_they_build_where_there_is_a_compiler():
    assert native.active()


@pytest.fixture
def built():
    """The built module; skips where the compiled loops could not be built."""
    if not native.active():
        pytest.skip("the compiled loops could not be built here")
    return native.module()


class Counting:
    """Stands in for the built module: counts the calls it passes on."""

    def __init__(self, module):
        self.module, self.calls = module, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.module, name)


@pytest.mark.parametrize("name,flags,dtype,taken", [
    ("GRU", {}, torch.float32, True), ("GRU", {"tied_gates": False}, torch.float64, True),
    ("GRU", {"reset_after": False}, torch.float32, True), ("GRU", {}, torch.bfloat16, False),
    ("LSTM", {}, torch.float32, True), ("LSTM", {"peepholes": True}, torch.float64, True),
    ("LSTM", {}, torch.bfloat16, False),
])
def test_they_run_for_the_lstm_and_gru_on_a_cpu_in_float32_and_64(name, flags, dtype, taken, monkeypatch, built):
    counting = Counting(built)
    monkeypatch.setattr(native, "_module", counting)
    cell = getattr(cells, name)(3, 4, dtype=dtype, **flags)
    out, _ = cell(torch.randn(5, 2, 3, dtype=dtype))
    out.sum().backward()
    family = name.lower()
    assert counting.calls == ([f"{family}_forward", f"{family}_backward"] if taken else [])


def state(cell, *shape, **kwargs):
    """An initial state for cell: h_0, or (h_0, c_0)."""
    s = tuple(torch.randn(*shape, **kwargs) for _ in range(cell.n_states))
    return s if len(s) > 1 else s[0]


def states(s) -> tuple:
    """A state's tensors: (h,) or (h, c)."""
    return s if isinstance(s, tuple) else (s,)


@pytest.mark.parametrize("case", COMPILED, ids=ids)
def test_float32_equals_the_torch_loops(case, monkeypatch, built):
    """At a size where every vector loop has a remainder (H = 37), two layers, an initial state."""
    cell = getattr(cells, case[0])(5, 37, 2, **case[1])
    x, hx = torch.randn(30, 8, 5, requires_grad=True), state(cell, 2, 8, 37, requires_grad=True)

    def run(compiled):
        monkeypatch.setattr(native, "_enabled", compiled)
        out, last = cell(x, hx)
        (out.sin().sum() + sum(s.sum() for s in states(last))).backward()
        got = [out, *states(last), x.grad, *(s.grad for s in states(hx)), *(p.grad for p in cell.parameters())]
        got = [g.detach().clone() for g in got]
        cell.zero_grad(set_to_none=True)
        for t in (x, *states(hx)):
            t.grad = None
        return got

    for a, b in zip(run(True), run(False), strict=True):  # to float32 round-off of the largest value
        assert (a - b).abs().max() <= 1e-5 * (1 + b.abs().max())


@pytest.mark.parametrize("name,flags", [("GRU", {"tied_gates": False}),
                                        ("GRU", {"reset_after": False, "minimal": True}),
                                        ("LSTM", {"peepholes": True})])
def test_rows_split_between_threads_give_what_one_thread_gives(name, flags, built):
    """A batch large enough for at::parallel_for to split it (each task a range of rows)."""
    cell = getattr(cells, name)(3, 16, **flags)
    x = torch.randn(4, 1500, 3)
    before, got = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out, _ = cell(x)
            out.sin().sum().backward()
            got.append([out.detach(), *(p.grad for p in cell.parameters())])
            cell.zero_grad(set_to_none=True)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*got, strict=True):  # matmuls may split their sums differently
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", COMPILED, ids=ids)
def test_without_autograd_they_run_and_equal_the_steps(case, monkeypatch, built):
    """No grad: the compiled forward alone (no backward coefficients), faster than the steps."""
    counting = Counting(built)
    monkeypatch.setattr(native, "_module", counting)
    cell = getattr(cells, case[0])(3, 5, 2, dtype=torch.float64, **case[1])
    x, hx = torch.randn(7, 2, 3, dtype=torch.float64), state(cell, 2, 2, 5, dtype=torch.float64)
    with torch.no_grad():
        out, last = cell(x, hx)
        with cell.trace():
            want, want_last = cell(x, hx)
    assert counting.calls == [f"{case[0].lower()}_forward"] * 2  # one per layer
    for a, b in zip((out, *states(last)), (want, *states(want_last)), strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_a_failed_build_warns_once_and_the_torch_loops_serve(monkeypatch):
    def fail():
        raise RuntimeError("Error building extension 'rnnbench_native': c++: not found")

    monkeypatch.setattr(native, "_module", None)
    monkeypatch.setattr(native, "_build", fail)
    gru, lstm = cells.GRU(3, 4, dtype=torch.float64), cells.LSTM(3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"compiled loops could not be built \(Error building extension"):
        out, _ = gru(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only, for either cell
        again, _ = gru(x)
        out_lstm, _ = lstm(x)
    for cell, got in ((gru, out), (lstm, out_lstm)):
        with cell.trace():  # the step loop
            steps, _ = cell(x)
        assert torch.allclose(got, steps, atol=1e-12)
    assert torch.equal(out, again)


def test_a_finished_build_loads_without_the_builder(monkeypatch, built):
    """torch's builder locks the build folder on every load; a finished build is imported as is."""
    from torch.utils import cpp_extension

    def no_builder(*args, **kwargs):
        raise AssertionError("the builder was called for a finished build")

    monkeypatch.setattr(cpp_extension, "load", no_builder)
    assert hasattr(native._build(), "lstm_backward")


def test_a_lock_left_by_a_killed_build_is_removed_and_a_live_one_waited_for(tmp_path):
    stale = tmp_path / "stale"
    stale.touch()
    os.utime(stale, (time.time() - native.STALE_S - 1,) * 2)
    native._wait_for_lock(stale)
    assert not stale.exists()
    live = tmp_path / "live"
    live.touch()
    threading.Timer(0.3, live.unlink).start()  # the building process releases it
    start = time.time()
    native._wait_for_lock(live)
    assert time.time() - start >= 0.3


def test_rnnbench_native_0_turns_them_off():
    code = "import cells.native as n; print(n.active())"
    env = {**os.environ, "RNNBENCH_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
