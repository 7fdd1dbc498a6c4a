"""Subnormal floats: the harness flushes them to zero on every CPU thread (backend.flush_denormal),
says so in each record, and changes no result where nothing underflows; the cells as a library
leave the process's float mode as they found it."""
import pytest
import torch

import cells
from bench import flushing
from bench.results import load_tables
from cells import native

def running_threads(n: int) -> None:
    """torch on n threads, its pool already started (threads started later copy the mode of the
    thread that starts them, which would hide a worker left behind)."""
    torch.set_num_threads(n)
    torch.full((n * 2**16,), 1.0) * 1.0


@pytest.mark.parametrize("threads", [1, 2])
def test_flush_denormal_sets_every_cpu_thread(threads):
    if threads > 1 and not native.active():
        pytest.skip("without the compiled module only the calling thread changes (one thread is served)")
    before = torch.get_num_threads()
    try:
        running_threads(threads)
        for on in (True, False, True):
            assert native.flush_denormal(on) and native.flushes_denormals() == on
            x = native.subnormals(threads * 2**16)
            assert bool(((x * 1.0) == 0).all()) == on  # every thread's part
    finally:
        torch.set_num_threads(before)


def test_torchs_own_setting_leaves_worker_threads_as_they_were():
    """Why flush_denormal exists: torch.set_flush_denormal sets the calling thread's mode alone."""
    before = torch.get_num_threads()
    try:
        running_threads(2)
        native.flush_denormal(False)
        torch.set_flush_denormal(True)
        assert not native.flushes_denormals()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("flush", ["true", "false"])
def test_a_run_says_whether_its_threads_flushed(cli, flush):
    code, _, err = cli(f"backend.flush_denormal={flush}")
    assert code == 0, err
    runs = load_tables(cli.results)["runs"]
    assert runs.flush_denormal.tolist() == [flush == "true"] and runs["config.backend.flush_denormal"].tolist() == [flush == "true"]


def test_flushing_changes_nothing_where_nothing_underflows(cli):
    """At T=12 no value reaches the subnormal range: every metric and profile of a run with
    flushing equals, bit for bit, that of the same run without."""
    tables = {}
    for flush in ("true", "false"):
        assert cli(f"backend.flush_denormal={flush}", "train.steps=20", "train.eval_every=5")[0] == 0
        tables[flush] = load_tables(cli.results)
    both = tables["false"]  # the second load holds both runs
    ids = both["runs"].set_index("config.backend.flush_denormal").run_id
    for name in ("metrics", "profiles"):
        on, off = (both[name][both[name].run_id == ids[flag]].drop(columns="run_id").reset_index(drop=True)
                   for flag in (True, False))
        assert len(on) and on.equals(off), name
    (row,) = flushing.summary(flushing.paired(both["runs"])).to_dict("records")  # what flush_check reports
    assert (row["pairs"], row["identical"], row["max_abs_diff"], row["same_steps"]) == (1, 1, 0.0, 1)


@pytest.mark.parametrize("cell", [cells.LSTM(3, 8, 2), cells.GRU(3, 8, 2), cells.GRU(3, 8, reset_after=False),
                                  cells.RNN(3, 8)], ids=repr)
def test_the_cells_compute_the_same_in_both_modes_where_nothing_underflows_and_leave_the_mode_alone(cell):
    x = torch.randn(20, 4, 3)
    results = {}
    for on in (False, True):
        native.flush_denormal(on)
        cell.zero_grad()
        out, _ = cell(x)
        out.pow(2).sum().backward()
        results[on] = [out.detach(), *(p.grad.clone() for p in cell.parameters())]
        assert native.flushes_denormals() == on  # the cell did not change the mode
    assert all(torch.equal(a, b) for a, b in zip(results[False], results[True]))
