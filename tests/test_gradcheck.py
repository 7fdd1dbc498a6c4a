"""torch.autograd.gradcheck in float64 for every cell and ablation: inputs, initial states and
every parameter, on 2 layers."""
import pytest
import torch
from torch.func import functional_call

from test_ablations import FLAG_CASES, ids, make

F64 = torch.float64


def gradcheck_cell(case, device: str = "cpu") -> bool:
    cell = make(case, 2, 3, 2, dtype=F64, device=device)
    names = [n for n, _ in cell.named_parameters()]
    x = torch.randn(4, 2, cell.input_size, dtype=F64, device=device, requires_grad=True)
    hx = [torch.randn(2, 2, 3, dtype=F64, device=device, requires_grad=True) for _ in range(cell.n_states)]
    # a little noise keeps ReLU pre-activations off their kink at 0 (IRNN's zero biases put them there)
    params = [(p.detach() + 0.05 * torch.randn_like(p)).requires_grad_() for p in cell.parameters()]

    def fn(x, *rest):
        states, weights = rest[:cell.n_states], rest[cell.n_states:]
        out, state = functional_call(cell, dict(zip(names, weights)),
                                     (x, tuple(states) if cell.n_states > 1 else states[0]))
        return (out, *(state if isinstance(state, tuple) else (state,)))

    return torch.autograd.gradcheck(fn, (x, *hx, *params), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", FLAG_CASES, ids=ids)
def test_gradcheck(case):
    assert gradcheck_cell(case)
