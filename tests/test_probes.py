"""The measurements inside the network: the cells' trace, gate statistics, step changes, gradient
norms per block and the per-timestep gradient profiles, against direct computations."""
import pytest
import torch

import cells
from bench import probes, tasks
from bench.train import Model

F64 = torch.float64


@pytest.mark.parametrize("flags,gates", [({}, {"i", "f", "o"}), ({"coupled_gates": True}, {"f", "o"}),
                                         ({"output_gate": False}, {"i", "f"})], ids=str)
def test_trace_records_every_step_of_every_layer(flags, gates):
    cell = cells.LSTM(3, 5, 2, dtype=F64, **flags)
    x = torch.randn(7, 4, 3, dtype=F64)
    with cell.trace() as trace:
        out, (h, c) = cell(x)
    assert len(trace) == 2 and all(len(layer["states"]) == 7 for layer in trace)
    assert torch.equal(torch.stack([s[0] for s in trace[1]["states"]]), out)
    assert torch.equal(trace[0]["states"][-1][1], c[0])
    assert set(trace[0]["gates"][0]) == gates
    assert cell._trace is None  # tracing ends with the block
    assert torch.allclose(cell(x)[0], out, atol=1e-12)  # after tracing: the scan again, same function


def test_gate_statistics_and_step_changes():
    task = tasks.adding(20)
    cell = cells.LSTM(2, 6, forget_bias=30.0)  # f = σ(30 + small) = 1: saturated, mean 1
    model = Model(cell, task)
    batch = task.splits(0, 16).valid
    rows = {(r["metric"], r["gate"]): r["value"] for r in probes.inside(0, model, batch)}
    assert rows[("gate_saturated", "f")] == 1.0 and rows[("gate_mean", "f")] == pytest.approx(1.0, abs=1e-6)
    assert rows[("gate_saturated", "i")] == 0.0 and abs(rows[("gate_mean", "i")] - 0.5) < 0.1  # σ(small)
    with cell.trace() as trace:
        cell(batch.x)
    c = torch.stack([s[1] for s in trace[0]["states"]])  # (T, B, H)
    want = ((c[1:] - c[:-1]).norm(dim=-1) / c[:-1].norm(dim=-1)).mean()
    assert rows[("step_change_c", None)] == pytest.approx(want.item(), rel=1e-5)


def test_the_slowest_quarter_of_the_lstms_units():
    """Forget biases of 5 for units 0 and 1 of 8, -5 for the rest: units 0 and 1 have the longest
    time constants, 1 / (1 - mean f), and the step changes over them are of those units alone."""
    task = tasks.adding(20)
    cell = cells.LSTM(2, 8)
    with torch.no_grad():
        cell.bias_ih_l0.zero_(), cell.bias_hh_l0.zero_()
        cell.bias_ih_l0[8:16] = torch.tensor([5.0, 5.0] + [-5.0] * 6)  # torch's gate order i, f, g, o
    batch = task.splits(0, 16).valid
    rows = {r["metric"]: r["value"] for r in probes.inside(0, Model(cell, task), batch)}
    with cell.trace() as trace:
        cell(batch.x)
    f = torch.stack([g["f"] for g in trace[0]["gates"]])
    c = torch.stack([s[1] for s in trace[0]["states"]])[..., :2]
    tau = 1 / (1 - f.mean(dim=(0, 1)))
    assert tau[:2].min() > 10 * tau[2:].max()
    assert rows["time_constant_slow"] == pytest.approx(tau[:2].median().item(), rel=1e-5)
    want = ((c[1:] - c[:-1]).norm(dim=-1) / c[:-1].norm(dim=-1)).mean()
    assert rows["step_change_c_slow"] == pytest.approx(want.item(), rel=1e-5)
    assert "step_change_h_slow" in rows
    gru = {r["metric"] for r in probes.inside(0, Model(cells.GRU(2, 8), task), batch)}
    assert not any(m.endswith("_slow") for m in gru)  # the LSTM's memory only


def test_block_grad_norms_split_each_parameter_by_gate():
    task = tasks.temporal_order(20)
    cell = cells.GRU(8, 5, 2, tied_gates=False)
    model = Model(cell, task)
    batch = task.splits(0, 8).valid
    tasks.losses(task, model(batch.x), batch).mean().backward()
    rows = probes.block_grad_norms(3, cell, cell.layout, 2, 5, model.readout)
    got = {(r["layer"], r["param"], r["gate"]): r["value"] for r in rows}
    assert got[(1, "weight_hh", "i")] == pytest.approx(cell.weight_hh_l1.grad[15:20].norm().item())
    assert got[(0, "bias_ih", "z")] == pytest.approx(cell.bias_ih_l0.grad[5:10].norm().item())
    assert len(got) == 2 * 4 * 4 + 1  # layers x params x blocks, and the readout


def test_gradient_profile_matches_direct_autograd_and_torchs_fused_kernel():
    task = tasks.adding(15)
    cell = cells.LSTM(2, 6, dtype=F64)
    model = Model(cell, task).to(F64)
    batch = task.splits(0, 8).valid
    batch = tasks.Batch(batch.x.to(F64), batch.y.to(F64))
    rows = probes.gradient_profile(5, model, task, batch)
    dx = [r["value"] for r in rows if r["quantity"] == "dL/dx"]
    dh_last = [r["value"] for r in rows if r["quantity"] == "dL/dh"][-1]
    # ℓ = (w·h_T + b - y)², so ∂ℓ/∂h_T = 2 (pred - y) w for each example
    pred = model(batch.x)
    want = (2 * (pred - batch.y).abs() * model.readout.weight.norm()).mean()
    assert dh_last == pytest.approx(want.item(), rel=1e-9)
    # ∂ℓ/∂x_t through torch's own nn.LSTM with the same weights
    fused = Model(cell.to_torch(), task, model.readout)
    x = batch.x.clone().requires_grad_()
    tasks.losses(task, fused(x), batch).sum().backward()
    assert torch.allclose(torch.tensor(dx, dtype=F64), x.grad.norm(dim=-1).mean(1), rtol=1e-9)


def test_the_gradient_profile_measures_gradients_below_float32s_range():
    """At T=400 the adding task's ∂ℓ/∂h_1 at initialisation lies far below float32's smallest
    normal number: float32 reports 0 there, the profile (float64, on a copy) its value, and the
    float32 model it was given is left as it was."""
    task = tasks.adding(400)
    model = Model(cells.LSTM(2, 16), task)
    batch = task.splits(0, 8).valid
    weights = [p.clone() for p in model.parameters()]
    rows = probes.gradient_profile(0, model, task, batch)
    first = next(r["value"] for r in rows if r["quantity"] == "dL/dh" and r["t"] == 0)
    assert 0 < first < torch.finfo(torch.float32).tiny
    with model.cell.trace() as trace:  # the same gradient in float32: gone
        out = model(batch.x)
    h1 = trace[0]["states"][0][0]
    (g,) = torch.autograd.grad(tasks.losses(task, out, batch).sum(), [h1])
    assert g.norm(dim=-1).mean().item() == 0.0
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert all(p.dtype == torch.float32 for p in model.parameters())
