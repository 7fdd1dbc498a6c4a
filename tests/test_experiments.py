"""Experiments and launchers: every experiment expands to jobs that all pass the checks and runs
shrunk; param_match sizes cells to a parameter count; the joblib and submitit launchers land in
the same tables."""
import json
import re
import subprocess

import pytest
from hydra import compose, initialize_config_dir

import cells
from bench import run
from bench.results import load_tables
from shrunk import EXE, ROOT
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
SHRINK = ["train.steps=2", "train.eval_every=1", "train.n_test=8", "train.probe_size=2", "cell.hidden_size=4",
          "throughput.batch_size=2", "throughput.repeats=1", "throughput.warmup=0", "progress=false"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_expands_checks_and_runs_shrunk(tmp_path, experiment):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        todo = run.jobs([f"experiment={experiment}"], multirun=True)[0]
        plans = [run.plan(compose("config", overrides=job)) for job in todo]  # every job passes the checks
        # each is a distinct run, but for jobs that differ only in what their mode does not read (the
        # learning rates of a grid, for a throughput case): those are one run
        read = {json.dumps(run.computed(p.config), sort_keys=True) for p in plans}
        assert len({p.run_id for p in plans}) == len(read)
        first = compose("config", overrides=[*todo[0], *SHRINK, f"results_dir={tmp_path}", "task.seq_len=12"])
        if first.task._target_.endswith("digits"):
            first.task.seq_len = 64
        assert run.execute(first, {}) == "ok"


def test_param_match_sizes_each_cell_to_the_lstm_count(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        sizes = {}
        for cell in ("lstm", "gru", "rnn"):
            p = run.plan(compose("config", overrides=["experiment=param_matched", f"cell={cell}", "task=copy"]))
            sizes[cell] = p.cell.hidden_size
            assert p.config["cell"]["hidden_size"] == p.cell.hidden_size
    assert sizes["lstm"] == 32
    assert sizes["gru"] == cells.match_hidden_size("gru", cells.count_params("lstm", 10, 32), 10)
    assert sizes["rnn"] > sizes["gru"] > 32


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                                      ["hydra/launcher=submitit_local"]], ids=["joblib", "submitit_local"])
def test_parallel_launchers_land_in_the_same_tables(tmp_path, launcher):
    cmd = [str(EXE), "-m", *launcher, "experiment=smoke", "cell=lstm,gru", "seed=0,1", "train.steps=3",
           "progress=false", f"results_dir={tmp_path / 'runs'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = load_tables(tmp_path / "runs")["runs"]
    assert sorted(zip(runs.cell, runs.seed)) == [("gru", 0), ("gru", 1), ("lstm", 0), ("lstm", 1)]
    assert (runs.status == "ok").all() and (runs.threads == 1).all()
    # each job, in a process of the launcher's, counts the sweep's runs from the plan in the sweep's folder
    (plan,) = (tmp_path / "runs" / ".sweeps").glob("*/plan.json")
    assert sorted(r[1] for r in json.loads(plan.read_text())) == sorted(runs.run_id)
    logs = done.stdout + "".join(f.read_text() for f in plan.parent.glob("**/*_log.out"))  # submitit's jobs log there
    assert "sweep progress: 4/4 runs recorded" in logs
    # each job named its run in its own folder; the sweep's end (Hydra's on_multirun_end) compacted them
    assert sorted(json.loads(f.read_text())[1] for f in plan.parent.glob("*/run.json")) == sorted(runs.run_id)
    assert [f.name[:6] for f in (tmp_path / "runs").iterdir() if not f.name.startswith(".")] == ["sweep-"]


@pytest.mark.slow
def test_a_tuning_sweeper_draws_learning_rates_and_maximises_the_validation_score(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the tune extra is not installed")
    cmd = [str(EXE), "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.direction=maximize",
           "hydra.sweeper.sampler.seed=0", "experiment=smoke", "cell=gru", "train.steps=6", "train.eval_every=3",
           "task.seq_len=20", "train.lr=interval(0.001,0.1)", "progress=false", f"results_dir={tmp_path / 'runs'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = load_tables(tmp_path / "runs")["runs"]
    lrs = runs["config.train.lr"]
    assert len(runs) == 4 and lrs.between(0.001, 0.1).all() and lrs.nunique() == 4 and (runs.status == "ok").all()
    best = re.search(r"Best value: (\S+)", done.stdout + done.stderr)
    assert best and float(best.group(1)) == pytest.approx(runs.valid_score.max())  # the objective: validation
    # no plan (the sweeper picks its trials as it goes), yet its trials are summarised and compacted at its end
    assert "sweep summary" in done.stdout and "compacted into" in done.stdout
    assert [f.name[:6] for f in (tmp_path / "runs").iterdir() if not f.name.startswith(".")] == ["sweep-"]
    # the report's selection reads the study's trials as grid points: one cell, four trials
    from bench import selection, claims
    trials = selection.trials(claims.annotate(runs))
    assert trials.trials.tolist() == [4] * 4 and trials.chosen.sum() == 1
    assert trials.loc[trials.chosen, "config.train.lr"].item() == runs.loc[runs.valid_score.idxmax(), "config.train.lr"]
    # a bad value at either end of the range is refused before any trial runs
    bad = subprocess.run([*cmd[:-2], "train.lr=interval(-1,0.1)", f"results_dir={tmp_path / 'bad'}"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("rnnbench: error: train.lr=-1")
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").glob("*/runs.parquet"))


def test_the_slurm_launcher_config_composes_onto_submitit():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=cpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "cpu"
    assert launcher.cpus_per_task == 1 and launcher.timeout_min == 120


@pytest.mark.slow
def test_claims_full_shrunk_runs_its_three_steps_through_the_report(tmp_path):
    """`make reproduce-full`'s three steps on fewer seeds, steps and sizes: the grid (seed 0), each
    cell at its grid's choice (train.lr=best, seed 1), the throughput cases over two sizes; then
    the report, where every claim has parts and the parts name the LSTM they read."""
    from bench import claims, report
    shrink = [*SHRINK, "train.n_test=16", "train.profile_every=0", f"results_dir={tmp_path}"]
    training = ["experiment=claims_full", "case_full=glob(*,exclude=*-throughput-*)"]
    steps = [[*training, "seed=0"], [*training, "train.lr=best", "seed=1"],
             ["experiment=claims_full", "case_full=glob(*-throughput-*)", "cell.hidden_size=4,8", "seed=0,1"]]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for step in steps:
            for job in run.jobs(step, multirun=True)[0]:
                overrides = [*shrink, *job]  # the job's sizes win over SHRINK's
                choices = compose("config", overrides=overrides, return_hydra_config=True).hydra.runtime.choices
                assert run.execute(compose("config", overrides=overrides), dict(choices)) == "ok"
    runs = claims.annotate(load_tables(tmp_path)["runs"])
    assert runs.groupby("seed").size().to_dict() == {0: 129 + 8, 1: 43 + 8}  # 43 cases x 3 rates; 4 timed x 2 sizes
    path, verdicts, _ = report.write(tmp_path)
    assert [v.id for v in verdicts] == [f"S{i}" for i in range(1, 8)] and all(len(v.parts) for v in verdicts)
    keys = {k for v in verdicts for k in v.parts.key}
    for lstm in ("lstm", "lstm_fb1", "lstm_peephole"):
        assert f"equal H, adding: gru - {lstm}" in keys
    assert "adding: lstm_peephole - lstm_peephole without forget_gate" in keys
    assert "counting: cifg lstm_peephole - lstm_peephole" in keys
    assert {"equal H, jsb: gru - lstm", "equal params, jsb: gru - lstm"} <= keys  # Chung et al.'s, on real data
    assert "## The literature beside each verdict" in path.read_text()
    assert "jsb, each cell beside Chung et al. 2014" in path.read_text()
