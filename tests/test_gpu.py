"""The same equivalence on a CUDA or MPS device (skipped without one)."""
import pytest
import torch

import cells
from hardware import accelerator

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch_on_the_accelerator(name, dtype):
    device = accelerator()
    if dtype == torch.float64 and device == "mps":
        pytest.skip("MPS has no float64")
    ref = getattr(torch.nn, name)(3, 16, 2, device=device, dtype=dtype)
    ours = getattr(cells, name)(3, 16, 2, device=device, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(20, 4, 3, device=device, dtype=dtype)
    (a, _), (b, _) = ours(x), ref(x)
    a.sum().backward()
    b.sum().backward()
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert (a - b).abs().max().item() <= tol
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert (p.grad - q.grad).abs().max().item() <= tol * 10


@pytest.mark.parametrize("flags", [{"reset_after": False}, {"minimal": True}, {"tied_gates": False}], ids=str)
def test_ablations_run_on_the_accelerator(flags):
    device = accelerator()
    cell = cells.GRU(3, 16, 2, device=device, **flags)
    out, h = cell(torch.randn(20, 4, 3, device=device))
    out.sum().backward()
    assert out.device.type == device and torch.isfinite(out).all()
