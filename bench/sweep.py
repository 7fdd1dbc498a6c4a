"""Sweep-level bookkeeping, all counted from the results on disk: which runs a sweep planned,
how many of them are recorded (printed after each job, whatever the launcher), and, once the sweep
ends, a summary table and its runs' records compacted. Its state lives in the sweep's own folder
(hydra.sweep.dir, under results_dir): the plan, written when the sweep starts, and one file per job
naming the run it made, so that every job and the end of the sweep read them, in the launching
process, a joblib worker or a cluster node alike. bench.run.Lifecycle calls these from Hydra's
callbacks."""
import json
import sys
from pathlib import Path

import pandas as pd
from hydra.core.hydra_config import HydraConfig

from . import claims, results

PLAN = "plan.json"  # the sweep's [results_dir, run_id] pairs, in its folder
RAN = "run.json"    # a job's [results_dir, run_id], in the job's folder (hydra.sweep.subdir)
_planned: list[tuple[str, str]] = []  # the launching process's plan (checked before the first job)


def _write(path: Path, value) -> None:
    """`value` as JSON at path, written whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_whole(path, json.dumps(value))


def start(folder: str | None, runs: list[tuple[str, str]]) -> None:
    """A sweep starts: its distinct runs (two jobs whose configs resolve alike are one run), as
    checked, into its folder; none where a tuning sweeper picks the jobs as it goes."""
    _planned[:] = dict.fromkeys(tuple(r) for r in runs)
    if folder is not None and _planned:
        _write(Path(folder) / PLAN, _planned)


def job_ended(job_folder: str, results_dir: str, rid: str) -> None:
    """A job of a sweep ended: the run it made (or skipped) into its folder, for the sweep's end."""
    _write(Path(job_folder) / RAN, [str(Path(results_dir).resolve()), rid])


def _ran(folder: str | None) -> list[tuple[str, str]]:
    """The runs the sweep's jobs made, as their files in the sweep's folder name them."""
    if folder is None or not Path(folder).is_dir():
        return []
    return [tuple(json.loads(f.read_text())) for f in sorted(Path(folder).glob(f"*/{RAN}"))]


def planned() -> list[tuple[str, str]]:
    """The sweep's runs: the launching process's plan, or in a job, the plan in its sweep's folder
    (the parent of the job's own output folder); [] outside a sweep."""
    if _planned:
        return list(_planned)
    try:
        config = HydraConfig.get()
    except ValueError:  # not in a Hydra job
        return []
    if config.mode.name != "MULTIRUN":
        return []
    path = Path(config.runtime.output_dir).parent / PLAN
    return [tuple(r) for r in json.loads(path.read_text())] if path.exists() else []


def by_folder(runs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """results_dir -> the run ids planned there."""
    folders: dict[str, list[str]] = {}
    for results_dir, rid in runs:
        folders.setdefault(results_dir, []).append(rid)
    return folders


def progress_line() -> str | None:
    """'k/N runs of this sweep recorded', or None outside a sweep."""
    runs = planned()
    if len(runs) < 2:
        return None
    done = sum(len(results.recorded(d, rids)) for d, rids in by_folder(runs).items())
    return f"rnnbench: sweep progress: {done}/{len(runs)} runs recorded"


def summary_table(ids: list[tuple[str, str]]) -> pd.DataFrame:
    """One row per cell x task x length of the sweep's runs `ids` (and the cell's flags, where the
    runs of one named cell differ in them, as a case's overrides make them): runs by status, the
    final test metric's mean and standard deviation over seeds, how many solved, and the median
    steps to solve."""
    rows = [runs[runs.run_id.isin(rids)] for results_dir, rids in by_folder(ids).items()
            for runs in [results.load_tables(results_dir, ("runs",))["runs"]]]
    rows = [r for r in rows if not r.empty]
    if not rows:
        return pd.DataFrame()
    runs = pd.concat(rows, ignore_index=True)
    runs["task"] = runs["task"].fillna("-")  # throughput runs have no task
    keys = ["cell", "task", "seq_len", "hidden_size", "impl"]
    runs["flags"] = [",".join(filter(None, [claims.variant(r, str(c).lower()),
                                            *(k.split(".")[-1] for k in results.ADDED if r.get(f"config.{k}") is True)]))
                     or "-" for r, c in zip(runs.to_dict("records"), runs.cell_class)]
    if runs.groupby("cell").flags.nunique().gt(1).any():
        keys.insert(1, "flags")
    table = runs.groupby(keys, dropna=False).agg(
        runs=("run_id", "size"), ok=("status", lambda s: (s == "ok").sum()),
        diverged=("status", lambda s: (s == "diverged").sum()), failed=("status", lambda s: (s == "failed").sum()),
        metric=("metric", "first"), mean=("final_value", "mean"), sd=("final_value", "std"),
        solved=("solved", "sum"), median_steps_to_solve=("steps_to_solve", "median"))
    return table.reset_index()


def finish(folder: str | None) -> list[tuple[str, str]]:
    """The sweep in `folder` (None: a single run) ended: print the summary of its runs (those
    planned, and those a tuning sweeper's jobs made), compact them into one record per results
    directory, forget the plan, and return the planned runs that no record holds (their jobs said why)."""
    runs = list(dict.fromkeys(planned() + _ran(folder)))
    try:
        table = summary_table(runs) if len(runs) > 1 else pd.DataFrame()
        if not table.empty:
            print("\nrnnbench: sweep summary (final test metric over seeds)")
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            for results_dir, rids in by_folder(runs).items():
                try:
                    merged = results.compact(results_dir, rids)
                except Exception as e:  # noqa: BLE001 (a full disk, say: the runs' own records stay)
                    print(f"rnnbench: warning: the sweep's records in {results_dir} stay apart: merging them "
                          f"failed: {results.reason(e)}", file=sys.stderr)
                    continue
                if merged is not None:
                    print(f"rnnbench: the sweep's tables are compacted into {merged}")
        return [(d, rid) for d, rids in by_folder(planned()).items()
                for rid in sorted(set(rids) - results.recorded(d, rids))]
    finally:
        _planned.clear()
