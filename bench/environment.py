"""What a run ran in, beyond its row's fingerprint (backends.fingerprint): what
torch.utils.collect_env gathers (OS, compilers, Python, CUDA, cuDNN and driver versions, GPU
models, the CPU's lscpu) with torch's build configuration, and every installed distribution and
its version. One JSON file per distinct environment, named by a hash of its content, in
`results_dir/.environments/`; each run's row names its file (`environment`), so runs of one
sweep on several machines (a cluster's nodes) each point at their own."""
import functools
import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

import torch
from torch.utils import collect_env

FOLDER = ".environments"  # hidden: results.load_tables reads records, not this


@functools.cache  # once per process: collect_env runs pip and lscpu
def capture() -> dict:
    """The environment of this process, JSON-ready."""
    info = collect_env.get_env_info()._asdict()
    packages = sorted((d.metadata["Name"], d.version) for d in importlib.metadata.distributions()
                      if d.metadata["Name"])
    return {"collect_env": info, "torch_config": torch.__config__.show(),
            "torch_parallel": torch.__config__.parallel_info(), "executable": sys.executable,
            "packages": dict(packages)}


def identity(env: dict) -> str:
    """The environment's id: the first 16 hex digits of its canonical JSON's sha256."""
    return hashlib.sha256(json.dumps(env, sort_keys=True, default=str).encode()).hexdigest()[:16]


def record(results_dir) -> str:
    """Write this process's environment to results_dir/.environments/<id>.json unless it is
    there (atomically: concurrent writers write the same bytes), and return its id."""
    env = capture()
    rid = identity(env)
    folder = Path(results_dir) / FOLDER
    target = folder / f"{rid}.json"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{rid}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(env, sort_keys=True, indent=1, default=str))
        os.replace(tmp, target)
    return rid


def load(results_dir, rid: str) -> dict:
    """The environment a run's row names (its `environment` column)."""
    return json.loads((Path(results_dir) / FOLDER / f"{rid}.json").read_text())
