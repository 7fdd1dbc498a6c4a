"""The GRU's compiled time loops (gru_native.cpp), built on first use with torch's C++ extension
builder and cached (in $TORCH_EXTENSIONS_DIR, by default ~/.cache/torch_extensions).

Where they cannot be built (no C++ compiler, another platform's quirks), the GRU runs its torch
loops (gru_scan.py): the same function, slower on a CPU; one warning says so. RNNBENCH_NATIVE=0
turns them off. Every record says whether they were in use (`native`).
"""
import os
import sysconfig
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("gru_native.cpp")
# Vector flags for the CPU torch itself found, and ATen's vector types for it (the build is cached
# under a name that says which, so that a cache shared between machines never hands one the
# other's instructions). Elsewhere (ARM, older x86) ATen's types fall back to their generic code.
ARCH_FLAGS = {"AVX512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mfma",
                         "-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"],
              "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]}
_module = None  # the built module, False once a build failed
_enabled = os.environ.get("RNNBENCH_NATIVE", "1") != "0"


def _build(verbose: bool = False):
    from torch.utils import cpp_extension

    cap = torch.backends.cpu.get_cpu_capability()
    # pip's ninja lands next to the interpreter, which need not be on PATH (make calls .venv/bin/python)
    scripts = sysconfig.get_path("scripts")
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    name = f"rnnbench_gru_{cap.lower().replace(' ', '_')}"
    # -fopenmp-simd: the loops' `omp simd` pragmas (vectorise without alias checks), no OpenMP runtime
    flags = ["-O3", "-fopenmp-simd", *ARCH_FLAGS.get(cap, [])]
    return cpp_extension.load(name, [str(SOURCE)], extra_cflags=flags, verbose=verbose)


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
            warnings.warn(f"rnnbench: the GRU's compiled loops could not be built ({first}); GRU cells run "
                          "their torch loops (the same function, slower on a CPU). `python -m cells.native` "
                          "shows the build", stacklevel=3)
    return _module or None


def active() -> bool:
    """Whether a CPU GRU call would run the compiled loops now (builds them if needed)."""
    return module() is not None


if __name__ == "__main__":  # build with the compiler's output shown; say whether they are in use
    try:
        _module = _build(verbose=True)
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"rnnbench: the GRU's compiled loops could not be built: {e}")
    print(f"the GRU's compiled loops are built and {'in use' if _enabled else 'turned off (RNNBENCH_NATIVE=0)'}")
