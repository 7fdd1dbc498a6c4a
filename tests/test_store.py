"""The results store loses nothing: concurrent writers and compactions (real processes), damaged
and foreign tables, write failures (a full disk, a read-only folder), and what killed processes
leave behind."""
import errno
import multiprocessing
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from bench import report, results, run
from bench.results import load_tables
from shrunk import EXE, SHRINK


# ---- many writers at once ---------------------------------------------------------------------
def record(rid: str) -> tuple[dict, dict]:
    """A new record of run `rid`: its row and tables. Every record of a run is told apart by its
    `attempt` (the time it was made), which its metric rows carry too."""
    now = datetime.now(timezone.utc)
    attempt = now.timestamp()
    runs = {"run_id": rid, "status": "ok", "cell": "lstm", "task": "adding", "seq_len": 10, "hidden_size": 4,
            "seed": int(rid[1:]), "n_params": 1, "device": "cpu", "impl": "loop", "dtype": "float32", "threads": 1,
            "attempt": attempt, "started_at": now.isoformat(timespec="microseconds")}
    metrics = [{"step": step, "split": "test", "metric": "loss", "value": attempt + step, "layer": None,
                "param": None, "gate": None} for step in range(3)]
    return runs, {"metrics": metrics}


def check_whole(t: dict) -> None:
    """Each run once, with the rows of its own record and no other's."""
    runs, metrics = t["runs"], t["metrics"]
    assert runs.run_id.is_unique and set(metrics.run_id) == set(runs.run_id)
    if runs.empty:  # read before the first record was placed
        return
    attempts = dict(zip(runs.run_id, runs.attempt))
    for rid, rows in metrics.groupby("run_id"):
        assert rows.value.tolist() == [attempts[rid] + step for step in range(3)], rid


def writer(root: str, rids: list[str], rounds: int, log: str) -> None:
    """A sweep in a loop: record each of its runs (again), then compact them; logs its attempts."""
    made = []
    for _ in range(rounds):
        for rid in rids:
            runs, tables = record(rid)
            results.write_run(root, rid, runs, tables)
            made.append((rid, runs["attempt"]))
        results.compact(root, rids)
    Path(log).write_text("\n".join(f"{rid} {attempt!r}" for rid, attempt in made))


def reader(root: str, writing, log: str) -> None:
    """Load while the writers write: every load whole, and no run once read missing later."""
    seen, loads = set(), 0
    while writing.is_set() or not loads:
        t = load_tables(root, strict=True)
        check_whole(t)
        assert seen <= set(t["runs"].run_id), f"lost while reading: {seen - set(t['runs'].run_id)}"
        seen, loads = set(t["runs"].run_id), loads + 1
    Path(log).write_text(str(loads))


def test_concurrent_writers_compactions_and_readers_lose_nothing(tmp_path):
    """Four processes record and compact overlapping sets of runs over and over into one folder
    while a fifth loads it: every load is whole, and at the end each run loads once, from the
    record that started last."""
    root, logs = tmp_path / "runs", tmp_path / "logs"
    root.mkdir(), logs.mkdir()
    pool = [f"r{i}" for i in range(12)]
    sets = [pool[0:6], pool[3:9], pool[6:12], pool[::2]]
    ctx = multiprocessing.get_context("spawn")
    writing = ctx.Event()
    writing.set()
    writers = [ctx.Process(target=writer, args=(str(root), rids, 4, str(logs / f"w{i}"))) for i, rids in enumerate(sets)]
    watcher = ctx.Process(target=reader, args=(str(root), writing, str(logs / "reader")))
    for p in (*writers, watcher):
        p.start()
    for p in writers:
        p.join(timeout=180)
        assert p.exitcode == 0
    writing.clear()
    watcher.join(timeout=60)
    assert watcher.exitcode == 0 and int((logs / "reader").read_text()) >= 3  # it read while they wrote
    t = load_tables(root, strict=True)
    check_whole(t)
    made = pd.DataFrame([line.split() for w in logs.glob("w*") for line in w.read_text().splitlines()],
                        columns=["run_id", "attempt"]).astype({"attempt": float})
    latest = made.groupby("run_id").attempt.max()
    assert dict(zip(t["runs"].run_id, t["runs"].attempt)) == latest.to_dict()
    assert not list(root.glob(".tmp-*"))  # every writer cleaned up after itself


def without_locks(monkeypatch):
    def no_lock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(results.fcntl, "flock", no_lock)


def test_a_load_during_a_merge_misses_no_run_where_there_are_no_locks(tmp_path, monkeypatch):
    """Another process merges the records right after a reader listed the folder, with no lock to
    hold it off: the reader finds them gone, lists again and finds the merged record."""
    without_locks(monkeypatch)
    for rid in ("r1", "r2"):
        results.write_run(tmp_path, rid, *record(rid))
    listdir, merged = os.listdir, []

    def merge_after_listing(path):
        names = listdir(path)
        if not merged and Path(path) == tmp_path:
            merged.append(None)  # once: the merge lists the folder too
            merged[0] = results.compact(tmp_path, ["r1", "r2"])
        return names
    monkeypatch.setattr(results.os, "listdir", merge_after_listing)
    t = load_tables(tmp_path, strict=True)
    assert merged[0] is not None and sorted(t["runs"].run_id) == ["r1", "r2"]
    check_whole(t)


def merge(root: str) -> None:
    results.compact(root, ["r1", "r2"])


def test_removals_wait_until_readers_are_done(tmp_path):
    """While a reader holds the folder, a merge in another process places its record but removes
    the records it merged only once the reader is done."""
    for rid in ("r1", "r2"):
        results.write_run(tmp_path, rid, *record(rid))
    ones = results._listing(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    with results._guard(tmp_path, exclusive=False):
        merging = ctx.Process(target=merge, args=(str(tmp_path),))
        merging.start()
        deadline = time.time() + 60
        while len(results._listing(tmp_path)) < 3 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert merging.is_alive() and all(f.exists() for f in ones)  # placed, waiting to remove
    merging.join(timeout=60)
    assert merging.exitcode == 0 and not any(f.exists() for f in ones) and len(results._listing(tmp_path)) == 1


def test_two_sweeps_that_share_runs_started_at_once_record_every_run_once(tmp_path):
    """The rnnbench command twice at once into one results_dir, in three trials (the same runs,
    overlapping runs, the same again): both exit 0 and count all their runs; each run loads once,
    with its own rows. (Before records were placed whole under new names, such trials lost every
    run or made the folder unreadable in 2 of 20.)"""
    for trial, seeds in enumerate([("0,1,2,3", "0,1,2,3"), ("0,1,2,3", "2,3,4,5"), ("0,1,2,3", "0,1,2,3")]):
        root = tmp_path / f"trial{trial}"
        cmds = [[str(EXE), "-m", *SHRINK, f"results_dir={root}", f"seed={s}"] for s in seeds]
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-2000:]
            assert "sweep progress: 4/4 runs recorded" in out
        t = load_tables(root, strict=True)
        assert sorted(t["runs"].seed) == sorted({int(s) for both in seeds for s in both.split(",")})
        assert t["runs"].run_id.is_unique and set(t["metrics"].run_id) == set(t["runs"].run_id)
        keys = ["run_id", "step", "split", "metric", "layer", "param", "gate"]
        assert not t["metrics"].fillna({"param": "", "gate": ""}).duplicated(keys).any()  # one record's rows each
        assert not list(root.glob(".tmp-*"))


def test_a_rerun_sweep_leaves_one_record(cli):
    """rerun=true records every run anew; the merge at its end removes the older merge, all of
    whose runs it holds newer: the folder does not grow with reruns."""
    cli("-m", "seed=0,1")
    first = load_tables(cli.results)["runs"]
    cli("-m", "seed=0,1", "rerun=true")
    assert len(results._listing(cli.results)) == 1
    again = load_tables(cli.results)["runs"]
    both = first.merge(again, on="run_id", suffixes=("_first", "_again"))
    assert len(both) == 2 and (both.started_at_again > both.started_at_first).all()


# ---- damaged and foreign tables ---------------------------------------------------------------
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    """16 bytes in the middle of the file flipped: a data page, which its checksum guards."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0x5A for b in data[middle:middle + 16])
    path.write_bytes(bytes(data))


def records_of_three_runs(cli) -> dict[int, Path]:
    """seed -> the record of that seed's run, three single runs."""
    for seed in range(3):
        assert cli(f"seed={seed}")[0] == 0
    return {int(pd.read_parquet(r / "runs.parquet").seed.iloc[0]): r for r in results._listing(cli.results)}


@pytest.mark.parametrize("damage", [truncate, garble])
@pytest.mark.parametrize("table", ["runs", "metrics", "profiles", "throughput"])
def test_a_damaged_table_costs_its_record_alone_and_a_rerun_redoes_it(cli, capsys, damage, table):
    recs = records_of_three_runs(cli)
    damage(recs[1] / f"{table}.parquet")
    t = load_tables(cli.results)
    err = capsys.readouterr().err.strip().splitlines()
    assert sorted(t["runs"].seed) == [0, 2] and set(t["metrics"].run_id) == set(t["runs"].run_id)
    assert len(err) == 1 and err[0].startswith("rnnbench: warning: skipped ") and f"{table}.parquet" in err[0]
    with pytest.raises(results.Damaged, match=f"{table}.parquet"):
        load_tables(cli.results, strict=True)
    code, out, _ = cli("-m", "seed=0,1,2")  # the damaged run is not recorded: done again
    assert code == 0 and out.count("skipped") == 2 and "3/3 runs recorded" in out
    assert sorted(load_tables(cli.results)["runs"].seed) == [0, 1, 2]
    # the damaged record is removed with the rest once merged, unless its runs table, which says
    # which runs it holds, is the damaged one
    assert recs[1].exists() == (table == "runs")


def test_the_report_skips_a_damaged_record_says_so_and_strict_stops(cli, capsys):
    recs = records_of_three_runs(cli)
    truncate(recs[2] / "metrics.parquet")
    report.main([str(cli.results)])
    out, err = capsys.readouterr()
    assert "rnnbench-report:" in out and "Traceback" not in err
    text = (cli.results / "report.md").read_text()
    assert "2 runs" in text and "Skipped, damaged" in text and "metrics.parquet" in text
    with pytest.raises(SystemExit) as stop:
        report.main([str(cli.results), "--strict"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "metrics.parquet" in err[0]


@pytest.mark.parametrize("damage", ["sums garbled", "table missing"])
def test_damaged_checksums_or_a_missing_table_cost_the_record(cli, capsys, damage):
    recs = records_of_three_runs(cli)
    if damage == "sums garbled":
        (recs[0] / results.SUMS).write_text("{not json")
    else:
        (recs[0] / "profiles.parquet").unlink()
    assert sorted(load_tables(cli.results)["runs"].seed) == [1, 2]
    err = capsys.readouterr().err
    assert (f"{recs[0] / results.SUMS}:" if damage == "sums garbled" else f"{recs[0] / 'profiles.parquet'}: missing") in err


def test_records_written_before_checksums_still_load_and_truncation_is_still_seen(cli, capsys):
    """A results folder of an earlier version: tables without sha256.json, in a folder named by
    the run id alone."""
    recs = records_of_three_runs(cli)
    for seed, folder in recs.items():
        (folder / results.SUMS).unlink()
        folder.rename(cli.results / pd.read_parquet(folder / "runs.parquet").run_id.iloc[0])
    assert sorted(load_tables(cli.results, strict=True)["runs"].seed) == [0, 1, 2]
    truncate(next(iter(results._listing(cli.results))) / "metrics.parquet")
    assert len(load_tables(cli.results)["runs"]) == 2 and "metrics.parquet" in capsys.readouterr().err


def test_a_record_that_cannot_be_removed_stays_and_the_newer_one_is_read(cli, monkeypatch):
    """Removing an older record is tidying, not recording: where it fails (a folder this user may
    not move), the run is still recorded and loads from its newer record."""
    assert cli("seed=0")[0] == 0
    rename = os.rename

    def no_moving_records(src, dst):  # placing a new record (from .tmp-*) still works
        if not Path(src).name.startswith(".tmp-"):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        rename(src, dst)
    monkeypatch.setattr(results.os, "rename", no_moving_records)
    code, out, err = cli("seed=0", "rerun=true")
    assert code == 0 and "NOT RECORDED" not in err and len(results._listing(cli.results)) == 2
    runs = load_tables(cli.results)["runs"]
    assert len(runs) == 1 and str(runs.started_at.iloc[0]) == max(
        pd.read_parquet(f / "runs.parquet").started_at.iloc[0] for f in results._listing(cli.results))


def test_files_and_folders_beside_the_records_are_passed_over(cli, capsys):
    cli("seed=0")
    (cli.results / "report.md").write_text("# a report")
    (cli.results / "notes").mkdir()
    (cli.results / "notes" / "todo.txt").write_text("more seeds")
    assert len(load_tables(cli.results, strict=True)["runs"]) == 1 and capsys.readouterr().err == ""


def test_a_foreign_table_is_named_and_skipped(cli, capsys):
    cli("seed=0")
    foreign = cli.results / "someone-elses"
    foreign.mkdir()
    pd.DataFrame({"x": [1, 2]}).to_parquet(foreign / "runs.parquet")
    assert len(load_tables(cli.results)["runs"]) == 1
    err = capsys.readouterr().err
    assert f"{foreign / 'runs.parquet'}: not an rnnbench table (no column run_id" in err


# ---- write failures ---------------------------------------------------------------------------
def fail_writes(monkeypatch, when):
    """Every parquet write of a run whose row `when` accepts raises a full disk's OSError."""
    real = results._place

    def place(root, name, tables):
        if name != "sweep" and when(tables["runs"].iloc[0]):
            real_write = pd.DataFrame.to_parquet

            def full(self, *a, **k):
                raise OSError(28, "No space left on device")
            monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
            try:
                return real(root, name, tables)
            finally:
                monkeypatch.setattr(pd.DataFrame, "to_parquet", real_write)
        return real(root, name, tables)
    monkeypatch.setattr(results, "_place", place)


def test_a_write_failure_is_one_line_leaves_nothing_and_every_failed_job_is_named(cli, monkeypatch):
    fail_writes(monkeypatch, lambda row: row.seed in (1, 3))
    code, out, err = cli("-m", "seed=0,1,2,3")
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err
    assert [ln for ln in lines if "NOT RECORDED" in ln] == [
        f"rnnbench: lstm on adding (T=12, seed {s}): NOT RECORDED, writing to {cli.results} failed: "
        f"[Errno 28] No space left on device" for s in (1, 3)]
    assert lines[-1].startswith("rnnbench: error: 2 of 4 runs are not recorded")
    assert sorted(load_tables(cli.results)["runs"].seed) == [0, 2]
    assert not [p for p in cli.results.iterdir() if p.name.startswith(".tmp-")]


UNSHARE = shutil.which("unshare")


def in_mount_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`script` in a private mount namespace (a user namespace too, so no privilege is needed),
    with $D a folder it may mount over; skipped where the platform does not allow it."""
    probe = subprocess.run([UNSHARE, "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True) if UNSHARE else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no unshare with mounts in a user namespace here: cannot make a full or read-only disk")
    env = {**os.environ, "D": str(tmp_path), "RNNBENCH": str(EXE), "SHRINK": " ".join(SHRINK)}
    return subprocess.run([UNSHARE, "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_a_full_disk_at_the_end_of_a_run_is_one_line_and_leaves_no_partial_files(tmp_path):
    done = in_mount_namespace(
        'mount -t tmpfs -o size=1m tmpfs "$D" && dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null;'
        ' "$RNNBENCH" $SHRINK results_dir="$D/runs"; echo "exit $?"; ls -A "$D/runs"', tmp_path)
    out, err = done.stdout.strip().splitlines(), done.stderr.strip().splitlines()
    assert out[out.index("exit 1"):] == ["exit 1", ".lock"], done.stdout  # results_dir holds the store's lock alone
    assert [ln for ln in err if "NOT RECORDED" in ln and "No space left on device" in ln], done.stderr
    assert "Traceback" not in done.stderr and err[-1].startswith("rnnbench: error: 1 of 1 runs are not recorded")


@pytest.mark.slow
def test_a_read_only_results_dir_is_refused_before_training(tmp_path):
    done = in_mount_namespace('mount -t tmpfs -o ro tmpfs "$D" && "$RNNBENCH" $SHRINK results_dir="$D/runs"', tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "results_dir=" in done.stderr and "cannot be written (Read-only file system)" in done.stderr


def test_a_results_dir_that_is_a_file_is_refused_before_training(cli):
    cli.results.write_text("not a folder")
    code, out, err = cli()
    assert code == 2 and err.count("\n") == 1 and f"results_dir={cli.results} cannot be written" in err
    assert "is a file" in err and cli.results.read_text() == "not a folder"


# ---- what killed processes leave behind -------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_what_killed_processes_left_is_removed_and_live_writers_are_left_alone(cli):
    pid, host = dead_pid(), os.uname().nodename
    cli.results.mkdir()
    folders = {  # what, whose: removed?
        "dead": (f".tmp-{pid}-0badcafe-{host}", True),  # killed here, untouched for a while
        "just dead": (f".tmp-{pid}-1badcafe-{host}", False),  # perhaps another container's of that name
        "live": (f".tmp-{os.getpid()}-0badcafe-{host}", False),  # this process: alive
        "elsewhere": (f".tmp-{pid}-0badcafe-another-host", False),  # cannot tell: left for a day
    }
    for name, _ in folders.values():
        (cli.results / name).mkdir()
        (cli.results / name / "metrics.parquet").write_bytes(b"partial")
    idle = time.time() - results.DEAD_S - 60
    os.utime(cli.results / folders["dead"][0], (idle, idle))
    assert cli("-m", "seed=0,1")[0] == 0
    assert {k: not (cli.results / name).exists() for k, (name, _) in folders.items()} == \
        {k: removed for k, (_, removed) in folders.items()}
    day_old = time.time() - results.ABANDONED_S - 60
    os.utime(cli.results / folders["elsewhere"][0], (day_old, day_old))
    results.remove_abandoned(cli.results)
    assert not (cli.results / folders["elsewhere"][0]).exists() and (cli.results / folders["live"][0]).exists()


# ---- values refused before any training -------------------------------------------------------
@pytest.mark.parametrize("args,problem", [
    (["train.lr=nan"], "train.lr=nan is not valid; allowed: a finite number"),
    (["train.lr=inf"], "train.lr=inf is not valid; allowed: a finite number"),
    (["train.clip=nan"], "train.clip=nan is not valid; allowed: a finite number"),
    (["+cell.forget_bias=-inf"], "cell.forget_bias=-inf is not valid; allowed: a finite number"),
    (["seed=100000000000000000000"], "seed=100000000000000000000 is out of range; allowed: an integer from -2^63"),
    (["train.steps=9223372036854775808"], "train.steps=9223372036854775808 is out of range"),
    (["task.seq_len=1000000000"], "this run needs at least"),
    (["cell.hidden_size=1000000"], "this run needs at least"),
    (["mode=throughput", "throughput.batch_size=100000000"], "throughput.batch_size"),
    (["+cell.batch_first=true"], "cell.batch_first=True is not valid"),
    (["results_dir=résultats"], "quoted: 'key=\"value\"'"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_values_that_cannot_run_are_refused_with_one_line(cli, args, problem):
    code, out, err = cli(*args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("rnnbench: error: ") and problem in err, err
    assert not cli.results.exists()


def test_the_memory_estimate_names_the_need_and_the_limit():
    """(The experiments at their full sizes pass it: test_experiments plans every job.)"""
    with initialize_config_dir(config_dir=str(run.CONF_DIR), version_base="1.3"):
        with pytest.raises(ValueError, match=r"needs at least [\d,.]+ GiB of memory \(a training or evaluation step: "
                                             r"[\d,.]+ GiB\), more than the [\d,.]+ GiB of backend.device=cpu"):
            run.plan(compose("config", overrides=["task.seq_len=100000000"]))


def test_a_setting_added_later_keeps_older_records_counting(tmp_path):
    """A run recorded before `embed` existed keeps its id (embed at its old value is left out of
    the id) and loads with the value it ran at."""
    config = {"mode": "train", "seed": 0, "cell": {"hidden_size": 4}}
    assert results.run_id(config) == results.run_id({**config, "embed": False})
    assert results.run_id(config) == results.run_id({**config, "cell": {"hidden_size": 4, "bidirectional": False}})
    assert results.run_id({**config, "embed": True}) != results.run_id(config)
    assert results.run_id({**config, "cell": {"hidden_size": 4, "bidirectional": True}}) != results.run_id(config)
    runs, tables = record("r0")
    results.write_run(tmp_path, "r0", runs, tables)
    results.write_run(tmp_path, "r1", {**record("r1")[0], "config.embed": True}, tables)
    for loaded in (load_tables(tmp_path)["runs"], results.scan(tmp_path)[0]["runs"]):  # the report reads scan
        loaded = loaded.set_index("run_id")
        assert loaded["config.embed"].to_dict() == {"r0": False, "r1": True}
        assert loaded["config.cell.bidirectional"].to_dict() == {"r0": False, "r1": False}
