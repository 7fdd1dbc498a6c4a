"""pytest-benchmark: forward and forward + backward of each cell in each implementation, at a
few sizes, grouped per size and pass. `make bench` runs and saves them; `make test` runs each
once (--benchmark-disable) as a smoke test."""
import pytest
import torch

import cells
from bench.backends import Backend
from .conftest import THREADS

SIZES = {"T100-B64-I32-H256": (100, 64, 32, 256), "T50-B16-I32-H64": (50, 16, 32, 64)}
CELLS = {  # name -> (class, flags)
    "rnn": (cells.RNN, {}), "lstm": (cells.LSTM, {}), "gru": (cells.GRU, {}),
    "lstm_cifg": (cells.LSTM, {"coupled_gates": True}), "gru_reset_before": (cells.GRU, {"reset_after": False}),
    "mgu": (cells.GRU, {"minimal": True}),
}
CASES = [(c, impl) for c in CELLS for impl in ("loop", "fused", "script") if impl != "fused" or not CELLS[c][1]]


@pytest.mark.parametrize("pass_", ["forward", "forward_backward"])
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("cell,impl", CASES, ids=[f"{c}-{i}" for c, i in CASES])
def test_throughput(benchmark, cell, impl, size, pass_):
    T, B, I, H = SIZES[size]
    backend = Backend("cpu", impl, "float32", THREADS)
    cls, flags = CELLS[cell]
    torch.manual_seed(0)
    module = backend.build(cls(I, H, **flags))
    x = torch.randn(T, B, I)

    def forward():
        with torch.no_grad():
            return module(x)

    def forward_backward():
        module.zero_grad(set_to_none=True)
        out, _ = module(x)
        out.sum().backward()

    benchmark.group = f"{size} {pass_}"
    benchmark.extra_info.update(cell=cell, impl=impl, device="cpu", dtype="float32", threads=torch.get_num_threads(),
                                torch_version=torch.__version__, tokens=T * B)
    benchmark.pedantic(forward if pass_ == "forward" else forward_backward, rounds=10, warmup_rounds=2)
