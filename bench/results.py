"""The result tables: tidy, one row per observation, in folders called records.

    RESULTS_DIR/<record>/runs.parquet        one row per run: its config, status and fingerprint
    RESULTS_DIR/<record>/metrics.parquet     run_id, step, split, metric, value, layer, param, gate
    RESULTS_DIR/<record>/profiles.parquet    run_id, step, t, quantity, layer, value
    RESULTS_DIR/<record>/throughput.parquet  run_id, pass, seq_len, batch_size, tokens_per_s, ...
    RESULTS_DIR/<record>/sha256.json         each table's SHA-256
Every row of every table also names the backend: device, impl, dtype, threads. A record holds one
run (`<run_id>-<random>`, written when the run ends) or many (`sweep-<random>`, written when a
sweep ends from the one-run records of its runs: compaction). Identifiers are read from the
files, never from folder names.

Any number of processes may write into one results directory at once (docs/results.md):
- a record is written whole into a hidden folder (`.tmp-*`) and renamed into place under a name
  no other process picks: readers see all of it or none, no writer overwrites another's;
- a record is never changed in place; it is removed only once a record placed before holds its
  rows or newer records of all its runs (a compaction, a rerun);
- a run recorded more than once is read from the record that started it last (`started_at`);
- removals wait for readers (a shared / exclusive flock on RESULTS_DIR/.lock), and readers list
  the records again until a listing shows none they have not read, which covers file systems
  without locks as far as a listing shows every record that exists while it is made.
A table that is truncated, altered, missing or not ours costs its record alone: readers skip the
record with one warning line naming the file (`strict`: Damaged is raised), and its runs count as
not recorded, so a rerun does them again.
"""
import contextlib
import fcntl
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd

TABLES = ("runs", "metrics", "profiles", "throughput")
BACKEND = ["device", "impl", "dtype", "threads"]
COLUMNS = {
    "runs": ["run_id", "status", "cell", "task", "seq_len", "hidden_size", "seed", "n_params", *BACKEND],
    "metrics": ["run_id", "step", "split", "metric", "value", "layer", "param", "gate", *BACKEND],
    "profiles": ["run_id", "step", "t", "quantity", "layer", "value", *BACKEND],
    "throughput": ["run_id", "pass", "path", "seq_len", "batch_size", "input_size", "hidden_size", "tokens_per_s",
                   "seconds", "seconds_q1", "seconds_q3", "repeats", "ref_seconds", "macs_per_token", "saved_bytes",
                   "peak_bytes", *BACKEND],
}
REQUIRED = {name: ["run_id", *BACKEND] for name in TABLES} | {"runs": ["run_id", "status", "started_at", *BACKEND]}
DONE = ("ok", "diverged")  # statuses a rerun skips; 'failed' runs are retried
SUMS = "sha256.json"  # a record's file -> its SHA-256 (records written before it have none)
ABANDONED_S = 24 * 3600  # a hidden folder untouched this long is abandoned, whoever made it
DEAD_S = 600  # ... and one of a process gone from this machine, untouched this long (a write takes seconds)


class Damaged(ValueError):
    """A table that cannot be read as one of ours: truncated, garbled, missing or foreign."""


class _Vanished(Exception):
    """A record removed while it was read: its rows are in a record placed before the removal."""


class _NotARecord(Exception):
    """A visible name that is a file, or a folder with neither checksums nor a runs table: not
    ours, left alone."""


def reason(e: BaseException) -> str:
    """An error's first line, for one-line messages (its type where it says nothing)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# Settings (dotted paths) added after runs were recorded, with the value those runs ran at: at that
# value a setting is left out of the run's id (so that the older records keep counting) and filled
# into the older records when loaded.
ADDED = {"embed": False, "cell.bidirectional": False}


def run_id(config: dict) -> str:
    """A stable hash of everything that determines a run's result (ADDED settings at their old
    value left out)."""
    return hashlib.sha1(json.dumps(_without_added(config), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _without_added(config: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in config.items():
        path = f"{prefix}{k}"
        if path in ADDED and v == ADDED[path]:
            continue
        out[k] = _without_added(v, f"{path}.") if isinstance(v, dict) else v
    return out


# ---- writing -------------------------------------------------------------------------------------
def write_whole(path: Path, data: str | bytes | Callable[[Path], None]) -> None:
    """A file written whole: into a name of this process's beside it (`data` as text or bytes, or
    `data(name)` writes it), then renamed over `path`, so that a reader sees the old file or the new
    one, never half of one; where the write fails, nothing is left behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(2)}.tmp")
    try:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already where the rename succeeded


def _hidden(root: Path) -> Path:
    """A name in root that no other process, here or on another machine, picks: .tmp-PID-RANDOM-HOST."""
    return root / f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{socket.gethostname()}"


def _place(root: Path, name: str, tables: dict[str, pd.DataFrame]) -> Path:
    """A new record `name-RANDOM` in root: its tables and their SHA-256 (SUMS) written into a
    hidden folder, then renamed into place. Whatever fails (a full disk, a value parquet cannot
    hold), nothing is left behind."""
    scratch = _hidden(root)
    try:
        scratch.mkdir()
        sums = {}
        for table, frame in tables.items():
            data = frame.to_parquet(index=False)
            (scratch / f"{table}.parquet").write_bytes(data)
            sums[f"{table}.parquet"] = hashlib.sha256(data).hexdigest()
        (scratch / SUMS).write_text(json.dumps(sums, indent=1))
        folder = root / f"{name}-{secrets.token_hex(4)}"
        os.rename(scratch, folder)
        return folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # gone already where the rename succeeded


@contextlib.contextmanager
def _guard(root: Path, exclusive: bool):
    """Readers share RESULTS_DIR/.lock, removals hold it alone, so no record is removed while a
    reader lists and reads. Writers make the file (prepare does, before any run), readers never
    do. Where it cannot be had (a folder no writer of this version has touched; a file system
    without locks), nothing is held: readers then rely on listing again."""
    try:
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY, 0o666)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove(root: Path, folders: list[Path]) -> None:
    """Take records away whole (each renamed out of sight, then deleted), once no reader is
    reading. Best effort: a record another process took first, or one this user may not move,
    stays where it is, and readers still take each run from its latest record."""
    with _guard(root, exclusive=True):
        gone = []
        for folder in folders:
            target = _hidden(root)
            with contextlib.suppress(OSError):
                os.rename(folder, target)
                gone.append(target)
    for target in gone:
        shutil.rmtree(target, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove_abandoned(results_dir) -> None:
    """Delete the hidden folders of writers that are gone: of a process no longer running on this
    machine and untouched for DEAD_S, or untouched for ABANDONED_S whoever made them."""
    for path in Path(results_dir).glob(".tmp-*"):
        parts = path.name.removeprefix(".tmp-").split("-", 2)  # as _hidden names them
        pid, host = (parts[0], parts[2]) if len(parts) == 3 else ("", "")
        try:
            idle = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            continue
        dead = host == socket.gethostname() and pid.isdigit() and not alive(int(pid))
        if (dead and idle > DEAD_S) or idle > ABANDONED_S:
            shutil.rmtree(path, ignore_errors=True)


def prepare(results_dir) -> None:
    """Create results_dir if needed and prove it writable; OSError says why not."""
    root = Path(results_dir)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} is a file")
    root.mkdir(parents=True, exist_ok=True)
    probe = _hidden(root)
    try:
        probe.mkdir()
        (probe / "probe").write_bytes(b"")
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    (root / ".lock").touch()  # the lock readers take (_guard); they never make it
    remove_abandoned(root)


def _superseded(placed: pd.DataFrame, keep: set[Path], candidates) -> list[Path]:
    """The records among `candidates` (not in `keep`) each of whose runs started earlier than
    its record in `placed` (run_id, started_at): nothing in them is read any more."""
    newest = dict(zip(placed.run_id, placed.started_at))
    out = []
    for folder in candidates:
        if folder in keep:
            continue
        try:
            runs = _summary(folder)["runs"]
        except Damaged:  # another of its tables is damaged: superseded all the same where its runs table reads
            try:
                runs = _read(folder, "runs").reindex(columns=SUMMARY)
            except (Damaged, _Vanished, _NotARecord):
                continue
        except (_Vanished, _NotARecord):
            continue
        if len(runs) and all(rid in newest and at < newest[rid] for rid, at in zip(runs.run_id, runs.started_at)):
            out.append(folder)
    return out


def write_run(results_dir, rid: str, runs: dict, tables: dict[str, list[dict]]) -> Path:
    """Record one run: a new record holding `runs` (its row) and `tables` (metrics, profiles,
    throughput: lists of rows, which get the run's id and backend columns). Older one-run
    records of the same run are removed once it is in place."""
    root = Path(results_dir)
    tag = {"run_id": rid, **{k: runs[k] for k in BACKEND}}
    frames = {}
    for name in TABLES[1:]:
        frame = pd.DataFrame([{**r, **tag} for r in tables.get(name, [])], columns=COLUMNS[name])
        frames[name] = frame.astype({"layer": "Int64"}) if "layer" in frame else frame  # None: not per layer
    folder = _place(root, rid, {**frames, "runs": pd.DataFrame([runs])})
    # older one-run records of this run: found by name, judged by their tables
    _remove(root, _superseded(pd.DataFrame([runs]).reindex(columns=SUMMARY), {folder}, root.glob(f"{rid}-*")))
    return folder


def compact(results_dir, rids: list[str]) -> Path | None:
    """Merge the one-run records of `rids` into one new record (`sweep-*`), keeping the latest
    record of each run; then remove them, and every record all of whose runs the new one holds
    newer (a sweep's older merge, before a rerun). None when fewer than two are found. Records
    another process compacts at the same time are merged by both or by one: never lost."""
    root, wanted = Path(results_dir), set(rids)
    remove_abandoned(root)
    listed, found = _listing(root), {}
    for folder in listed:
        try:
            runs = _summary(folder)["runs"]
            if len(runs) == 1 and runs.run_id.iloc[0] in wanted:
                found[folder] = _read_record(folder, TABLES)
        except (Damaged, _Vanished, _NotARecord):  # readers warn of a damaged one; a vanished one is merged
            continue
    if len(found) < 2:
        return None
    merged = _latest([(f.name, t) for f, t in found.items()], TABLES)
    target = _place(root, "sweep", merged)
    _remove(root, [*found, *_superseded(merged["runs"].reindex(columns=SUMMARY), {*found, target}, listed)])
    return target


# ---- reading -------------------------------------------------------------------------------------
_warned: set[str] = set()


def _warn(problem: Damaged) -> None:
    """One line on stderr, once per process and file."""
    if str(problem) not in _warned:
        _warned.add(str(problem))
        print(f"rnnbench: warning: skipped {problem}; its runs count as not recorded", file=sys.stderr)


def _listing(root: Path) -> list[Path]:
    """Every visible name in root, unchecked: a check here (does it exist, is it a folder) could
    drop a record removed since the listing without a trace; reading it says _Vanished instead."""
    return sorted(root / name for name in os.listdir(root) if not name.startswith(".")) if root.is_dir() else []


def _sums(folder: Path) -> dict[str, str]:
    """The record's checksums, {} for a record written before they were."""
    try:
        sums = json.loads((folder / SUMS).read_text())
    except (FileNotFoundError, NotADirectoryError):
        if not folder.exists():
            raise _Vanished(folder) from None
        if not (folder / "runs.parquet").exists():  # a file, or a folder of someone else's
            raise _NotARecord(folder) from None
        return {}
    except (ValueError, OSError) as e:
        raise Damaged(f"{folder / SUMS}: {reason(e)}") from None
    if not isinstance(sums, dict):
        raise Damaged(f"{folder / SUMS}: not a file -> checksum mapping")
    return sums


def _read(folder: Path, name: str, sums: dict[str, str] | None = None) -> pd.DataFrame:
    """One table of a record, checked against the record's checksums and for our columns."""
    path = folder / f"{name}.parquet"
    sums = _sums(folder) if sums is None else sums
    try:
        data = path.read_bytes()
        if path.name in sums and hashlib.sha256(data).hexdigest() != sums[path.name]:
            raise Damaged(f"{path}: its content differs from what was written (checksum)")
        frame = pd.read_parquet(io.BytesIO(data))
    except Damaged:
        raise
    except Exception as e:
        if not folder.exists():
            raise _Vanished(folder) from None
        raise Damaged(f"{path}: {'missing' if isinstance(e, FileNotFoundError) else reason(e)}") from None
    missing = [c for c in REQUIRED[name] if c not in frame.columns]
    if missing:
        raise Damaged(f"{path}: not an rnnbench table (no column {', '.join(missing)})")
    return frame


SUMMARY = ["run_id", "status", "started_at", "code", "valid_score"]  # None in records made before a column
_verified: dict[Path, tuple[tuple, pd.DataFrame]] = {}  # record -> its files' signature, its runs' SUMMARY


def _signature(folder: Path) -> tuple:
    """(inode, size, mtime) of each table: a record is never changed in place, but a person may."""
    try:
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in ((folder / f"{n}.parquet").stat() for n in TABLES))
    except (FileNotFoundError, NotADirectoryError):  # not all there: read it to say what it is
        return ()


def _read_record(folder: Path, names: tuple[str, ...], signature: tuple | None = None) -> dict[str, pd.DataFrame]:
    """The tables `names` (runs always) of one record, each verified; the record's other tables
    are verified once per process, since any damage costs the whole record."""
    signature = _signature(folder) if signature is None else signature
    known = signature and _verified.get(folder, ((),))[0] == signature
    sums = _sums(folder)
    tables = {name: _read(folder, name, sums) for name in (("runs", *names) if known else TABLES)}
    ids = set(tables["runs"].run_id)
    for name, frame in tables.items():
        if not set(frame.run_id) <= ids:
            raise Damaged(f"{folder / name}.parquet: rows of runs that its runs.parquet does not hold")
    _verified[folder] = signature, tables["runs"].reindex(columns=SUMMARY)
    return {name: tables[name] for name in dict.fromkeys(("runs", *names))}


def _summary(folder: Path) -> dict[str, pd.DataFrame]:
    """{'runs': SUMMARY of the record's runs}, read once per process."""
    signature = _signature(folder)
    known, summary = _verified.get(folder, ((), None))
    if not signature or known != signature:
        summary = _read_record(folder, ("runs",), signature)["runs"].reindex(columns=SUMMARY)
    return {"runs": summary}


def _scan(root: Path, read: Callable[[Path], dict], strict: bool) -> tuple[list[tuple[str, dict]], list[str]]:
    """read(record) for every record in root, with removals held off, listed again until a
    listing shows no folder not read yet (a record that vanished while read was removed after
    its rows were placed in a record that a later listing shows); and what was wrong with each
    damaged record, skipped."""
    done, out, problems = set(), [], []
    with _guard(root, exclusive=False):
        while new := [f for f in _listing(root) if f.name not in done]:
            for folder in new:
                done.add(folder.name)
                try:
                    out.append((folder.name, read(folder)))
                except (_Vanished, _NotARecord):
                    continue
                except Damaged as problem:
                    if strict:
                        raise
                    _warn(problem)
                    problems.append(str(problem))
    return out, problems


def _latest(records: list[tuple[str, dict]], names) -> dict[str, pd.DataFrame]:
    """One table per name from many records, each run's rows from the record that started it
    last (a run recorded twice: ran twice, retried, or compacted by two processes)."""
    runs = [t["runs"].assign(_record=key) for key, t in records]
    keep = set()  # (run_id, record) of each run's latest record
    if runs:
        latest = pd.concat(runs).sort_values("started_at", kind="stable").drop_duplicates("run_id", keep="last")
        keep = set(zip(latest.run_id, latest._record))
    tables = {}
    for name in names:
        frames = [t[name][[(rid, key) in keep for rid in t[name].run_id]] for key, t in records]
        frames = [f for f in frames if not f.empty]
        tables[name] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS[name])
    return tables


def index(results_dir) -> pd.DataFrame:
    """SUMMARY (run_id, status, started_at, code, valid_score) of every run's latest readable record."""
    records, _ = _scan(Path(results_dir), _summary, strict=False)
    runs = _latest(records, ("runs",))["runs"]
    return runs if not runs.empty else pd.DataFrame(columns=SUMMARY)


def status_of(results_dir, rid: str) -> str | None:
    """The recorded status of run `rid`, or None when no readable record holds it."""
    found = index(results_dir).query("run_id == @rid")
    return None if found.empty else found.status.iloc[0]


def recorded(results_dir, rids: list[str]) -> set[str]:
    """Which of `rids` have a readable record."""
    return set(rids) & set(index(results_dir).run_id)


def scan(results_dir, names: tuple[str, ...] = TABLES, strict: bool = False) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """load_tables, and 'FILE: what is wrong' for each damaged record it skipped."""
    records, problems = _scan(Path(results_dir), lambda f: _read_record(f, names), strict)
    tables = _latest(records, names)
    if "runs" in tables and len(tables["runs"]):  # runs recorded before a setting of ADDED: its old value
        runs = tables["runs"]
        for key, value in ADDED.items():
            runs[f"config.{key}"] = runs[f"config.{key}"].fillna(value) if f"config.{key}" in runs else value
    return tables, problems


def load_tables(results_dir, names: tuple[str, ...] = TABLES, strict: bool = False) -> dict[str, pd.DataFrame]:
    """{'runs', 'metrics', 'profiles', 'throughput'} (or just `names`) -> DataFrame, each run's
    rows from its latest record under results_dir (tables a run did not write are empty). A
    damaged record is skipped with one warning line naming its file; `strict`: Damaged is raised.
    Runs recorded before a setting of ADDED existed show the value they ran at."""
    return scan(results_dir, names, strict)[0]
