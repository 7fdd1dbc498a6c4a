"""The rnnbench command, a Hydra app: `rnnbench [overrides]` trains one configuration,
`rnnbench -m [sweeps]` every combination. Every job's configuration is checked before the first
one starts: a bad input ends with one line on stderr, exit status 2 and no result rows. Once
checked, a run that fails or diverges is recorded as such and the sweep goes on."""
import functools
import importlib.resources
import itertools
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn

import hydra
import pandas as pd
import torch
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import cells
from cells._base import check_size

from . import backends, claims, environment, measure, results, selection, sweep, tasks, tracking
from .train import Model, Outcome, train

def _conf_dir() -> Path:
    """The configs: the package bench.conf where rnnbench is installed (a wheel, or an editable
    install made since the configs became a package), else the checkout's conf/."""
    try:
        return Path(str(importlib.resources.files("bench.conf")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "conf"


CONF_DIR = _conf_dir()
NOT_IN_ID = ("results_dir", "rerun", "progress", "on_code_change", "logger")  # where and how a run is shown, not what it computes
ON_CODE_CHANGE = ("refuse", "keep", "rerun")
UNUSED = {"train": "throughput", "throughput": "train"}  # each mode's settings the other mode never reads
CELL_TARGETS = {f"cells.{cls.__name__}" for cls in cells.CELLS.values()}


@dataclass(frozen=True)
class Plan:
    """A checked configuration: everything a run needs except the trained weights."""
    task: tasks.Task
    cell: cells.Recurrent  # built on the meta device when only checking
    cell_config: DictConfig  # cfg.cell, with the hidden size param_match chose
    backend: backends.Backend
    config: dict  # the resolved config
    run_id: str
    requested_size: int  # cfg.cell.hidden_size as asked, before param_match resized the cell


INT64 = (-2**63, 2**63 - 1)  # what a table's integer column holds


def check_values(config: dict, prefix: str = "") -> None:
    """Every number of the resolved config: finite, and integers within 64 bits."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            check_values(value, f"{name}.")
        elif isinstance(value, list):
            check_values(dict(enumerate(value)), f"{name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}={value!r} is not valid; allowed: a finite number")
        elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
            raise ValueError(f"{name}={value!r} is out of range; allowed: an integer from -2^63 to 2^63-1")


def check_top(cfg: DictConfig) -> None:
    """The keys outside the groups: mode, seed, train.*, throughput.*."""
    if cfg.mode not in MODES:
        raise ValueError(f"mode={cfg.mode!r} is not valid; allowed: {' | '.join(MODES)}")
    for key in ("batch_size", "input_size", "repeats"):
        check_size(f"throughput.{key}", cfg.throughput[key])
    check_size("throughput.warmup", cfg.throughput.warmup, 0)
    check_size("seed", cfg.seed, 0)
    for key in ("steps", "batch_size", "eval_every", "n_test", "probe_size"):
        check_size(f"train.{key}", cfg.train[key])
    check_size("train.profile_every", cfg.train.profile_every, 0)
    lr = cfg.train.lr
    if lr != selection.BEST and (not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0):
        raise ValueError(f"train.lr={lr!r} is not valid; allowed: a number > 0, or {selection.BEST} (the choice of the "
                         "grid recorded in results_dir)")
    if cfg.train.clip is not None and (not isinstance(cfg.train.clip, (int, float)) or cfg.train.clip <= 0):
        raise ValueError(f"train.clip={cfg.train.clip!r} is not valid; allowed: a number > 0 or null")
    if not isinstance(cfg.embed, bool):
        raise ValueError(f"embed={cfg.embed!r} is not valid; allowed: true | false")
    if cfg.embed and cfg.param_match is not None:
        raise ValueError("param_match with embed=true is not supported (the cell's input width would change with its "
                         "size); allowed: one of them")
    if cfg.on_code_change not in ON_CODE_CHANGE:
        raise ValueError(f"on_code_change={cfg.on_code_change!r} is not valid; allowed: {' | '.join(ON_CODE_CHANGE)}")
    if not isinstance(cfg.train.stop_when_solved, bool):
        raise ValueError(f"train.stop_when_solved={cfg.train.stop_when_solved!r} is not valid; allowed: true | false")


def _instantiate(node, what: str, **kwargs):
    """hydra's instantiate, with the error of the object itself rather than hydra's wrapper."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise type(cause)(str(cause)) if isinstance(cause, (ValueError, TypeError)) else ValueError(f"{what}: {cause}")


def plan(cfg: DictConfig) -> Plan:
    """Check a composed config and build what it names; ValueError / TypeError name the problem."""
    config = OmegaConf.to_container(cfg, resolve=True)
    check_values(config)
    check_top(cfg)
    tracking.check(cfg.logger)
    task = _instantiate(cfg.task, "task")
    backend = backends.resolve(cfg.backend)
    if cfg.cell.get("_target_") not in CELL_TARGETS:
        raise ValueError(f"cell._target_={cfg.cell.get('_target_')!r} is not valid; allowed: {' | '.join(sorted(CELL_TARGETS))}")
    input_size = (cfg.cell.hidden_size if cfg.embed  # the cell reads the embedding
                  else cfg.throughput.input_size if cfg.mode == "throughput" else task.input_size)
    cell_config = cfg.cell
    cell = _instantiate(cell_config, "cell", input_size=input_size, device="meta")  # checks, no memory
    if cfg.param_match is not None:
        cell_config = matched(cfg, cell, input_size)
        cell = _instantiate(cell_config, "cell", input_size=input_size, device="meta")
        config["cell"]["hidden_size"] = cell.hidden_size
    backends.check_cell(backend, cell)
    if cell.batch_first:
        raise ValueError("cell.batch_first=True is not valid: the model feeds its cell (T, B, I); allowed: false")
    if cell.proj_size:
        raise ValueError(f"cell.proj_size={cell.proj_size} is not valid in rnnbench (its records and readout take h "
                         "of hidden_size); allowed: 0")
    if cell.bidirectional and cfg.mode == "throughput":
        raise ValueError("cell.bidirectional=true is not valid with mode=throughput (it times one direction against "
                         "torch's one-direction LSTM); allowed: false")
    if cell.bidirectional and cfg.mode == "train" and task.target in tasks.PER_STEP:
        raise ValueError(f"cell.bidirectional=true would let task={task.name}'s output at each step read the steps "
                         "after it; allowed: false here, true for tasks that predict from the whole sequence "
                         "(adding, temporal_order, digits)")
    if task.varlen:
        check_packed(cfg, task, backend)
    check_memory(cfg, task, cell, backend)
    if cfg.mode == "train" and cfg.train.lr == selection.BEST:  # the recorded grid's choice: in the id, record, run
        free = tuple(f"config.{k}" for k in (*NOT_IN_ID, UNUSED["train"]))
        cfg.train.lr = config["train"]["lr"] = selection.best(flat(config), recorded(cfg.results_dir), free)
    identity = computed(config) | {"task_version": task.version}
    return Plan(task, cell, cell_config, backend, config, results.run_id(identity), cfg.cell.hidden_size)


def computed(config: dict) -> dict:
    """What a run computes: its config but where and how it is shown, and the settings its mode
    never reads (a learning-rate grid does not time a throughput case twice)."""
    ignored = {*NOT_IN_ID, UNUSED[config["mode"]]}
    return {k: v for k, v in config.items() if k not in ignored}


def flat(config: dict) -> dict:
    """The config as the runs table records it: one 'config.a.b' column per leaf."""
    return {f"config.{k}": v for k, v in pd.json_normalize(config, sep=".").iloc[0].to_dict().items()}


def recorded(results_dir: str) -> pd.DataFrame:
    """The runs recorded in results_dir, annotated (train.lr=best), read again only when the folder
    has changed: every job of a sweep asks."""
    folder = Path(results_dir)
    return _recorded(str(folder.resolve()), folder.stat().st_mtime_ns if folder.is_dir() else None)


@functools.lru_cache(maxsize=8)
def _recorded(results_dir: str, changed) -> pd.DataFrame:
    return claims.annotate(results.load_tables(results_dir, names=("runs",))["runs"])


PACKED_IMPLS = ("loop", "fused")  # the implementations that take a PackedSequence


def check_packed(cfg: DictConfig, task: tasks.Task, backend: backends.Backend) -> None:
    """A task of variable lengths trains through PackedSequence: our step loop or torch's module."""
    if cfg.mode == "throughput":
        raise ValueError(f"mode=throughput times unpacked input of seq_len steps, and task={task.name} packs its "
                         "examples; allowed: a task of fixed length (adding, ...) or mode=train")
    if backend.impl not in PACKED_IMPLS:
        raise ValueError(f"backend.impl={backend.impl!r} does not take the packed batches of task={task.name}; "
                         f"allowed: {' | '.join(PACKED_IMPLS)}")


def check_memory(cfg: DictConfig, task: tasks.Task, cell: cells.Recurrent, backend: backends.Backend) -> None:
    """Refuse a run whose tensors cannot fit in its device's memory. The estimate is a lower
    bound (only what every implementation must hold at once): parameters with their gradients
    and Adam's two moments, the fixed validation and test sets, and the larger of an
    evaluation's forward (one layer's outputs) and a training step's saved activations (the input
    and every gate of every step and layer); for mode=throughput, one forward+backward's."""
    width = 8 if backend.dtype == "float64" else 4
    gates = len(cell.layout.blocks) * cell.hidden_size * cell.num_layers * (2 if cell.bidirectional else 1)
    params = 4 * sum(q.numel() for q in cell.parameters())
    if cfg.mode == "throughput":
        t = cfg.throughput
        parts = {"a forward+backward": task.seq_len * t.batch_size * (t.input_size + gates)}
        sizes = "task.seq_len, throughput.batch_size, throughput.input_size or cell.hidden_size"
    else:
        steps, n_test = task.steps or task.seq_len, task.test_examples or cfg.train.n_test
        evaluation = n_test * steps * cell.hidden_size
        training = cfg.train.batch_size * steps * (task.input_size + gates)
        parts = {"the validation and test sets": 2 * n_test * steps * task.input_size,
                 "a training or evaluation step": max(evaluation, training)}
        sizes = "task.seq_len, train.n_test, train.batch_size or cell.hidden_size"
    parts["the parameters"] = params
    need, have = width * sum(parts.values()), backend.memory_bytes()
    if need > have:
        largest = max(parts, key=parts.get)
        raise ValueError(f"this run needs at least {need / 2**30:,.1f} GiB of memory ({largest}: "
                         f"{width * parts[largest] / 2**30:,.1f} GiB), more than the {have / 2**30:,.1f} GiB of "
                         f"backend.device={backend.device}; allowed: a smaller {sizes}")


def matched(cfg: DictConfig, cell: cells.Recurrent, input_size: int) -> DictConfig:
    """cfg.cell with the hidden size whose parameter count is closest to param_match's cell at
    cfg.cell.hidden_size (same input size, layers and bias)."""
    if cfg.param_match not in cells.CELLS:
        raise ValueError(f"param_match={cfg.param_match!r} is not valid; allowed: null | {' | '.join(cells.CELLS)}")
    shape = {"bias": cell.bias, "bidirectional": cell.bidirectional}
    target = cells.count_params(cfg.param_match, input_size, cell.hidden_size, cell.num_layers, **shape)
    size = cells.match_hidden_size(type(cell), target, input_size, cell.num_layers, **shape, **cell.flags)
    node = OmegaConf.to_container(cfg.cell, resolve=True) | {"hidden_size": size}
    return OmegaConf.create(node)


def record(p: Plan, choices: dict, status: str, error, outcome, wall: float, started: str) -> dict:
    """The run's row of the runs table: contract columns first, then the flags, then the rest."""
    task, cell, solved = p.task, p.cell, outcome is not None and outcome.steps_to_solve is not None
    final = outcome.final.get(task.metric) if outcome else None
    training = p.config["mode"] == "train"  # a throughput run has no task metric
    return {
        "run_id": p.run_id, "status": status, "cell": choices.get("cell", type(cell).__name__.lower()),
        "task": task.name if training else None, "seq_len": task.seq_len, "hidden_size": cell.hidden_size, "seed": p.config["seed"],
        "n_params": sum(q.numel() for q in cell.parameters()), **backends.fingerprint(p.backend),
        "code": environment.code(), "environment": recorded_environment(p.config["results_dir"]),
        **cell.flags,
        "mode": p.config["mode"], "cell_class": type(cell).__name__, "input_size": cell.input_size,
        "num_layers": cell.num_layers, "bias": cell.bias, "requested_hidden_size": p.requested_size,
        # the Linear(D·H, out) readout, D = 2 bidirectional
        "n_params_readout": (cell.hidden_size * (1 + cell.bidirectional) + 1) * task.output_size,
        "metric": task.metric if training else None, "final_value": final,
        "valid_value": outcome.valid.get(task.metric) if outcome else None,
        "chance": task.chance.get(task.metric) if training else None,
        # the scale runs are compared on (tasks.SCALES): test and validation, and its best value
        "scale": task.scale if training else None,
        "score": tasks.score(task, outcome.final) if outcome else None,
        "valid_score": tasks.score(task, outcome.valid) if outcome else None,
        "score_max": tasks.best_score(task) if training else None,
        "solved_threshold": task.solved if training else None, "solved": solved,
        "steps": outcome.steps if outcome else 0,
        "steps_to_solve": outcome.steps_to_solve if outcome else None,
        "seconds_to_solve": outcome.seconds_to_solve if outcome else None,
        "train_seconds": outcome.train_seconds if outcome else None,
        "first_step_seconds": outcome.first_step_seconds if outcome else None,
        "train_tokens_per_s": outcome.tokens_per_s if outcome else None,
        "path": outcome.path if outcome else None,  # the path our cell took (cells.accelerations)
        "wall_time": wall, "started_at": started, "error": error, "task_version": task.version,
        **flat(p.config),
    }


def recorded_environment(results_dir: str) -> str | None:
    """The id of this process's environment, written to results_dir (bench.environment); None
    where it cannot be gathered or written (the run's row is the record that matters)."""
    try:
        return environment.record(results_dir)
    except Exception as e:  # noqa: BLE001
        print(f"rnnbench: warning: the environment is not recorded: {results.reason(e)}", file=sys.stderr)
        return None


def train_run(cfg: DictConfig, p: Plan) -> Outcome:
    """mode=train: the cell and a readout trained on the task."""
    torch.manual_seed(cfg.seed)
    cell = instantiate(p.cell_config, input_size=p.cell.input_size)
    model = Model(p.backend.build(cell), p.task, embed=cfg.embed).to(p.backend.device, p.backend.torch_dtype)
    logger = tracking.open_logger(cfg.logger, f"{type(cell).__name__.lower()}-{p.task.name}-T{p.task.seq_len}-"
                                              f"seed{cfg.seed}-{p.run_id}")
    try:
        return train(model, cell, p.task, cfg.train, cfg.seed, p.backend, cfg.progress, logger and logger.log)
    finally:
        if logger:
            logger.close()


def throughput_run(cfg: DictConfig, p: Plan) -> Outcome:
    """mode=throughput: tokens/s of the cell alone on random input of the task's length."""
    torch.manual_seed(cfg.seed)
    t = cfg.throughput
    cell = instantiate(p.cell_config, input_size=p.cell.input_size)
    # the yardstick: torch's own LSTM of the same sizes, timed in the same rounds
    reference = torch.nn.LSTM(cell.input_size, cell.hidden_size).to(p.backend.device, p.backend.torch_dtype)
    rows = measure.throughput(p.backend.build(cell), p.backend, p.task.seq_len, t.batch_size, cell.input_size,
                              t.repeats, t.warmup, reference, ours=cell)
    macs = sum(w.numel() for name, w in cell.named_parameters() if name.startswith("weight"))  # per token
    return Outcome(throughput=[{**r, "hidden_size": cell.hidden_size, "macs_per_token": macs} for r in rows],
                   path=rows[-1]["path"])  # forward + backward's


MODES = {"train": train_run, "throughput": throughput_run}


def execute(cfg: DictConfig, choices: dict) -> str:
    """One run: skipped when complete, else trained and recorded whatever happens. Returns its status."""
    return run_job(cfg, choices)[0]


def run_job(cfg: DictConfig, choices: dict) -> tuple[str, float]:
    """execute(): the run's status and its validation score (higher is better; NaN where it has
    none: a throughput run, a failed one), the objective a tuning sweeper maximises."""
    p = plan(cfg)
    found = results.index(cfg.results_dir).query("run_id == @p.run_id")
    done, code = (None, None) if found.empty else (found.status.iloc[0], found.code.iloc[0])
    other = by_other_code(pd.Series([code])).item()
    if done in results.DONE and not cfg.rerun and not (other and cfg.on_code_change == "rerun"):
        by = f" by other code ({'unrecorded' if pd.isna(code) else code}; this code is {environment.code()})" if other else ""
        print(f"rnnbench: skipped {p.run_id}: already recorded as {done}{by} in {cfg.results_dir}")
        return done, _objective(found.valid_score.iloc[0])
    p.backend.apply()
    # microseconds: a failed run and its retry can start within one second, and the later record must win
    started, t0 = datetime.now(timezone.utc).isoformat(timespec="microseconds"), time.perf_counter()
    status, error, outcome = "failed", None, None
    try:
        outcome = MODES[cfg.mode](cfg, p)
        status, error = outcome.status, outcome.error
    except Exception as e:  # a failed run is a result: record it and let the sweep go on
        error = f"{type(e).__name__}: {e}"
    row = record(p, choices, status, error, outcome, time.perf_counter() - t0, started)
    tables = {} if outcome is None else {"metrics": outcome.metrics, "profiles": outcome.profiles,
                                         "throughput": outcome.throughput}
    try:
        folder = results.write_run(cfg.results_dir, p.run_id, row, tables)
    except Exception as e:  # noqa: BLE001 (the disk, not the run: nothing partial is left, the sweep goes on)
        print(f"rnnbench: {describe(row)}: NOT RECORDED, writing to {cfg.results_dir} failed: {results.reason(e)}",
              file=sys.stderr)
        return "unrecorded", _objective(row["valid_score"])
    print(summary(row, outcome, folder))
    return status, _objective(row["valid_score"])


def _objective(score) -> float:
    return float("nan") if score is None or pd.isna(score) else float(score)


def describe(row: dict) -> str:
    """'gru on copy (T=50, seed 1)': a run as its lines name it."""
    return f"{row['cell']} on {row['task'] or 'throughput'} (T={row['seq_len']}, seed {row['seed']})"


def summary(row: dict, outcome: Outcome | None, folder: Path) -> str:
    what = describe(row)
    if row["status"] == "failed":
        return f"rnnbench: {what}: failed: {row['error']} -> {folder}"
    if outcome.throughput:
        speeds = ", ".join(f"{r['pass']} {r['tokens_per_s']:,.0f} tokens/s" for r in outcome.throughput)
        r = outcome.throughput[0]
        return (f"rnnbench: {row['cell']} ({row['impl']}, {row['device']}, {row['dtype']}, {row['threads']} thread(s)) "
                f"T={r['seq_len']} B={r['batch_size']} I={r['input_size']} H={r['hidden_size']}: {speeds} -> {folder}")
    value = "-" if row["final_value"] is None else f"{row['final_value']:.4g}"
    chance = "" if row["chance"] is None else f" (chance {row['chance']:.4g})"
    chance += "" if row["score"] is None else f", score {row['score']:+.2f} ({row['scale']})"
    if row["solved"]:
        solved = f"solved at step {row['steps_to_solve']} ({row['seconds_to_solve']:.1f} s of training)"
    elif row["solved_threshold"] is None:
        solved = f"{row['steps']} steps, no solved threshold"
    else:
        solved = f"not solved in {row['steps']} steps"
    status = "" if row["status"] == "ok" else f" {row['status'].upper()} ({row['error']});"
    return f"rnnbench: {what}:{status} test {row['metric']} {value}{chance}, {solved}, {row['wall_time']:.1f} s -> {folder}"


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> float:
    """One job; returns its validation score, for a tuning sweeper (hydra.sweeper.direction=maximize)."""
    _, objective = run_job(cfg, dict(HydraConfig.get().runtime.choices))
    if (progress := sweep.progress_line()) is not None:
        print(progress)
    return objective


def jobs(overrides: list[str], multirun: bool, config_name: str = "config") -> tuple[list[list[str]], bool]:
    """Each job's overrides, as Hydra's basic sweeper expands them (with hydra.sweeper.params:
    each key's values, a product over keys, a later override of a key replacing an earlier one),
    and whether they are the sweep's jobs. A sweep over a range that is not a list of values
    (interval(), for a tuning sweeper to draw from) stands for its two ends: the jobs checked up
    front, and not the sweep's (its sweeper picks those as it goes)."""
    if not multirun:
        return [overrides], True
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    master = compose(config_name, overrides=fixed, return_hydra_config=True)
    params = [f"{k}={v}" for k, v in (OmegaConf.select(master, "hydra.sweeper.params") or {}).items()]
    values, exact = {}, True
    for o in parser.parse_overrides(params + overrides):
        key = o.get_key_element()
        if not o.is_sweep_override():
            values[key] = [f"{key}={o.get_value_element_as_str()}"]
        elif o.is_discrete_sweep():
            values[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:  # interval(start, end)
            span, exact = o.value(), False
            values[key] = [f"{key}={v}" for v in dict.fromkeys((span.start, span.end))]
    return [list(job) for job in itertools.product(*values.values())], exact


def check(config: DictConfig, multirun: bool) -> list[tuple[str, str]]:
    """Compose and check every job of the command line that made `config` (Hydra's composed
    config, before the first job); returns the sweep's (results_dir, run_id), none where a tuning
    sweeper picks its jobs as it goes."""
    runs, refusing = [], set()
    checked, exact = jobs(list(config.hydra.overrides.task), multirun, config.hydra.job.config_name)
    for job in checked:
        cfg = compose(config.hydra.job.config_name, overrides=job)
        runs.append((str(Path(cfg.results_dir).resolve()), plan(cfg).run_id))
        if cfg.on_code_change == "refuse" and not cfg.rerun:
            refusing.add(runs[-1])
    check_code(refusing)
    for results_dir in dict.fromkeys(d for d, _ in runs):
        try:
            results.prepare(results_dir)
        except OSError as e:
            raise ValueError(f"results_dir={results_dir} cannot be written ({e.strerror or e}); "
                             f"allowed: a folder this user can create and write to") from None
    return runs if exact else []


class Lifecycle(Callback):
    """Hydra's callbacks (conf/config.yaml, hydra.callbacks), in the process that launches a run or
    a sweep: every job checked before the first starts, the sweep's progress kept in its folder
    (bench.sweep), and at its end, the summary, the compaction and the exit status. A check that
    fails exits (Hydra turns a callback's exception into a warning and goes on)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        sweep.start(None, _checked(config, multirun=False))

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        _end(None)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep.start(config.hydra.sweep.dir, _checked(config, multirun=True))

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if HydraConfig.get().mode.name == "MULTIRUN" and job_return.status == JobStatus.COMPLETED:
            cfg = job_return.cfg  # in the job's own process, wherever it ran
            sweep.job_ended(HydraConfig.get().runtime.output_dir, cfg.results_dir, plan(cfg).run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        _end(config.hydra.sweep.dir)


def _checked(config: DictConfig, multirun: bool) -> list[tuple[str, str]]:
    try:
        return check(config, multirun)
    except Exception as e:  # noqa: BLE001: every config error ends as one line, before any run
        refuse(e)


def refuse(e: Exception) -> NoReturn:
    """A bad command line: one line on stderr naming what was wrong, exit status 2."""
    print(f"rnnbench: error: {one_line(e)}", file=sys.stderr)
    sys.exit(2)


def _end(folder: str | None) -> None:
    """The end of a run or a sweep: exit status 1 where a planned run has no record."""
    planned = len(sweep.planned())
    missing = sweep.finish(folder)
    if missing:
        ids = ", ".join(rid for _, rid in missing[:10]) + (", ..." if len(missing) > 10 else "")
        print(f"rnnbench: error: {len(missing)} of {planned} runs are not recorded (the lines above say why): {ids}",
              file=sys.stderr)
        sys.exit(1)


def by_other_code(codes: pd.Series) -> pd.Series:
    """Which recorded `code` values are not this code's (a record without one counts as other)."""
    return codes.isna() | codes.ne(environment.code())


def check_code(runs: set[tuple[str, str]]) -> None:
    """Refuse a command that would skip runs recorded by other code than this (on_code_change=refuse):
    their numbers may not be what this code computes."""
    for results_dir, rids in sweep.by_folder(sorted(runs)).items():
        index = results.index(results_dir)
        done = index[index.run_id.isin(rids) & index.status.isin(results.DONE)]
        other = done[by_other_code(done.code)]
        if len(other):
            versions = ", ".join(f"{c} ({n} runs)" for c, n in other.code.fillna("unrecorded").value_counts().items())
            raise ValueError(f"{len(other)} of these runs are recorded in {results_dir} by other code than this "
                             f"({environment.code()}): {versions}; allowed: on_code_change=rerun (run them again), "
                             "on_code_change=keep (skip them), or another results_dir")


def one_line(e: BaseException) -> str:
    """A config error as one line that names the valid choices."""
    cause = e.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "parent_node", None) is not None:
        keys = ", ".join(str(k) for k in cause.parent_node.keys())
        hint = " (a cell flag is added with +cell.FLAG=VALUE)" if str(cause.full_key).startswith("cell.") else ""
        return f"unknown key '{cause.full_key}'; the keys there are: {keys}{hint}"
    text = str(e).split("\nConfig search path")[0].replace("\n\t", ", ").replace(":,", ":")
    line = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if "LexerNoViableAltException" in line:  # Hydra's grammar takes unquoted values in ASCII only
        line += " (a value with spaces or characters outside ASCII is quoted: 'key=\"value\"')"
    if "config directory" in line and "not found" in line:  # Hydra's for a --config-dir that is not there
        line += "; allowed: a folder of YAML configs"
    return line


def main() -> None:
    """The rnnbench command: the Hydra app, with an error before the first job (a bad override, a
    config that does not compose, a check that fails) as one line on stderr and exit status 2."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors rather than printing them with hints
    try:
        app()
    except Exception as e:  # noqa: BLE001: Hydra's own (a config that does not compose), before any run
        refuse(e)


if __name__ == "__main__":
    main()
