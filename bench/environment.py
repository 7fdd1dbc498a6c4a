"""What a run ran in, beyond its row's fingerprint (backends.fingerprint): the version of the code
that computes results (`code`), and what
torch.utils.collect_env gathers (OS, compilers, Python, CUDA, cuDNN and driver versions, GPU
models, the CPU's lscpu) with torch's build configuration, and every installed distribution and
its version. One JSON file per distinct environment, named by a hash of its content, in
`results_dir/.environments/`; each run's row names its file (`environment`), so runs of one
sweep on several machines (a cluster's nodes) each point at their own."""
import ast
import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import json
import sys
from pathlib import Path

import torch
from torch.utils import collect_env

from . import results

FOLDER = ".environments"  # hidden: results.load_tables reads records, not this
# The code that computes a run's numbers: the cells, and the tasks, training, probes, timing and
# backends that run them. Not the CLI, the records' bookkeeping or the report (they compute no run).
COMPUTES = {"cells": ("*.py", "*.cpp", "*.h"),
            "bench": ("tasks.py", "music.py", "train.py", "probes.py", "measure.py", "backends.py", "flushing.py")}


@functools.cache
def code() -> str:
    """The version of the code that computes results: 12 hex digits of a hash over COMPUTES, each
    Python file as its syntax tree without docstrings (comments and layout change nothing), each
    C++ file as it is. The same in a checkout, an editable install and a wheel."""
    digest = hashlib.sha256()
    for package, patterns in COMPUTES.items():
        folder = Path(importlib.import_module(package).__file__).parent
        for path in sorted({p for pattern in patterns for p in folder.glob(pattern)}):
            digest.update(f"{package}/{path.name}\0".encode())
            digest.update(_tree(path.read_text()).encode() if path.suffix == ".py" else path.read_bytes())
    return digest.hexdigest()[:12]


def _tree(source: str) -> str:
    """A module's syntax tree with its docstrings removed, as text."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


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
        try:
            results.write_whole(target, json.dumps(env, sort_keys=True, indent=1, default=str))
        except OSError:  # a full disk, say: leave nothing behind
            with contextlib.suppress(OSError):
                folder.rmdir()  # if empty
            raise
    return rid


def load(results_dir, rid: str) -> dict:
    """The environment a run's row names (its `environment` column)."""
    return json.loads((Path(results_dir) / FOLDER / f"{rid}.json").read_text())
