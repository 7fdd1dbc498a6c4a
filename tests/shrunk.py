"""The rnnbench command on the real configs, shrunk to runs of a fraction of a second."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHRINK = ["experiment=smoke", "train.steps=4", "train.eval_every=2", "train.n_test=32", "train.probe_size=4",
          "task.seq_len=12", "cell.hidden_size=8", "progress=false"]
EXE = Path(sys.executable).parent / "rnnbench"  # the installed command, for runs in processes of their own


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run `rnnbench SHRINK... results_dir=tmp/runs ARGS` in this process: (exit code, stdout, stderr)."""
    from bench import run

    def invoke(*args):
        flags = [a for a in args if a.startswith("-")]  # -m goes first, as a user types it
        overrides = [a for a in args if not a.startswith("-")]
        argv = ["rnnbench", *flags, *SHRINK, f"results_dir={tmp_path / 'runs'}", *overrides]
        monkeypatch.setattr(sys, "argv", argv)
        try:
            run.main()
            code = 0
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err
    invoke.results = tmp_path / "runs"
    return invoke
