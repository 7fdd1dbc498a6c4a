import pytest
import torch

from hardware import accelerator


def pytest_collection_modifyitems(config, items):
    if accelerator() is None:
        skip = pytest.mark.skip(reason="no CUDA or MPS device on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
