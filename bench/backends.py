"""Backends (MISSION.md section 6): the `backend` config group is read here and nowhere else.

A backend is device ('cpu' | 'cuda' | 'mps'), implementation ('loop': our cells in eager
PyTorch; 'fused': torch's own nn.RNN/LSTM/GRU, standard cells only), dtype ('float32' |
'float64') and CPU threads. Every result row names all four.
"""
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

import cells

DEVICES = ("cpu", "cuda", "mps")
IMPLS = ("loop", "fused")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Backend:
    device: str
    impl: str
    dtype: str
    threads: int

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def apply(self) -> None:
        """Process-wide settings a run needs: the CPU thread count."""
        torch.set_num_threads(self.threads)

    def build(self, cell: cells.Recurrent) -> torch.nn.Module:
        """The module that runs: ours, or torch's twin with the same weights for 'fused'."""
        module = cell.to_torch() if self.impl == "fused" else cell
        return module.to(device=self.device, dtype=self.torch_dtype)


def device_available(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return True


def resolve(cfg) -> Backend:
    """Check a backend config; a ValueError names what is wrong and what is allowed."""
    for key, allowed in (("device", DEVICES), ("impl", IMPLS), ("dtype", tuple(DTYPES))):
        if cfg[key] not in allowed:
            raise ValueError(f"backend.{key}={cfg[key]!r} is not valid; allowed: {' | '.join(allowed)}")
    if not device_available(cfg.device):
        raise ValueError(f"backend.device={cfg.device!r} is not available on this machine; "
                         f"available: {' | '.join(d for d in DEVICES if device_available(d))}")
    threads = cfg.threads
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= (os.cpu_count() or 1):
        raise ValueError(f"backend.threads={threads!r} is not valid; allowed: an integer from 1 to {os.cpu_count()}")
    return Backend(cfg.device, cfg.impl, cfg.dtype, threads)


def check_cell(backend: Backend, cell: cells.Recurrent) -> None:
    if backend.impl == "fused" and not cell.torch_equivalent:
        changed = ", ".join(f"{k}={v!r}" for k, v in cell.flags.items() if v != cell.FLAGS[k].default)
        raise ValueError(f"backend.impl='fused' runs torch.nn.{type(cell).__name__}, which has no {changed}; "
                         f"allowed for this cell: backend.impl=loop")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The clone's commit, with '+dirty' when the work tree differs from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) or None


def fingerprint(backend: Backend) -> dict:
    """The hardware and software a result was measured on."""
    cuda = backend.device == "cuda"
    return {
        "device": backend.device, "impl": backend.impl, "dtype": backend.dtype, "threads": torch.get_num_threads(),
        "device_name": torch.cuda.get_device_name() if cuda else (cpu_model() if backend.device == "cpu" else "mps"),
        "cpu": cpu_model(),
        "torch_version": torch.__version__,
        "onednn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "git_commit": git_commit(),
    }
