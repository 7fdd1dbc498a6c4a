"""Benchmarks time on one thread by default: 2-thread timings on these machines swing wildly.
RNNBENCH_THREADS sets another count."""
import os

import pytest
import torch

THREADS = int(os.environ.get("RNNBENCH_THREADS", "1"))


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def benchmarks_enabled(request) -> bool:
    option = request.config.getoption
    return option("benchmark_enable") or not option("benchmark_disable")
