"""pytest-benchmark: forward and forward + backward of each cell in each implementation, at a
few sizes, grouped per device, size and pass; on the CPU, and on the CUDA or MPS device where
there is one; and, on the CPU, the standard cells ours and torch's across lengths T = 50 to 1,000.
`make bench` runs and saves them; `make test` runs each once (--benchmark-disable) as a smoke test."""
import pytest
import torch

import cells
from cells import accelerations
from bench.backends import Backend
from bench.measure import synchronize
from hardware import accelerator
from .conftest import THREADS

SIZES = {"T100-B64-I32-H256": (100, 64, 32, 256), "T50-B16-I32-H64": (50, 16, 32, 64),
         "T100-B256-I32-H1024": (100, 256, 32, 1024)}  # the last on an accelerator only: minutes on a CPU core
CELLS = {  # name -> (class, flags)
    "rnn": (cells.RNN, {}), "lstm": (cells.LSTM, {}), "gru": (cells.GRU, {}),
    "lstm_cifg": (cells.LSTM, {"coupled_gates": True}), "gru_reset_before": (cells.GRU, {"reset_after": False}),
    "mgu": (cells.GRU, {"minimal": True}),
}
ON = [("cpu", size) for size in list(SIZES)[:2]] + [(accelerator(), size) for size in SIZES if accelerator()]
CASES = [(c, impl, device, size) for device, size in ON for c in CELLS
         for impl in ("loop", "fused", "script", "compile_step", *(("graph",) if device == "cuda" else ()))
         if impl != "fused" or not CELLS[c][1]]  # torch's modules have no ablations
# across lengths (T50 above): the cost per token should not grow with T (test_goals checks it)
for T in (200, 400, 1000):
    SIZES[f"T{T}-B16-I32-H64"] = (T, 16, 32, 64)
    CASES += [(c, impl, "cpu", f"T{T}-B16-I32-H64") for c in ("rnn", "lstm", "gru") for impl in ("loop", "fused")]


@pytest.mark.parametrize("pass_", ["forward", "forward_backward"])
@pytest.mark.parametrize("cell,impl,device,size", CASES, ids=["-".join(c) for c in CASES])
def test_throughput(benchmark, cell, impl, device, size, pass_):
    T, B, I, H = SIZES[size]
    backend = Backend(device, impl, "float32", THREADS)
    backend.apply()  # float32 is IEEE float32 in cuDNN too, as in every run
    cls, flags = CELLS[cell]
    torch.manual_seed(0)
    ours = cls(I, H, **flags)
    module = backend.build(ours)
    x = torch.randn(T, B, I, device=device)

    def forward():
        with torch.no_grad():
            module(x)
        synchronize(device)  # the kernels have run, not only been queued

    def forward_backward():
        module.zero_grad(set_to_none=True)
        out, _ = module(x)
        out.sum().backward()
        synchronize(device)

    run = forward if pass_ == "forward" else forward_backward
    _, path = accelerations.ran(ours, run, impl)  # the path our cell takes (cells.accelerations), once
    benchmark.group = f"{device} {size} {pass_}"
    benchmark.extra_info.update(cell=cell, impl=impl, device=device, dtype="float32", threads=torch.get_num_threads(),
                                torch_version=torch.__version__, tokens=T * B,
                                path=path)
    benchmark.pedantic(run, rounds=10, warmup_rounds=2)
