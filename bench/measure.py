"""All timing lives here, under one discipline: warm-up calls, a device synchronisation inside
every timed call, the garbage collector off while timing, several repeats, and the median with
its spread (first and third quartiles). Threads are the backend's, set before and recorded."""
import contextlib
import gc
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from cells import accelerations


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


@dataclass(frozen=True)
class Timing:
    median: float  # seconds per call
    q1: float
    q3: float
    repeats: int

    @classmethod
    def of(cls, seconds: list[float]) -> "Timing":
        q1, _, q3 = statistics.quantiles(seconds, n=4, method="inclusive") if len(seconds) > 1 else seconds * 3
        return cls(statistics.median(seconds), q1, q3, len(seconds))


@contextlib.contextmanager
def gc_off():
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def time_calls(fns: dict[str, Callable[[], object]], device: str, repeats: int = 10,
               warmup: int = 3) -> dict[str, Timing]:
    """Median wall time of each fn() over `repeats` rounds after `warmup` untimed ones. Each
    round calls every fn once, in turn, so that the machine's drift (clock, neighbours) hits
    them all alike and their ratios hold even when the absolute times move."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    seconds = {name: [] for name in fns}
    with gc_off():
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                synchronize(device)
                seconds[name].append(time.perf_counter() - t0)
    return {name: Timing.of(s) for name, s in seconds.items()}


def saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the tensors autograd keeps for the backward of fn()'s graph: the activation
    memory of training (parameters included), measured the same way on every device and
    implementation; unlike a process's peak memory it does not depend on the allocator."""
    total, seen = 0, set()

    def pack(t):
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.dtype)
        if key not in seen:  # views of one storage count once
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def throughput(module: torch.nn.Module, backend, seq_len: int, batch: int, input_size: int,
               repeats: int = 10, warmup: int = 3, reference: torch.nn.Module | None = None,
               ours=None) -> list[dict]:
    """Tokens (steps x examples) per second of `module` on random input (T, B, I): the forward
    pass alone (no autograd) and forward + backward (grads of a sum of the outputs). A
    `reference` module is timed in the same rounds (ref_seconds): a yardstick that the
    machine's drift moves as much as the module, so that times of different runs compare as
    ratios to it. `ours`: our cell inside module, whose path each pass records (accelerations.ran)."""
    device = backend.device
    x = torch.randn(seq_len, batch, input_size, device=device, dtype=backend.torch_dtype)

    def passes(m):
        params = list(m.parameters())

        def forward():
            with torch.no_grad(), backend.autocast():
                m(x)

        def forward_backward():
            for p in params:
                p.grad = None
            with backend.autocast():
                out, _ = m(x)
            out.float().sum().backward()
        return {"forward": forward, "forward_backward": forward_backward}

    mine, ref = passes(module), passes(reference) if reference is not None else None
    rows = []
    for name in ("forward", "forward_backward"):
        timing = time_calls({"module": mine[name], **({"ref": ref[name]} if ref else {})}, device, repeats, warmup)
        peak = None
        # the pass's own peak: what it allocates above the memory live before it. Not for 'graph':
        # its graphs hold their memory from capture on, and a replay allocates nothing.
        if device == "cuda" and backend.impl != "graph":
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            mine[name]()
            peak = torch.cuda.max_memory_allocated() - before
        t = timing["module"]
        path = accelerations.ran(ours, mine[name], backend.impl)[1] if ours is not None else None
        rows.append({
            "pass": name, "path": path, "seq_len": seq_len, "batch_size": batch, "input_size": input_size,
            "tokens_per_s": seq_len * batch / t.median, "seconds": t.median,
            "seconds_q1": t.q1, "seconds_q3": t.q3, "repeats": t.repeats,
            "ref_seconds": timing["ref"].median if ref else None,
            "peak_bytes": peak,
            # what a replayed graph keeps is what its eager cell saves (autograd sees one node)
            "saved_bytes": saved_bytes(lambda: (module.cell if backend.impl == "graph" else module)(x))
            if name == "forward_backward" else None,
        })
    return rows
