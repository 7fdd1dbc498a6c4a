"""rnnbench installed from a wheel, not the checkout: its configs ship inside the package, so the
commands run from any folder, and a user's own config folder extends them (--config-dir)."""
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pandas as pd
import pytest

from shrunk import ROOT

SOURCES = ("bench", "cells", "conf", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment holding rnnbench's wheel; its dependencies are this
    environment's (a path entry: nothing downloads), and not this checkout's rnnbench."""
    pytest.importorskip("setuptools", minversion="68", reason="the wheel is built here, without downloading a builder")
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy: the build writes build/ and *.egg-info where it runs
    src.mkdir()
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "wheel")], check=True, capture_output=True)
    (wheel,) = (tmp / "wheel").glob("rnnbench-*.whl")
    env = tmp / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True)
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # a plain path line: this environment's packages, without running its .pth files (the editable rnnbench's)
    Path(purelib, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env / "bin"


@pytest.mark.slow
def test_the_wheel_runs_from_another_folder_and_takes_a_users_configs(installed, tmp_path):
    mine = tmp_path / "myconf" / "task"
    mine.mkdir(parents=True)
    (mine / "adding_short.yaml").write_text("_target_: bench.tasks.adding\nseq_len: 12\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([installed / "python", "-c", "import bench.run; print(bench.run.CONF_DIR)"],
                           cwd=elsewhere, check=True, capture_output=True, text=True).stdout.strip()
    assert "site-packages" in where and not where.startswith(str(ROOT))  # the wheel's configs, not the checkout's
    done = subprocess.run([installed / "rnnbench", "--config-dir", str(tmp_path / "myconf"), "experiment=smoke",
                           "task=adding_short", "results_dir=out", "progress=false"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    runs = pd.concat(pd.read_parquet(p) for p in (elsewhere / "out").glob("*/runs.parquet"))
    assert runs.status.tolist() == ["ok"] and runs.seq_len.tolist() == [12]
    report = subprocess.run([installed / "rnnbench-report", "out"], cwd=elsewhere, capture_output=True, text=True,
                            timeout=600)
    assert report.returncode == 0, report.stderr
    assert (elsewhere / "out" / "report.md").exists()
