"""Backends (docs/backends.md): the `backend` config group is read here and nowhere else.

A backend is
- device: 'cpu' | 'cuda' | 'mps';
- implementation: 'loop' (our cells in eager PyTorch), 'fused' (torch's own nn.RNN/LSTM/GRU,
  standard cells only), 'script' (our cells traced to TorchScript, once per input shape),
  'compile' (our cells through torch.compile), 'compile_step' (their step function through
  torch.compile), 'graph' (our cells' passes captured as CUDA graphs, once per input shape, and
  replayed; CUDA only);
- dtype: 'float32', 'float64' (for checks) or 'bfloat16' (float32 weights, bfloat16 autocast);
- CPU threads;
- flush_denormal: whether CPU arithmetic flushes subnormal floats to zero (on by default).
Every result row names the first four; a run's row also says whether its CPU threads flushed.
"""
import contextlib
import functools
import os
import platform
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import cells

from .measure import gc_off

DEVICES = ("cpu", "cuda", "mps")
IMPLS = ("loop", "fused", "script", "compile", "compile_step", "graph")
DTYPES = {  # name -> (parameter dtype, autocast dtype or None)
    "float32": (torch.float32, None),
    "float64": (torch.float64, None),
    "bfloat16": (torch.float32, torch.bfloat16),
}


def _sized_as(wrapper: nn.Module, cell: cells.Recurrent) -> None:
    """What the model reads of the cell it is given (train.Model): its sizes and directions."""
    for name in ("input_size", "hidden_size", "proj_size", "bidirectional"):
        setattr(wrapper, name, getattr(cell, name))


class Traced(nn.Module):
    """Our cell traced to TorchScript, one trace per input shape; it shares the cell's parameters.
    The trace unrolls the T steps, and TorchScript's graph optimisations on such a graph grow far
    faster than T (minutes at T=200: docs/backends.md). They pay only where TorchScript can fuse
    the steps' elementwise kernels, on CUDA; on a CPU it fuses nothing, and with them off the
    traced graph runs as fast, so they are off there."""

    def __init__(self, cell: cells.Recurrent):
        super().__init__()
        self.cell, self._traces = cell, {}
        _sized_as(self, cell)

    def forward(self, input, hx=None):
        if hx is not None:  # traces are specialised to the initial state being zeros
            return self.cell(input, hx)
        key = (tuple(input.shape), input.dtype, input.device, torch.is_grad_enabled(), self.training)
        if key not in self._traces:
            with warnings.catch_warnings():  # deprecation, and "specialised to this shape": both known
                warnings.simplefilter("ignore")
                self._traces[key] = torch.jit.trace(self.cell, (input,), check_trace=False)
        with torch.jit.optimized_execution(input.device.type == "cuda"):
            return self._traces[key](input)


class Compiled(nn.Module):
    """Our cell through torch.compile (Inductor, one graph with no breaks), once per input shape
    and autograd mode: 'compile' compiles the forward, its T steps unrolled into one graph;
    'compile_step' compiles the step function and reuses it for every step, the loop over time
    staying in Python. The unrolled graph's compile time grows with T (pytorch/pytorch#97155),
    the step's does not, and each compiled call pays torch's guards and wrappers (what each costs
    and gains: docs/backends.md).
    Each wrapper, one per run, starts from empty compile caches (in a sweep's process, earlier
    runs' graphs would count towards torch's limit of 8 per function), and a call that would need
    more graphs than that fails, where torch would quietly run the code uncompiled."""

    def __init__(self, cell: cells.Recurrent, whole: bool):
        super().__init__()
        torch._dynamo.reset()
        self.cell, self.impl = cell, "compile" if whole else "compile_step"
        _sized_as(self, cell)
        compile = functools.partial(torch.compile, dynamic=False, fullgraph=True)
        self._compiled = compile(cell.forward) if whole else None  # a function, not a submodule
        self._compile_step = None if whole else compile

    def forward(self, input, hx=None):
        try:
            with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
                if self._compiled is not None:
                    return self._compiled(input, hx)
                with self.cell.steps_through(self._compile_step):
                    return self.cell(input, hx)
        except torch._dynamo.exc.FailOnRecompileLimitHit:
            limit = torch._dynamo.config.recompile_limit
            raise RuntimeError(f"backend.impl={self.impl}: this run needs more than {limit} compiled graphs "
                               f"(torch._dynamo.config.recompile_limit; one per input shape and autograd mode); "
                               f"past it torch would run the code uncompiled") from None


class _Pass(nn.Module):
    """cell(input) as a module of its own: make_graphed_callables replaces the forward of the
    module it is given, and the cell keeps its own."""

    def __init__(self, cell: cells.Recurrent):
        super().__init__()
        self.cell = cell

    def forward(self, input):
        return self.cell(input)


class Graphed(nn.Module):
    """Our cell on a CUDA GPU, its passes captured as CUDA graphs once per input shape and then
    replayed: one launch per pass instead of a few kernels per step and gate, which leave the
    eager cell bound by the host's launch rate (the same time at every size: docs/backends.md).
    With autograd on, a forward and a backward graph (torch.cuda.make_graphed_callables); without,
    a forward graph. The graphs read the cell's parameters in place, so an optimizer's updates
    reach them; the outputs are copies. A call with an initial state runs the cell eagerly. As
    for any CUDA graph, a forward's backward must run before the next forward of its shape (a
    training step does so), and no autograd graph through the parameters may be alive when a
    shape is first captured (torch's condition)."""

    def __init__(self, cell: cells.Recurrent):
        super().__init__()
        self.cell, self._graphs = cell, {}
        _sized_as(self, cell)

    def forward(self, input, hx=None):
        if hx is not None or input.device.type != "cuda":
            return self.cell(input, hx)
        grad = torch.is_grad_enabled()
        key = (tuple(input.shape), input.dtype, input.requires_grad, grad, self.training,
               torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"))
        if key not in self._graphs:
            # a collection during the capture could free an earlier graph (make_graphed_callables
            # leaves a reference cycle) and with it the capture stream's cuBLAS workspace
            with gc_off():
                self._graphs[key] = self._capture_with_grad(input) if grad else self._capture(input)
        return torch.utils._pytree.tree_map(torch.Tensor.clone, self._graphs[key](input))

    def _capture_with_grad(self, x):
        module = _Pass(self.cell).train(self.training)
        return torch.cuda.make_graphed_callables(module, (x.detach().clone().requires_grad_(x.requires_grad),))

    def _capture(self, x):
        static_x = x.detach().clone()
        side = torch.cuda.Stream()  # warm-up calls (lazy initialisation, cuBLAS's workspace) off the capture
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.cell(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.cell(static_x)

        def replay(x):
            static_x.copy_(x)
            graph.replay()
            return static_out
        return replay


IMPL_BUILDERS = {
    "loop": lambda cell: cell,
    "fused": lambda cell: cell.to_torch(),
    "script": Traced,
    "compile": functools.partial(Compiled, whole=True),
    "compile_step": functools.partial(Compiled, whole=False),
    "graph": Graphed,
}


@dataclass(frozen=True)
class Backend:
    device: str
    impl: str
    dtype: str
    threads: int
    flush_denormal: bool = True

    @property
    def torch_dtype(self) -> torch.dtype:
        """The dtype of parameters and inputs."""
        return DTYPES[self.dtype][0]

    def autocast(self):
        """The context every forward pass runs in: bfloat16 autocast, or nothing. A CUDA graph
        cannot hold autocast's cached casts of the weights (they are freed when the context ends)."""
        cast = DTYPES[self.dtype][1]
        return (torch.autocast(self.device, dtype=cast, cache_enabled=self.impl != "graph") if cast is not None
                else contextlib.nullcontext())

    def apply(self) -> None:
        """Process-wide settings a run needs: the CPU thread count; subnormal floats flushed to
        zero or not, on every CPU thread (gradients that vanish through time reach float32's
        subnormal range past T = 100-200, where many x86 CPUs compute them tens of times slower);
        and float32 as IEEE float32 in every implementation: cuDNN's RNNs would otherwise round
        their matmuls' inputs to TF32 (10-bit mantissa) on NVIDIA GPUs since Ampere, while our
        cells' cuBLAS matmuls do not."""
        torch.set_num_threads(self.threads)
        cells.native.flush_denormal(self.flush_denormal)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    def memory_bytes(self) -> int:
        """The memory a run on this backend can hold at most: the GPU's, or the machine's (as
        far as a cgroup lets this process have it)."""
        if self.device == "cuda":
            return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        if self.device == "mps" and hasattr(torch.mps, "recommended_max_memory"):
            return torch.mps.recommended_max_memory()
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        try:  # cgroup v2's limit, 'max' where there is none
            limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
            return min(total, int(limit)) if limit.isdigit() else total
        except OSError:
            return total

    def build(self, cell: cells.Recurrent) -> nn.Module:
        """The module that runs `cell` on this backend, moved to its device and dtype. Only
        'fused' copies the weights (into torch's module); the others share the cell's."""
        cell = cell.to(device=self.device, dtype=self.torch_dtype)
        return IMPL_BUILDERS[self.impl](cell).to(device=self.device, dtype=self.torch_dtype)


def weights_of(module: nn.Module, ours: cells.Recurrent) -> nn.Module:
    """The module holding the trained parameters: torch's own for 'fused', else our cell
    (which 'script', 'compile' and 'graph' wrap and share)."""
    return module if isinstance(module, nn.RNNBase) else ours


def sync_weights(module: nn.Module, ours: cells.Recurrent) -> None:
    """Give our cell the trained weights, for the probes (a copy only 'fused' needs)."""
    if weights_of(module, ours) is not ours:
        ours.load_state_dict(module.state_dict())


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
    if cfg.impl == "graph" and cfg.device != "cuda":
        raise ValueError(f"backend.impl='graph' captures CUDA graphs and needs backend.device=cuda; "
                         f"allowed on {cfg.device}: {' | '.join(i for i in IMPLS if i != 'graph')}")
    if cfg.device == "mps" and cfg.dtype == "float64":
        raise ValueError("backend.dtype='float64' is not available on mps; allowed: float32 | bfloat16")
    threads = cfg.threads
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= (os.cpu_count() or 1):
        raise ValueError(f"backend.threads={threads!r} is not valid; allowed: an integer from 1 to {os.cpu_count()}")
    if not isinstance(cfg.flush_denormal, bool):
        raise ValueError(f"backend.flush_denormal={cfg.flush_denormal!r} is not valid; allowed: true | false")
    return Backend(cfg.device, cfg.impl, cfg.dtype, threads, cfg.flush_denormal)


def check_cell(backend: Backend, cell: cells.Recurrent) -> None:
    if backend.impl == "fused" and not cell.torch_equivalent:
        changed = ", ".join(f"{k}={v!r}" for k, v in cell.flags.items() if v != cell.FLAGS[k].default)
        ours = (i for i in IMPLS if i != "fused" and (i != "graph" or backend.device == "cuda"))
        raise ValueError(f"backend.impl='fused' runs torch.nn.{type(cell).__name__}, which has no {changed}; "
                         f"allowed for this cell: backend.impl={' | '.join(ours)}")


@functools.cache  # once per process: a sweep's jobs share it
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
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
        "flush_denormal": cells.native.flushes_denormals(),  # as measured: False where the CPU cannot
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "git_commit": git_commit(),
    }
