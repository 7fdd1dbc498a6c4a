"""What a run measures inside the network at an evaluation step, as tidy rows.

All probes run our own cell (for torch's fused modules, a copy of ours with the same weights:
gates and gradients are properties of the weights, not of the kernel) on a fixed probe batch.
- gradient norms per parameter block (per gate), of the training step's gradient before clipping;
- gate activations: mean, and the fraction saturated (below 0.1 or above 0.9), per layer and gate;
- the mean relative step change ||s_t - s_{t-1}|| / ||s_{t-1}|| of h and of c, per layer, and over
  the LSTM's slowest quarter of units (the longest time constants 1 / (1 - mean f));
- profiles over t of ||∂ℓ/∂h_t|| per layer and ||∂ℓ/∂x_t||, averaged over examples, where ℓ is
  each example's own loss (so the values do not shrink with the batch size), computed in float64.
For a bidirectional cell, `layer` in the gate, step-change and profile rows counts units (layer ·
2 + direction), and a reverse unit's profile runs over its own steps, from the last input back.
A batch of examples of their own lengths (Batch.lengths) is not probed: gates, step changes and
profiles are read at every step of every example, and a packed batch shrinks as its examples end
(the records hold its validation and test metrics and gradient norms per block).
"""
import copy

import torch

from . import tasks

SATURATED = 0.1  # a gate below 0.1 or above 0.9 counts as saturated
KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ch")


def row(step, split, metric, value, layer=None, param=None, gate=None) -> dict:
    return {"step": step, "split": split, "metric": metric, "value": float(value), "layer": layer,
            "param": param, "gate": gate}


def block_grad_norms(step: int, module: torch.nn.Module, layout, num_layers: int, hidden: int,
                     readout: torch.nn.Module) -> list[dict]:
    """||grad|| of each weight block of each parameter of each layer, and of the readout."""
    rows = []
    for k in range(num_layers):
        for kind in KINDS:
            for suffix in ("", "_reverse"):  # a bidirectional layer's reverse direction: param '..._reverse'
                p = getattr(module, f"{kind}_l{k}{suffix}", None)
                if p is None or p.grad is None:
                    continue
                parts = p.grad.split(1 if kind == "weight_ch" else hidden)
                rows += [row(step, "train", "grad_norm_block", g.norm(), k, kind + suffix, name)
                         for name, g in zip(layout.rows(kind), parts)]
    grads = [p.grad.flatten() for p in readout.parameters() if p.grad is not None]
    if grads:
        rows.append(row(step, "train", "grad_norm_block", torch.cat(grads).norm(), None, "readout", None))
    return rows


def _relative_change(seq: torch.Tensor) -> torch.Tensor:
    """seq (T, B, H) -> mean over t >= 1 and B of ||s_t - s_{t-1}|| / ||s_{t-1}||."""
    prev, diff = seq[:-1], seq[1:] - seq[:-1]
    return (diff.norm(dim=-1) / prev.norm(dim=-1).clamp_min(1e-12)).mean()


@torch.no_grad()
def inside(step: int, model, batch: tasks.Batch) -> list[dict]:
    """Gate statistics and step changes of h (and c) on `batch`, as metrics rows (none for a
    batch of variable lengths)."""
    if batch.lengths is not None:
        return []
    with model.cell.trace() as trace:
        model(batch.x)
    metrics = []
    for k, layer in enumerate(trace):
        for name in layer["gates"][0] if layer["gates"] else ():
            g = torch.stack([gates[name] for gates in layer["gates"]])  # (T, B, H)
            metrics.append(row(step, "valid", "gate_mean", g.mean(), k, None, name))
            saturated = ((g < SATURATED) | (g > 1 - SATURATED)).float().mean()
            metrics.append(row(step, "valid", "gate_saturated", saturated, k, None, name))
        names = "hc"[:len(layer["states"][0])]
        states = {name: torch.stack([s[i] for s in layer["states"]]) for i, name in enumerate(names)}  # (T, B, H)
        for name, seq in states.items():
            metrics.append(row(step, "valid", f"step_change_{name}", _relative_change(seq), k))
        if "c" in states and layer["gates"] and "f" in layer["gates"][0]:
            metrics += _slow_units(step, k, torch.stack([gates["f"] for gates in layer["gates"]]), states)
    return metrics


def _slow_units(step: int, layer: int, f: torch.Tensor, states: dict) -> list[dict]:
    """The LSTM's memory, unit by unit: unit j's time constant 1 / (1 - mean f_j) (in steps, f
    averaged over t and examples), and the step changes of h and c over the quarter of units with
    the longest time constants (at least one), the units that carry the memory."""
    tau = 1 / (1 - f.mean(dim=(0, 1))).clamp_min(1e-6)  # (H,)
    slow = tau.topk(max(1, len(tau) // 4)).indices
    return [row(step, "valid", "time_constant_slow", tau[slow].median(), layer),
            *(row(step, "valid", f"step_change_{name}_slow", _relative_change(seq[..., slow]), layer)
              for name, seq in states.items())]


def _float64(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device, torch.float64 if t.is_floating_point() else None)


def gradient_profile(step: int, model, task: tasks.Task, batch: tasks.Batch) -> list[dict]:
    """||∂ℓ/∂x_t|| and, per layer, ||∂ℓ/∂h_t|| over t, as profiles rows. Computed in float64 on
    a copy of the model, whatever the run's dtype (on the CPU for MPS, which has no float64):
    gradients that vanish through time fall below float32's smallest normal number (1.2e-38) past
    T = 100-200 at initialisation, where float32 would report zeros or subnormal noise; float64
    measures them down to 2.2e-308. A value of 0 is below even that (or h_t does not reach the loss).
    No rows for a batch of variable lengths."""
    if batch.lengths is not None:
        return []
    device = batch.x.device if batch.x.device.type != "mps" else torch.device("cpu")
    model = copy.deepcopy(model).to(device, torch.float64)
    batch = tasks.Batch(*(_float64(t, device) for t in (batch.x, batch.y, batch.score, batch.mask)))
    x = batch.x.clone().requires_grad_()
    with torch.autocast(device.type, enabled=False), model.cell.trace() as trace:
        out = model(x)
    profiles = []
    hs = [s[0] for layer in trace for s in layer["states"]]  # h_t (B, H) of every layer and step
    loss = tasks.losses(task, out, batch).sum()  # per-example losses: ∂L/∂h_t of one example is its own
    grads = torch.autograd.grad(loss, [x, *hs], allow_unused=True)
    T = len(trace[0]["states"])
    for t, g in enumerate(grads[0]):
        profiles.append({"step": step, "t": t, "quantity": "dL/dx", "layer": None,
                         "value": g.norm(dim=-1).mean().item()})
    for k in range(len(trace)):
        for t in range(T):
            g = grads[1 + k * T + t]
            value = 0.0 if g is None else g.norm(dim=-1).mean().item()  # None: h_t does not reach the loss
            profiles.append({"step": step, "t": t, "quantity": "dL/dh", "layer": k, "value": value})
    return profiles
