"""The result tables: tidy, one row per observation, written atomically, one folder per run,
compacted into one folder per sweep when the sweep ends.

    RESULTS_DIR/<run_id>/metrics.parquet     run_id, step, split, metric, value, layer, param, gate
    RESULTS_DIR/<run_id>/profiles.parquet    run_id, step, t, quantity, layer, value
    RESULTS_DIR/<run_id>/throughput.parquet  run_id, pass, seq_len, batch_size, tokens_per_s, ...
    RESULTS_DIR/<run_id>/runs.parquet        one row: the run's config, status and fingerprint
Every row of every table also names the backend: device, impl, dtype, threads.

runs.parquet is written last and is the mark of a complete record: a run killed before it
leaves nothing that load_tables reads, and its rerun replaces the rest. A sweep's complete runs
are then moved into RESULTS_DIR/sweep-<hash>/ (the same four tables, many runs each). Where one
run id is recorded twice (a failed run retried after compaction, a compaction killed before it
removed its sources) the record that started last wins. Identifiers are read from the files,
never from folder names.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd

TABLES = ("runs", "metrics", "profiles", "throughput")
BACKEND = ["device", "impl", "dtype", "threads"]
COLUMNS = {
    "runs": ["run_id", "status", "cell", "task", "seq_len", "hidden_size", "seed", "n_params", *BACKEND],
    "metrics": ["run_id", "step", "split", "metric", "value", "layer", "param", "gate", *BACKEND],
    "profiles": ["run_id", "step", "t", "quantity", "layer", "value", *BACKEND],
    "throughput": ["run_id", "pass", "seq_len", "batch_size", "input_size", "hidden_size", "tokens_per_s",
                   "seconds", "seconds_q1", "seconds_q3", "repeats", "ref_seconds", "macs_per_token", "saved_bytes",
                   "peak_bytes", *BACKEND],
}
DONE = ("ok", "diverged")  # statuses a rerun skips; 'failed' runs are retried


def run_id(config: dict) -> str:
    """A stable hash of everything that determines a run's result."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def status_of(results_dir, rid: str) -> str | None:
    """The recorded status of run `rid`, or None when it has no complete record."""
    path = Path(results_dir) / rid / "runs.parquet"
    if path.exists():  # a run's own folder is newer than any compaction that holds it
        return pd.read_parquet(path, columns=["status"])["status"].iloc[0]
    found = [runs[runs.run_id == rid] for runs in
             (pd.read_parquet(p, columns=["run_id", "status", "started_at"])
              for p in Path(results_dir).glob("sweep-*/runs.parquet"))]
    found = pd.concat(found) if found else pd.DataFrame()
    return None if found.empty else found.sort_values("started_at")["status"].iloc[-1]


def recorded(results_dir, rids: list[str]) -> set[str]:
    """Which of `rids` have a complete record, in their own folder or in a compacted one."""
    root = Path(results_dir)
    compacted = {rid for p in root.glob("sweep-*/runs.parquet")
                 for rid in pd.read_parquet(p, columns=["run_id"]).run_id}
    return {rid for rid in rids if rid in compacted or (root / rid / "runs.parquet").exists()}


def compact(results_dir, rids: list[str]) -> Path | None:
    """Move the complete runs among `rids` from their own folders into one sweep folder; None
    when fewer than two are left in folders of their own."""
    root = Path(results_dir)
    folders = [root / rid for rid in dict.fromkeys(rids) if (root / rid / "runs.parquet").exists()]
    if len(folders) < 2:
        return None
    target = root / f"sweep-{run_id(sorted(f.name for f in folders))}"
    target.mkdir(exist_ok=True)
    for name in (*TABLES[1:], "runs"):  # runs last: the folder is complete once it is there
        frames = [pd.read_parquet(f / f"{name}.parquet") for f in folders if (f / f"{name}.parquet").exists()]
        frames = [f for f in frames if not f.empty]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS[name])
        _write_atomic(frame, target / f"{name}.parquet")
    for f in folders:
        shutil.rmtree(f)
    return target


def write_run(results_dir, rid: str, runs: dict, tables: dict[str, list[dict]]) -> Path:
    """Write one run's tables; runs.parquet goes last (and first goes any old one). Each row of
    `tables` (metrics, profiles, throughput) gets the run's id and backend columns."""
    folder = Path(results_dir) / rid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runs.parquet").unlink(missing_ok=True)  # an old record must not pair with new rows
    tag = {"run_id": rid, **{k: runs[k] for k in BACKEND}}
    for name in TABLES[1:]:
        frame = pd.DataFrame([{**r, **tag} for r in tables.get(name, [])], columns=COLUMNS[name])
        if "layer" in frame:
            frame = frame.astype({"layer": "Int64"})  # None: not per layer
        _write_atomic(frame, folder / f"{name}.parquet")
    _write_atomic(pd.DataFrame([runs]), folder / "runs.parquet")
    return folder


def load_tables(results_dir, names: tuple[str, ...] = TABLES) -> dict[str, pd.DataFrame]:
    """{'runs', 'metrics', 'profiles', 'throughput'} (or just `names`) -> DataFrame, from every
    complete run under results_dir (tables a run did not write are empty)."""
    root = Path(results_dir)
    folders = sorted(p.parent for p in root.glob("*/runs.parquet")) if root.is_dir() else []
    read = {name: [pd.read_parquet(f / f"{name}.parquet").assign(_folder=f.name)
                   for f in folders if (f / f"{name}.parquet").exists()] for name in {"runs", *names}}
    runs = pd.concat(read["runs"], ignore_index=True) if read["runs"] else None
    keep = set()  # (run_id, folder) of each run's latest record
    if runs is not None:
        latest = runs.sort_values("started_at", kind="stable").drop_duplicates("run_id", keep="last")
        keep = set(zip(latest.run_id, latest._folder))
    tables = {}
    for name in names:
        frames = read[name]
        frames = [f[[pair in keep for pair in zip(f.run_id, f._folder)]] for f in frames]
        frames = [f.drop(columns="_folder") for f in frames if not f.empty]
        tables[name] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS[name])
    return tables
