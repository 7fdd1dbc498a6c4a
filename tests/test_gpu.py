"""The accelerator path (CUDA or MPS; skipped without one): the CPU's checks, on the device.

Every cell and ablation computes there what it computes on the CPU (which test_ablations ties to
the equations of docs/design.md), outputs and every gradient, through the whole-layer Functions and the
step loop; gradcheck of those Functions on the device; ours against torch's modules (cuDNN);
CUDA graphs of our cells replay what the cells compute; every implementation and dtype trains
through the runner and is recorded with the device."""
import pytest
import torch

import cells
from bench.backends import Backend
from bench.results import load_tables
from cells import scans
from hardware import accelerator
from test_ablations import FLAG_CASES, ids, make, scan_and_steps
from test_gradcheck import gradcheck_cell
from test_run import execute

pytestmark = pytest.mark.gpu


def precision(device: str) -> tuple[torch.dtype, float]:
    """The dtype the checks run in and their relative tolerance: float64 where the device has it."""
    return (torch.float32, 1e-4) if device == "mps" else (torch.float64, 1e-10)


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
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # cuDNN's default rounds to TF32
        (a, _), (b, _) = ours(x), ref(x)
        a.sum().backward()
        b.sum().backward()
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert (a - b).abs().max().item() <= tol
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert (p.grad - q.grad).abs().max().item() <= tol * 10


def _on(device, case, dtype, chunked, monkeypatch):
    """Outputs, final states and every gradient of the 2-layer cell `case` on `device`, and the
    same through the step loop, from one seed (so every device gets the same numbers)."""
    if chunked:  # the GRU backward's buffer holds 2 or 3 of the 6 steps: partial gradient sums
        monkeypatch.setattr(scans, "CHUNK_BYTES", dict.fromkeys((device, "cpu"), 2 * 2 * 5 * 4 * dtype.itemsize))
    torch.manual_seed(0)
    cell = make(case, 3, 4, 2, dtype=dtype)
    x, hx = torch.randn(6, 2, cell.input_size, dtype=dtype), tuple(torch.randn(2, 2, 4, dtype=dtype) for _ in range(cell.n_states))
    return scan_and_steps(cell.to(device), x.to(device), tuple(h.to(device) for h in hx))


@pytest.mark.parametrize("case,chunked",
                         [(c, False) for c in FLAG_CASES] + [(c, True) for c in FLAG_CASES if c[0] == "GRU"],
                         ids=lambda v: ids(v) if isinstance(v, tuple) else ("chunked" if v else "whole"))
def test_every_flag_computes_on_the_accelerator_what_it_computes_on_the_cpu(case, chunked, monkeypatch):
    device = accelerator()
    dtype, tol = precision(device)
    cpu_scan, cpu_steps = _on("cpu", case, dtype, chunked, monkeypatch)
    dev_scan, dev_steps = _on(device, case, dtype, chunked, monkeypatch)
    assert all(a.device.type == device for a in dev_scan + dev_steps)
    for got, want in ((dev_scan, cpu_scan), (dev_steps, cpu_steps), (dev_scan, dev_steps)):
        for a, b in zip(got, want, strict=True):
            assert (a.cpu() - b.cpu()).abs().max().item() <= tol * (1 + b.abs().max().item())


@pytest.mark.parametrize("case", FLAG_CASES, ids=ids)
def test_gradcheck_on_the_accelerator(case):
    if accelerator() == "mps":
        pytest.skip("MPS has no float64")
    assert gradcheck_cell(case, accelerator())


def cuda_only():
    if accelerator() != "cuda":
        pytest.skip("CUDA graphs are CUDA's")


@pytest.mark.parametrize("case", [("RNN", {}), ("LSTM", {}), ("LSTM", {"peepholes": True}), ("GRU", {}),
                                  ("GRU", {"tied_gates": False}), ("GRU", {"reset_after": False})], ids=ids)
def test_graphs_replay_what_the_cell_computes(case):
    """impl=graph against the eager cell, float64: outputs, final states and every gradient of
    training calls (a new input each, the parameters changed in between, the first graph
    replayed), then a call without autograd."""
    cuda_only()
    name, flags = case
    torch.manual_seed(0)
    cell = getattr(cells, name)(3, 8, 2, dtype=torch.float64, device="cuda", **flags)
    graphed = Backend("cuda", "graph", "float64", 1).build(cell)
    close = lambda a, b: (a - b).abs().max().item() <= 1e-10 * (1 + b.abs().max().item())  # noqa: E731
    for requires_grad in (True, False, True):
        x = torch.randn(6, 4, 3, dtype=torch.float64, device="cuda", requires_grad=requires_grad)
        got = []
        for m in (cell, graphed):
            cell.zero_grad(set_to_none=True)
            x.grad = None
            out, state = m(x)
            (out ** 2).sum().backward()  # an output gradient that differs per element
            # detached: a live graph through the parameters would break the next capture (torch's rule)
            got.append([t.detach().clone() for t in (out, *torch.utils._pytree.tree_leaves(state),
                                                     *(p.grad for p in cell.parameters()),
                                                     *([x.grad] if requires_grad else []))])
            del out, state
        assert all(close(a, b) for a, b in zip(got[1], got[0], strict=True))
        with torch.no_grad():  # replays read the parameters in place: an optimizer's step reaches them
            for p in cell.parameters():
                p.mul_(0.9)
    with torch.no_grad():
        first, _ = graphed(x)
        second, _ = graphed(x * 2)
        assert close(first, cell(x)[0]) and close(second, cell(x * 2)[0])  # outputs are copies


@pytest.mark.parametrize("backend", [
    ["backend.impl=loop"], ["backend.impl=fused"], ["backend.impl=script"], ["backend.impl=graph"],
    ["backend.dtype=bfloat16"], ["backend.dtype=bfloat16", "backend.impl=fused"],
    ["backend.dtype=bfloat16", "backend.impl=graph"],
    pytest.param(["backend.impl=compile"], marks=pytest.mark.slow),
    pytest.param(["backend.impl=compile_step"], marks=pytest.mark.slow)], ids=str)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_implementation_and_dtype_trains_on_the_accelerator(tmp_path, cell, backend):
    device = accelerator()
    if "backend.impl=graph" in backend:
        cuda_only()
    assert execute(tmp_path, f"cell={cell}", "task.seq_len=5", f"backend={device}", *backend) == "ok"
    r = load_tables(tmp_path)["runs"].iloc[0]
    want = dict(o.split("=") for o in backend)
    assert (r.device, r.impl, r["dtype"]) == (device, want.get("backend.impl", "loop"),
                                              want.get("backend.dtype", "float32"))
    if device == "cuda":
        assert r.device_name == torch.cuda.get_device_name() and r.cudnn == torch.backends.cudnn.version()


@pytest.mark.parametrize("impl", ["loop", "fused", "graph"])
def test_throughput_on_the_accelerator_records_time_and_memory(tmp_path, impl):
    device = accelerator()
    if impl == "graph":
        cuda_only()
    assert execute(tmp_path, "mode=throughput", "cell=gru", f"backend={device}", f"backend.impl={impl}",
                   "throughput.repeats=3", "throughput.warmup=1") == "ok"
    t = load_tables(tmp_path)["throughput"]
    assert set(t["pass"]) == {"forward", "forward_backward"} and (t.tokens_per_s > 0).all()
    assert (t.device == device).all() and (t.ref_seconds > 0).all()
    assert (t.saved_bytes.dropna() > 0).all() and t.saved_bytes.notna().sum() == 1
    if device == "cuda" and impl != "graph":  # a graph's memory is held from capture on: no per-pass peak
        assert (t.peak_bytes > 0).all()
