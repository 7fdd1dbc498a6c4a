"""The LSTM's and the GRU's compiled CPU time loops (lstm_native.cpp, gru_native.cpp, sharing
loops.h; bound in native.cpp), built on first use with torch's C++ extension builder and cached (in
$TORCH_EXTENSIONS_DIR, by default ~/.cache/torch_extensions).

Where they cannot be built (no C++ compiler, another platform's quirks), the cells run their torch
loops (lstm_scan.py, gru_scan.py): the same functions, slower on a CPU; one warning says so.
RNNBENCH_NATIVE=0 turns them off. They serve as the `compiled` acceleration of the LSTM and the GRU
(cells/accelerations.py), and every record says which path its cell took (`path`).
"""
import hashlib
import importlib.util
import os
import sys
import sysconfig
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).parent
SOURCES = [HERE / "native.cpp", HERE / "lstm_native.cpp", HERE / "gru_native.cpp", HERE / "threads.cpp"]
HEADERS = [HERE / "native.h", HERE / "loops.h"]
# Vector flags for the CPU torch itself found, and ATen's vector types for it. Elsewhere (ARM,
# older x86) ATen's types fall back to their generic code.
ARCH_FLAGS = {"AVX512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mfma",
                         "-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"],
              "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]}
# OpenMP as torch's own parallel code has it, where torch runs on OpenMP (its Linux builds): at::parallel_for
# then runs on torch's intra-op threads (the loader hands this module the libgomp torch loaded); without
# it, a serial loop. Elsewhere -fopenmp-simd alone: the loops' `omp simd` pragmas, no runtime.
_ON_OPENMP = sys.platform.startswith("linux") and "parallel backend: OpenMP" in torch.__config__.parallel_info()
OPENMP = ["-fopenmp"] if _ON_OPENMP else ["-fopenmp-simd"]
STALE_S = 300  # a build takes about 20 s: a lock older than this was left by a killed process
_module = None  # the built module, False once a build failed
_enabled = os.environ.get("RNNBENCH_NATIVE", "1") != "0"


def _build(verbose: bool = False):
    """The module, from the cache where a finished build of this source, these flags, this torch
    and this Python is there (its folder is named by their hash, so that a cache shared between
    machines or kept across upgrades never hands over another's build); else built there."""
    from torch.utils import cpp_extension

    cap = torch.backends.cpu.get_cpu_capability()
    flags = ["-O3", *OPENMP, *ARCH_FLAGS.get(cap, [])]
    code = b"".join(f.read_bytes() for f in (*SOURCES, *HEADERS))
    key = code + repr((flags, torch.__version__, sys.version)).encode()
    name = f"rnnbench_native_{hashlib.sha256(key).hexdigest()[:16]}"
    folder = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root(), name)
    ready = folder / "ready"  # names the finished library; written last, atomically
    if ready.exists() and not verbose:  # no call into the builder: it locks the folder on every load
        spec = importlib.util.spec_from_file_location(name, folder / ready.read_text())
        built = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(built)
        return built
    # pip's ninja lands next to the interpreter, which need not be on PATH (make calls .venv/bin/python)
    scripts = sysconfig.get_path("scripts")
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    folder.mkdir(parents=True, exist_ok=True)
    _wait_for_lock(folder / "lock")
    built = cpp_extension.load(name, [str(f) for f in SOURCES], extra_cflags=flags, extra_ldflags=OPENMP,
                               build_directory=str(folder), verbose=verbose)
    tmp = folder / f"ready.{os.getpid()}"
    tmp.write_text(Path(built.__file__).name)
    tmp.replace(ready)
    return built


def _wait_for_lock(lock: Path) -> None:
    """Wait while another process builds; remove a lock older than STALE_S. torch's builder
    waits, with no end, while the lock it takes around a build exists: one left by a process
    killed mid-build would hang every later one."""
    while lock.exists():
        try:
            if time.time() - lock.stat().st_mtime > STALE_S:
                lock.unlink()
        except FileNotFoundError:  # released meanwhile
            pass
        time.sleep(0.5)


def module():
    """The compiled loops, or None (turned off, or the build failed: warned once)."""
    global _module
    if not _enabled:
        return None
    if _module is None:
        try:
            _module = _build()
        except Exception as e:  # noqa: BLE001: any failure means the torch loops serve
            _module = False
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            warnings.warn(f"rnnbench: the compiled loops could not be built ({first}); LSTM and GRU cells run "
                          "their torch loops (the same functions, slower on a CPU). `python -m cells.native` "
                          "shows the build", stacklevel=3)
    return _module or None


def active() -> bool:
    """Whether LSTM and GRU calls on a CPU would run the compiled loops now (builds them if needed)."""
    return module() is not None


def subnormals(n: int) -> torch.Tensor:
    """n float32 subnormals (1.5e-39), made from their bits: converting a number to float32 on a
    thread that flushes would give zeros."""
    return torch.full((n,), 0x00100000, dtype=torch.int32).view(torch.float32)


def flushes_denormals() -> bool:
    """Whether every thread torch computes on flushes subnormal floats to zero now: an elementwise
    product of subnormals, long enough that each thread takes a part of it."""
    return bool((subnormals(torch.get_num_threads() * 2**16) * 1.0 == 0).all())


def flush_denormal(on: bool) -> bool:
    """Flush subnormal floats to zero (on=True) or compute them (False) on every thread torch
    computes on, as torch.set_flush_denormal does on the calling thread alone; returns whether
    every thread now does as asked. Without the compiled module only the calling thread changes,
    which is every thread where torch runs on one (torch.set_num_threads(1))."""
    built = module()
    if built is not None:
        built.set_flush_denormal(on)
    else:
        torch.set_flush_denormal(on)
    return flushes_denormals() == on


if __name__ == "__main__":  # build with the compiler's output shown; say whether they are in use
    try:
        _module = _build(verbose=True)
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"rnnbench: the compiled loops could not be built: {e}")
    state = "in use" if _enabled else "turned off (RNNBENCH_NATIVE=0)"
    print(f"the LSTM's and GRU's compiled loops are built and {state}")
