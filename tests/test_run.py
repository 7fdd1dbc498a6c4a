"""The rnnbench CLI end to end, on the real configs shrunk: records, failure as data, reruns,
kills, determinism and every kind of bad input."""
import itertools
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch._dynamo.utils import counters

import cells
from bench import measure, results, run, tasks
from bench.backends import IMPL_BUILDERS
from bench.results import load_tables
from bench.train import Model
from cells import native
from shrunk import EXE, ROOT, SHRINK

CELL_NAMES = sorted(p.stem for p in (ROOT / "conf" / "cell").glob("*.yaml"))
TASK_NAMES = sorted(p.stem for p in (ROOT / "conf" / "task").glob("*.yaml"))


def execute(results_dir, *overrides):
    """One run through the same code as the CLI, without Hydra's launcher (faster)."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SHRINK, f"results_dir={results_dir}", *overrides])
    choices = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in ("cell", "task"))
    return run.execute(cfg, choices)


def test_a_run_prints_its_summary_and_its_rows_load(cli):
    code, out, err = cli("cell=gru", "task=copy", "task.seq_len=50", "seed=1")
    assert code == 0, err
    assert "rnnbench: gru on copy (T=50, seed 1): test accuracy" in out and "(chance 0.125)" in out
    tables = load_tables(cli.results)
    runs, metrics, profiles = tables["runs"], tables["metrics"], tables["profiles"]
    assert len(runs) == 1
    r = runs.iloc[0]
    assert (r.status, r.cell, r.task, r.seq_len, r.hidden_size, r.seed, r.device, r.impl) == \
        ("ok", "gru", "copy", 50, 8, 1, "cpu", "loop")
    assert r.n_params == 3 * (8 * (10 + 8) + 2 * 8) and r.n_params_readout == 8 * 9 + 9
    for flag in ("reset_after", "reset_gate", "update_gate", "tied_gates", "minimal", "init"):
        assert flag in runs.columns
    assert {"threads", "dtype", "torch_version", "cpu", "git_commit", "wall_time", "config.train.lr",
            "task_version", "train_tokens_per_s"} <= set(runs.columns)
    assert r.path == ("compiled" if native.active() else "scan")  # the compiled loops ran where they are built
    assert list(metrics.columns[:5]) == ["run_id", "step", "split", "metric", "value"]
    kinds = set(metrics.metric)
    assert {"loss", "accuracy", "seq_accuracy", "grad_norm", "grad_norm_block", "gate_mean", "gate_saturated",
            "step_change_h"} <= kinds and "step_change_c" not in kinds
    gates = set(metrics[metrics.metric == "gate_mean"].gate)
    assert gates == {"r", "z"}
    blocks = metrics[(metrics.metric == "grad_norm_block") & (metrics.param == "weight_hh")]
    assert set(blocks.gate) == {"r", "z", "n"}
    assert set(profiles.quantity) == {"dL/dh", "dL/dx"} and set(profiles.step) == {0, 4}
    assert len(profiles[(profiles.quantity == "dL/dx") & (profiles.step == 0)]) == 70  # T + 20 steps


def test_training_throughput_leaves_out_the_first_step_and_records_it(cli, monkeypatch):
    """The first training step pays what a backend does once (compile, trace, capture): its time is
    recorded alone, and train_tokens_per_s is the rate of the steps after it."""
    clip, slept = torch.nn.utils.clip_grad_norm_, []

    def slow_in_the_first_training_step(*args, **kwargs):  # clipping: in the training steps only
        if not slept:
            slept.append(time.sleep(0.5))
        return clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", slow_in_the_first_training_step)
    code, _, err = cli("cell=gru", "task=adding")
    assert code == 0, err
    r = load_tables(cli.results)["runs"].iloc[0]
    steady = r.train_seconds - r.first_step_seconds
    assert r.first_step_seconds >= 0.5 > steady
    assert r.train_tokens_per_s == pytest.approx((r.steps - 1) * r.seq_len * r["config.train.batch_size"] / steady)


@pytest.mark.parametrize("stop", [False, True])
def test_validation_decides_solved_and_test_is_scored_once_at_the_end(cli, monkeypatch, stop):
    """Every evaluation reads the validation set; the run trains its whole budget unless asked to
    stop when solved; the test set gives one row per metric, at the last step."""
    monkeypatch.setattr(tasks.Task, "is_solved", lambda self, value: True)  # solved at the first evaluation
    code, _, err = cli("cell=gru", "task=adding", f"train.stop_when_solved={str(stop).lower()}")
    assert code == 0, err
    t = load_tables(cli.results)
    r, m = t["runs"].iloc[0], t["metrics"]
    every = r["config.train.eval_every"]
    assert r.steps_to_solve == every and r.steps == (every if stop else r["config.train.steps"])
    valid, test = m[m.split == "valid"], m[m.split == "test"]
    assert sorted(valid[valid.metric == "mse"].step) == list(range(0, r.steps + 1, every))
    assert test.step.tolist() == [r.steps] * 2 and set(test.metric) == {"loss", "mse"}
    assert r.final_value == test[test.metric == "mse"].value.item()
    assert r.valid_value == valid[(valid.metric == "mse") & (valid.step == r.steps)].value.item()
    assert set(m[m.metric == "step_change_h"].split) == {"valid"}  # probes read validation, never test


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_every_cell_yaml_composes_and_trains(tmp_path, cell):
    embed = ["embed=true"] if cell in ("mut1", "mut2") else []  # they take input of the hidden size
    assert execute(tmp_path, f"cell={cell}", *embed) == "ok"
    runs = load_tables(tmp_path)["runs"]
    assert runs.cell.tolist() == [cell] and runs.status.tolist() == ["ok"]


def test_a_bidirectional_cell_trains_and_reads_both_directions_final_states(tmp_path):
    assert execute(tmp_path, "cell=gru", "cell.bidirectional=true", "task=temporal_order") == "ok"
    runs = load_tables(tmp_path)["runs"]
    H = int(runs.hidden_size.item())
    assert runs["config.cell.bidirectional"].tolist() == [True] and runs.path.tolist() == ["compiled"]
    assert runs.n_params.item() == cells.count_params("gru", 8, H, bidirectional=True)
    assert runs.n_params_readout.item() == (2 * H + 1) * 4
    cell = cells.GRU(8, 5, bidirectional=True)  # temporal order's 8 symbols
    model = Model(cell, tasks.temporal_order(10))
    x = torch.randn(10, 2, 8)
    out, _ = cell(x)
    want = model.readout(torch.cat([out[-1, :, :5], out[0, :, 5:]], -1))
    assert torch.equal(model(x), want)


def test_each_run_names_the_environment_it_ran_in(tmp_path):
    from bench import environment
    assert execute(tmp_path, "cell=gru", "seed=0") == execute(tmp_path, "cell=gru", "seed=1") == "ok"
    runs = load_tables(tmp_path)["runs"]
    (rid,) = set(runs.environment)  # one process, one environment, one file
    assert re.fullmatch("[0-9a-f]{16}", rid) and [p.name for p in (tmp_path / ".environments").iterdir()] == [f"{rid}.json"]
    env = environment.load(tmp_path, rid)
    assert env["collect_env"]["torch_version"] == torch.__version__ and env["packages"]["torch"] == torch.__version__
    assert {"pandas", "hydra-core", "numpy"} <= set(env["packages"]) and "BLAS" in env["torch_config"]
    assert environment.identity(env) == rid


def test_logger_tensorboard_shows_each_evaluation_as_it_ends(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="the track extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bench import tracking
    calls = []
    real = tracking.TensorBoard.log
    monkeypatch.setattr(tracking.TensorBoard, "log", lambda self, rows: (calls.append(len(rows)), real(self, rows)))
    assert execute(tmp_path, "cell=gru", "logger=tensorboard") == "ok"
    runs, metrics = load_tables(tmp_path)["runs"], load_tables(tmp_path)["metrics"]
    assert len(calls) == 4 and sum(calls) == len(metrics)  # evaluations at steps 0, 2, 4, then the test: every row
    (folder,) = (tmp_path / ".tensorboard").iterdir()
    assert folder.name == f"gru-adding-T{runs.seq_len.item()}-seed0-{runs.run_id.item()}"
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("valid/loss")] == [0, 2, 4] and "test/mse" in tags
    assert "valid/gate_mean/0/z" in tags and "train/grad_norm_block/0/weight_hh/r" in tags
    valid = metrics.query("split == 'valid' and metric == 'loss'").value.tolist()
    assert [e.value for e in events.Scalars("valid/loss")] == pytest.approx(valid)
    assert runs.run_id.item() == run.plan(compose_config(tmp_path)).run_id  # the logger is not in the run's id


def compose_config(results_dir, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[*SHRINK, f"results_dir={results_dir}", "cell=gru", *overrides])


def test_a_task_of_variable_lengths_trains_through_packed_sequences(tmp_path):
    assert execute(tmp_path, "cell=lstm", "task=adding_varlen") == "ok"
    tables = load_tables(tmp_path)
    runs, metrics = tables["runs"], tables["metrics"]
    assert runs.task.tolist() == ["adding_varlen"] and runs.path.tolist() == ["steps"]  # packed: the step loop
    assert {"loss", "mse", "grad_norm_block"} <= set(metrics.metric)
    assert "gate_mean" not in set(metrics.metric) and tables["profiles"].empty  # not probed (probes.py)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_model_reads_each_example_of_a_padded_batch_up_to_its_own_end(name, bidirectional):
    torch.manual_seed(0)
    cell = getattr(cells, name)(2, 5, num_layers=2, bidirectional=bidirectional).double()
    model = Model(cell, tasks.adding_varlen(6, 1.0)).double()
    batch = tasks.adding_varlen(6, 1.0).splits(0, 8)[2]
    x, lengths = batch.x.double(), batch.lengths
    assert lengths.min() < lengths.max() == x.shape[0]
    alone = torch.stack([model(x[:n, i:i + 1])[0] for i, n in enumerate(lengths.tolist())])
    assert torch.allclose(model(x, lengths), alone, rtol=0, atol=1e-12)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_every_task_yaml_trains(tmp_path, task):
    extra = {"digits": ["task.seq_len=64"], "mnist1d": ["task.seq_len=40"]}.get(task, [])
    if task in ("jsb", "piano_roll"):  # from a small file of pieces (test_music reads music21's chorales)
        from test_music import write
        extra = [f"task.path={write(tmp_path / 'pieces.pickle')}"]
    assert execute(tmp_path, f"task={task}", *extra) == "ok"
    metrics = load_tables(tmp_path)["metrics"]
    assert {"loss"} < set(metrics[metrics.split == "test"].metric)


def test_fused_backend_trains_and_is_probed_through_our_cell(tmp_path):
    assert execute(tmp_path, "cell=lstm", "backend.impl=fused") == "ok"
    tables = load_tables(tmp_path)
    assert tables["runs"].impl.tolist() == ["fused"]
    assert {"i", "f", "o"} == set(tables["metrics"].query("metric == 'gate_mean'").gate)
    assert "step_change_c" in set(tables["metrics"].metric)


class CountingLoops:
    """The compiled module, counting the calls of its time loops (not of set_flush_denormal)."""

    def __init__(self, module):
        self.module, self.calls = module, 0

    def __getattr__(self, name):
        function = getattr(self.module, name)

        def counted(*args):
            self.calls += name.endswith(("_forward", "_backward"))
            return function(*args)
        return counted


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("backend", [["backend.impl=script"], ["backend.dtype=bfloat16"], ["backend.dtype=float64"],
                                     ["backend.dtype=float64", "backend.impl=fused"],
                                     pytest.param(["backend.impl=compile"], marks=pytest.mark.slow),
                                     pytest.param(["backend.impl=compile_step"], marks=pytest.mark.slow)], ids=str)
def test_every_implementation_and_dtype_trains_and_is_recorded(tmp_path, backend, cell, monkeypatch):
    """Each names its backend, and `path` what our cell ran (cells.accelerations): the compiled
    loops exactly where the run called them, the steps under autocast, TorchScript's trace and
    torch.compile, the backend's own name where our cell did not run (torch's modules)."""
    loops = CountingLoops(native.module()) if native.active() else None
    monkeypatch.setattr(native, "_module", loops or native._module)
    assert execute(tmp_path, f"cell={cell}", "task.seq_len=5", *backend) == "ok"
    r = load_tables(tmp_path)["runs"].iloc[0]
    want = dict(o.split("=") for o in backend)
    assert r.impl == want.get("backend.impl", "loop") and r["dtype"] == want.get("backend.dtype", "float32")
    assert r.threads == 1 and r.device == "cpu"
    ran = loops is not None and loops.calls > 0
    expected = {"script": "steps", "bfloat16": "steps", "fused": "fused", "compile": "steps", "compile_step": "steps"}
    got = next((v for k, v in expected.items() if k in " ".join(backend)), "compiled" if ran else "scan")
    assert r.path == got and (r.path == "compiled") == ran


def test_script_runs_the_traced_steps_unoptimised_on_a_cpu_and_equals_the_cell():
    """TorchScript's graph optimisations on the unrolled steps grow far faster than T (minutes at
    T=200) and fuse nothing on a CPU: the traced graph runs as it was traced, with no
    differentiable subgraphs or autograd guards, and computes what the cell computes."""
    torch.manual_seed(0)
    cell = cells.GRU(3, 8)
    traced = IMPL_BUILDERS["script"](cell)
    x = torch.randn(6, 2, 3)
    for _ in range(3):  # the optimising executor would have rewritten the graph by the second call
        out, h = traced(x)
        (out.sum() + h.sum()).backward()
    kinds = {n.kind() for n in torch.jit.last_executed_optimized_graph().nodes()}
    assert not {k for k in kinds if "Autograd" in k or "Differentiable" in k or "Check" in k}
    assert "aten::tanh" in kinds  # the steps themselves, unrolled
    got = [p.grad.clone() for p in cell.parameters()]
    cell.zero_grad()
    out_eager, h_eager = cell(x)
    (out_eager.sum() + h_eager.sum()).backward()
    torch.testing.assert_close(out, out_eager)
    for g, p in zip(got, cell.parameters()):
        torch.testing.assert_close(g, p.grad * 3)  # three passes accumulated


@pytest.mark.slow
@pytest.mark.parametrize("cell", [cells.GRU(3, 8, minimal=True), cells.GRU(3, 8, tied_gates=False, reset_after=False),
                                  cells.LSTM(3, 8, peepholes=True, coupled_gates=True), cells.RNN(3, 8)], ids=repr)
def test_compile_step_compiles_the_step_once_for_every_length_and_equals_the_cell(cell):
    """'compile_step' compiles the step function per shape and autograd mode, not the unrolled
    steps: a longer sequence adds no graph. Outputs and gradients are the eager cell's."""
    torch.manual_seed(0)
    compiled = IMPL_BUILDERS["compile_step"](cell)
    graphs = []
    for T in (2, 9):
        x = torch.randn(T, 2, 3)
        out, _ = compiled(x)
        out.sum().backward()
        graphs.append(counters["stats"]["unique_graphs"])
        got = [p.grad.clone() for p in cell.parameters()]
        cell.zero_grad()
        out_eager, _ = cell(x)
        out_eager.sum().backward()
        torch.testing.assert_close(out, out_eager)
        for g, p in zip(got, cell.parameters()):
            torch.testing.assert_close(g, p.grad)
        cell.zero_grad()
    assert graphs[0] >= 1 and graphs[1] == graphs[0]


def test_compile_traces_one_graph_where_the_compiled_loops_are_not_loaded_yet(monkeypatch):
    """A fresh process loads the compiled loops on first use; asking for them inside torch.compile's
    trace would break its graph (and 'compile' asks for one graph): the cell does not ask there."""
    monkeypatch.setattr(native, "_module", None)
    with torch.no_grad():  # where the cell asks whether the loops serve x
        IMPL_BUILDERS["compile"](cells.GRU(3, 4))(torch.randn(2, 2, 3))


@pytest.mark.parametrize("impl", ["compile", "compile_step"])
def test_compile_fails_where_torch_would_quietly_run_uncompiled(impl):
    """Each run's wrapper starts from empty compile caches, so earlier runs in a sweep's process
    use none of torch's recompile limit; a run that needs more graphs than the limit fails."""
    with torch._dynamo.config.patch(recompile_limit=1), torch.no_grad():  # one graph per shape
        for hidden_size in (4, 5):  # a second cell's graph: over the limit, but in a fresh cache
            compiled = IMPL_BUILDERS[impl](cells.GRU(3, hidden_size))
            compiled(torch.randn(2, 2, 3))
        with pytest.raises(RuntimeError, match=f"backend.impl={impl}: this run needs more than 1 compiled graphs"):
            compiled(torch.randn(2, 3, 3))  # a second shape of the same run


def test_float32_is_ieee_float32_in_cudnn_and_cublas_too(tmp_path):
    """A run turns TF32 off: cuDNN's RNNs use it by default (on Ampere and later) and our cells'
    cuBLAS matmuls do not, so `fused` and `loop` would compare in different precisions."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = True
    try:
        assert execute(tmp_path, "cell=gru", "task.seq_len=5") == "ok"
        assert not cudnn.allow_tf32 and not matmul.allow_tf32
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before


def test_a_nan_run_is_recorded_as_diverged(cli):
    code, out, _ = cli("cell=irnn", "train.lr=1e6", "train.clip=null", "train.steps=20")
    assert code == 0 and "DIVERGED" in out
    r = load_tables(cli.results)["runs"].iloc[0]
    assert r.status == "diverged" and "nan" in r.error and r.steps < 20


def fail_seed_1(monkeypatch):
    """Make every run with seed 1 raise in training; returns the real train, to put back."""
    real_train = run.train

    def train_failing_on_seed_1(*args, **kwargs):
        if args[4] == 1:  # the seed
            raise RuntimeError("simulated out-of-memory")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(run, "train", train_failing_on_seed_1)
    return real_train


def test_an_exception_in_one_job_is_recorded_while_the_multirun_goes_on(cli, monkeypatch):
    real_train = fail_seed_1(monkeypatch)
    code, out, _ = cli("-m", "seed=0,1,2")
    assert code == 0
    assert "sweep progress: 1/3 runs recorded" in out and "sweep progress: 3/3 runs recorded" in out
    # the summary row: cell, task, T, H, impl, runs, ok, diverged, failed
    assert "sweep summary" in out and re.search(r"lstm\s+adding\s+12\s+8\s+loop\s+3\s+2\s+0\s+1\s", out)
    runs = load_tables(cli.results)["runs"].set_index("seed")
    assert runs.status.to_dict() == {0: "ok", 1: "failed", 2: "ok"}
    assert runs.error[1] == "RuntimeError: simulated out-of-memory"
    monkeypatch.setattr(run, "train", real_train)  # a rerun retries the failed run, skips the others
    code, out, _ = cli("-m", "seed=0,1,2")
    assert out.count("skipped") == 2
    runs = load_tables(cli.results)["runs"]
    assert sorted(runs.status) == ["ok"] * 3 and len(runs) == 3


def test_a_retry_in_the_same_second_as_its_failure_replaces_it(cli, monkeypatch):
    """Records of one run are ordered by their start: a run that fails at once, retried within
    the same second (the failure compacted into a sweep folder, the retry in its own), must not
    tie with its retry, or the failure could win."""
    ticks = itertools.count()

    class Clock(datetime):  # every reading one microsecond after the last, all in one second
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=next(ticks))

    monkeypatch.setattr(run, "datetime", Clock)
    real_train = fail_seed_1(monkeypatch)
    cli("-m", "seed=0,1")  # two runs: compacted into a sweep folder, the failure with them
    monkeypatch.setattr(run, "train", real_train)
    cli("-m", "seed=0,1")
    runs = load_tables(cli.results)["runs"].set_index("seed")
    assert runs.status.to_dict() == {0: "ok", 1: "ok"}
    assert results.status_of(cli.results, runs.run_id[1]) == "ok"


def test_rerun_skips_complete_runs_and_rerun_true_repeats_them_identically(cli):
    cli("seed=5")
    first = load_tables(cli.results)
    code, out, _ = cli("seed=5")
    assert "skipped" in out
    code, out, _ = cli("seed=5", "rerun=true")
    assert "skipped" not in out
    second = load_tables(cli.results)
    assert len(second["runs"]) == 1 and len(second["metrics"]) == len(first["metrics"])
    assert len(results._listing(cli.results)) == 1  # the new record replaced the old one
    for name in ("metrics", "profiles"):  # the same seed gives the same numbers
        assert first[name].equals(second[name])


def test_runs_recorded_by_other_code_are_refused_kept_or_rerun_as_asked(cli, monkeypatch):
    from bench import environment
    cli("-m", "seed=0,1")
    runs = load_tables(cli.results)["runs"]
    assert runs.code.tolist() == [environment.code()] * 2
    monkeypatch.setattr(environment, "code", lambda: "0123456789ab")  # the code changed since
    code, out, err = cli("-m", "seed=0,1,2")
    assert code == 2 and "run" not in out  # nothing ran
    assert err.strip() == (f"rnnbench: error: 2 of these runs are recorded in {cli.results} by other code than this "
                           f"(0123456789ab): {runs.code[0]} (2 runs); allowed: "
                           "on_code_change=rerun (run them again), on_code_change=keep (skip them), or another "
                           "results_dir")
    code, out, _ = cli("-m", "seed=0,1,2", "on_code_change=keep")
    assert code == 0 and out.count("by other code") == 2 and len(load_tables(cli.results)["runs"]) == 3
    code, out, _ = cli("seed=1", "on_code_change=rerun")
    assert "skipped" not in out
    after = load_tables(cli.results)["runs"].set_index("seed").code.to_dict()
    assert after == {0: runs.code[0], 1: "0123456789ab", 2: "0123456789ab"}
    assert cli("seed=1")[0] == 0  # recorded by this code: skipped, nothing refused


def test_the_code_version_ignores_comments_and_docstrings_not_code():
    from bench import environment
    base = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    assert environment._tree(base) == environment._tree('def f(x):\n    # changed\n    return x + 1\n')
    assert environment._tree(base) != environment._tree('def f(x):\n    return x + 2\n')
    assert re.fullmatch("[0-9a-f]{12}", environment.code())


def test_run_id_is_the_config_without_where_it_is_written(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        ids = [run.plan(compose("config", overrides=[*SHRINK, *o])).run_id
               for o in ([], ["results_dir=elsewhere", "progress=true", "rerun=true"], ["seed=1"], ["cell=gru"],
                         ["throughput.repeats=7"], ["mode=throughput"], ["mode=throughput", "train.lr=0.1"],
                         ["mode=throughput", "throughput.repeats=7"])]
    # a mode's run does not change with the settings only the other mode reads
    assert ids[0] == ids[1] == ids[4] and ids[5] == ids[6] and len(set(ids)) == 5


def test_a_killed_multirun_rerun_holds_every_run_once(tmp_path):
    """SIGKILL mid-sweep, then the same command: each run exactly once, no duplicated rows.
    Also runs from a folder outside the clone: the config tree is found by the command."""
    cmd = [str(EXE), "-m", *SHRINK, "train.steps=60", "train.eval_every=10", "results_dir=runs", "seed=0,1,2,3,4,5"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while not list((tmp_path / "runs").glob("*/runs.parquet")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((tmp_path / "runs").glob("*/runs.parquet")))
    assert 1 <= done_before < 6
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    tables = load_tables(tmp_path / "runs")
    assert sorted(tables["runs"].seed) == [0, 1, 2, 3, 4, 5] and tables["runs"].run_id.is_unique
    m = tables["metrics"]
    keys = ["run_id", "step", "split", "metric", "layer", "param", "gate"]
    assert not m.fillna({"param": "", "gate": ""}).duplicated(keys).any()
    assert set(m.run_id) == set(tables["runs"].run_id)


BAD = [
    (["cell=transformer"], "Could not find 'cell/transformer'", "gru, gru_no_reset"),
    (["task=imagenet"], "Could not find 'task/imagenet'", "adding, adding_varlen, copy, counting"),
    (["backend=tpu"], "Could not find 'backend/tpu'", "cpu, cuda, mps"),
    (["+cell.forget_gatez=false"], "no flag 'forget_gatez'", "forget_gate"),
    (["cell.forget_gatez=false"], "unknown key 'cell.forget_gatez'", "hidden_size"),
    (["train.stepz=3"], "unknown key 'train.stepz'", "steps, batch_size"),
    (["cell=lstm_cifg", "+cell.forget_gate=false"], "contradicts forget_gate=False", "coupled_gates"),
    (["cell=mgu", "+cell.tied_gates=false"], "contradicts tied_gates=False", "minimal"),
    (["cell.hidden_size=0"], "hidden_size=0", "integer >= 1"),
    (["task.seq_len=-3"], "seq_len=-3", "integer >= 2"),
    (["task=digits"], "seq_len=12", "64"),
    (["train.steps=0"], "train.steps=0", "integer >= 1"),
    (["train.lr=-1"], "train.lr=-1", "> 0"),
    (["backend.device=cuda"] if not __import__("torch").cuda.is_available() else ["backend.device=tpu"],
     "backend.device=", "cpu"),
    (["backend.impl=jit"], "backend.impl='jit'", "loop | fused"),
    (["backend.impl=graph"], "backend.impl='graph'", "backend.device=cuda"),
    (["backend.impl=fused", "cell=gru_untied"], "tied_gates=False",
     "allowed for this cell: backend.impl=loop | script | compile | compile_step"),
    (["+cell.nonlinearity=relu"], "no flag 'nonlinearity'", "input_gate"),
    (["cell=mut1"], "input_size must equal hidden_size", "embed=true"),
    (["embed=1"], "embed=1", "true | false"),
    (["embed=true", "param_match=lstm"], "param_match with embed=true", "one of them"),
    (["task=counting", "cell.bidirectional=true"], "cell.bidirectional=true would let task=counting", "adding"),
    (["mode=throughput", "cell.bidirectional=true"], "cell.bidirectional=true is not valid with mode=throughput",
     "allowed: false"),
    (["+cell.proj_size=2"], "cell.proj_size=2 is not valid in rnnbench", "allowed: 0"),
    (["task=adding_varlen", "backend.impl=script"], "backend.impl='script' does not take the packed", "loop | fused"),
    (["task=adding_varlen", "mode=throughput"], "task=adding_varlen packs its examples", "mode=train"),
    (["task=adding_varlen", "task.spread=-1"], "spread=-1", "from 0 to 10"),
    (["logger.kind=wandb"], "logger.kind='wandb' is not valid", "none | tensorboard"),
    (["--config-dir=/no/such/folder"], "config directory '/no/such/folder' not found", "a folder of YAML configs"),
]


@pytest.mark.parametrize("args,problem,valid", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_ends_with_one_line_and_no_rows(cli, args, problem, valid):
    code, out, err = cli(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnbench: error: ")
    assert problem in lines[0] and valid in lines[0] and "Traceback" not in err
    assert not cli.results.exists()


def test_a_multirun_with_one_bad_job_starts_none(cli):
    code, out, err = cli("-m", "cell=lstm,lstm_cifg,lstm_nfg", "+cell.forget_bias=1.0")
    assert code == 2 and "forget_bias" in err and "contradicts forget_gate=False" in err
    assert not cli.results.exists() and "rnnbench: lstm" not in out
    assert results.load_tables(cli.results)["runs"].empty


def test_throughput_mode_records_both_passes_with_the_backend(cli):
    code, out, err = cli("mode=throughput", "cell=lstm", "task.seq_len=6", "throughput.batch_size=3",
                         "throughput.input_size=5", "throughput.repeats=2", "throughput.warmup=1")
    assert code == 0, err
    assert "forward_backward" in out and "tokens/s" in out
    tables = load_tables(cli.results)
    tp = tables["throughput"]
    assert list(tp["pass"]) == ["forward", "forward_backward"]
    assert (tp.seq_len == 6).all() and (tp.batch_size == 3).all() and (tp.hidden_size == 8).all()
    assert (tp.tokens_per_s > 0).all() and (tp.seconds_q1 <= tp.seconds).all() and (tp.seconds <= tp.seconds_q3).all()
    assert tp.macs_per_token.iloc[0] == 4 * 8 * (5 + 8)  # the LSTM's multiply-adds per token
    assert tables["runs"].n_params.iloc[0] == 4 * (8 * (5 + 8) + 2 * 8)  # at throughput.input_size
    assert tp.saved_bytes.iloc[1] > 0 and {"device", "impl", "dtype", "threads"} <= set(tp.columns)
    assert (tp.ref_seconds > 0).all()  # the yardstick, timed in the same rounds
    runs = tables["runs"]
    assert runs["mode"].tolist() == ["throughput"] and runs.task.isna().all() and tables["metrics"].empty
    assert runs.metric.isna().all() and runs.chance.isna().all()


def test_timed_calls_take_turns_round_by_round():
    calls = []
    timings = measure.time_calls({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, "cpu",
                                 repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4 and timings["a"].repeats == 3 and timings["b"].repeats == 3


def test_the_throughput_experiment_expands_to_its_sweep():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        todo = run.jobs(["experiment=throughput"], multirun=True)[0]
        assert len(todo) == 3 * 4 * 2 * 2 * 2  # cells x implementations x H x B x T
        assert run.plan(compose("config", overrides=todo[-1])).config["mode"] == "throughput"


def test_every_table_row_names_the_backend(cli):
    cli("backend.dtype=float64")
    for name, frame in load_tables(cli.results).items():
        if not frame.empty:
            assert (frame["device"] == "cpu").all() and (frame["dtype"] == "float64").all(), name
            assert (frame["impl"] == "loop").all() and (frame["threads"] == 1).all(), name


def test_gru_vs_lstm_costs_pair_the_two_cells_per_implementation(cli, capsys):
    from bench import costs
    code, _, err = cli("-m", "mode=throughput", "cell=lstm,gru", "backend.impl=loop,fused", "task.seq_len=5",
                       "throughput.batch_size=2", "throughput.repeats=2", "throughput.warmup=0")
    assert code == 0, err
    table = costs.gru_vs_lstm(load_tables(cli.results))
    assert len(table) == 4 and set(table.impl) == {"loop", "fused"}  # 2 implementations x 2 passes
    assert (table.params_ratio == 0.75).all() and (table.macs_ratio == 0.75).all()
    assert (table.time_ratio > 0).all()
    costs.main([str(cli.results)])
    assert "time_ratio" in capsys.readouterr().out


def test_a_sweep_is_compacted_into_one_folder_that_loads_as_before(cli):
    code, out, _ = cli("-m", "cell=lstm,gru", "seed=0,1")
    assert code == 0 and "compacted into" in out
    folders = [p for p in cli.results.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1 and folders[0].name.startswith("sweep-")
    tables = load_tables(cli.results)
    assert len(tables["runs"]) == 4 and tables["runs"].run_id.is_unique
    assert set(tables["metrics"].run_id) == set(tables["runs"].run_id)
    # a second sweep over the same runs skips them all, summarises them, and moves nothing
    code, out, _ = cli("-m", "cell=lstm,gru", "seed=0,1")
    assert out.count("skipped") == 4 and "sweep summary" in out and "compacted into" not in out
    assert "sweep progress: 4/4 runs recorded" in out
    # a compaction killed before it removed its sources leaves duplicates: each run still loads once
    import shutil
    shutil.copytree(folders[0], cli.results / "sweep-copy")
    again = load_tables(cli.results)
    assert len(again["runs"]) == 4 and len(again["metrics"]) == len(tables["metrics"])


def test_every_experiment_runs_shrunk_through_one_glob(cli):
    code, out, err = cli("-m", "experiment=glob(*)", "throughput.repeats=1", "throughput.warmup=0")
    assert code == 0, err
    experiments = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    assert f"Launching {len(experiments)} jobs" in out
    runs = load_tables(cli.results)["runs"]  # shrunk alike, several experiments are one run
    assert f"sweep progress: {len(runs)}/{len(runs)} runs recorded" in out
    assert (runs.status == "ok").all() and set(runs["mode"]) == {"train", "throughput"}
