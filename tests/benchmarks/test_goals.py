"""The speed goals, as ratios measured in one process: forward + backward, float32, one thread,
T=100, B=64, I=32, H=256, our cells exactly as `from cells import LSTM, GRU` gives them:
- the LSTM and every LSTM ablation at most 1.3x the time of torch's fused nn.LSTM;
- the GRU and every GRU ablation at least 1.3x faster than torch's nn.GRU.
Rounds are interleaved (each module once per round) so that drift hits all alike; medians.
Run by `make bench`; skipped under --benchmark-disable (`make test`): speed is not a unit test."""
import functools

import pytest
import torch

import cells
from bench import measure

T, B, I, H = 100, 64, 32, 256
ROUNDS = 15
LSTMS = {"lstm": {}, "nig": {"input_gate": False}, "nfg": {"forget_gate": False}, "nog": {"output_gate": False},
         "niaf": {"input_activation": "identity"}, "noaf": {"output_activation": "identity"},
         "peephole": {"peepholes": True}, "cifg": {"coupled_gates": True}}
GRUS = {"gru": {}, "reset_before": {"reset_after": False}, "no_reset": {"reset_gate": False},
        "no_update": {"update_gate": False}, "untied": {"tied_gates": False}, "mgu": {"minimal": True}}


def median_times(modules: dict) -> dict:
    x = torch.randn(T, B, I)

    def step(m):
        m.zero_grad(set_to_none=True)
        out, _ = m(x)
        out.sum().backward()

    timings = measure.time_calls({name: functools.partial(step, m) for name, m in modules.items()}, "cpu",
                                 repeats=ROUNDS, warmup=2)
    return {name: t.median for name, t in timings.items()}


@pytest.mark.parametrize("family,reference,variants,goal", [
    ("LSTM", torch.nn.LSTM, LSTMS, "at most 1.3x nn.LSTM's time"),
    ("GRU", torch.nn.GRU, GRUS, "at least 1.3x faster than nn.GRU"),
])
def test_speed_goal(benchmarks_enabled, family, reference, variants, goal):
    if not benchmarks_enabled:
        pytest.skip("speed goals are measured by `make bench`, not by the unit tests")
    torch.manual_seed(0)
    modules = {"torch": reference(I, H), **{k: getattr(cells, family)(I, H, **f) for k, f in variants.items()}}
    t = median_times(modules)
    ratios = {k: t[k] / t["torch"] for k in variants}
    print(f"\n{family} forward+backward, T={T} B={B} I={I} H={H}, {torch.get_num_threads()} thread(s), "
          f"compiled loops {'on' if cells.native.active() else 'off'}: "
          f"torch {t['torch'] * 1e3:.1f} ms; ours / torch: "
          + ", ".join(f"{k} {r:.2f}" for k, r in ratios.items()))
    # what an ablation costs per multiply-add (weights per token) against the standard cell's:
    # near 1 where its time is its arithmetic's, not the loop's (the untied GRU has 4/3 the GRU's)
    std = next(iter(variants))
    macs = {k: sum(w.numel() for n, w in modules[k].named_parameters() if n.startswith("weight")) for k in variants}
    print(f"time per multiply-add over {std}'s: "
          + ", ".join(f"{k} {t[k] / t[std] * macs[std] / macs[k]:.2f}" for k in variants if k != std))
    limit = 1.3 if family == "LSTM" else 1 / 1.3
    slow = {k: round(r, 2) for k, r in ratios.items() if r > limit}
    assert not slow, f"{family} goal ({goal}) missed by: {slow}"
