"""The speed goals, as ratios measured in one process: forward + backward, float32, one thread,
T=100, B=64, I=32, H=256, our cells exactly as `from cells import LSTM, GRU` gives them:
- the LSTM and every LSTM ablation at most 1.3x the time of torch's fused nn.LSTM;
- the GRU and every GRU ablation at least 1.3x faster than torch's nn.GRU;
and across lengths, for the RNN, LSTM and GRU at H=32 and 256:
- our cost per token at every T from 100 to 1,000 at most 1.3x that at T=100, where torch's own
  modules manage it; where they don't (the machine's caches, not the cells), at most 1.1x their
  growth. T=50 is shown: there a call's fixed cost weighs on half as many tokens.
Rounds are interleaved (each module once per round) so that drift hits all alike; medians.
Run by `make bench`; skipped under --benchmark-disable (`make test`): speed is not a unit test."""
import functools

import pytest
import torch

import cells
from bench import measure, tasks

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


LENGTHS = (50, 100, 200, 400, 1000)
PER_TOKEN_LIMIT = 1.3  # the cost per token at any length over that at T=100
TORCH_MARGIN = 1.1  # where torch's own growth exceeds it: ours at most this much more


@pytest.mark.parametrize("hidden", [32, 256])
def test_cost_per_token_does_not_grow_with_length(benchmarks_enabled, hidden):
    """Forward + backward of a cell and a readout on the adding task's inputs, the loss at the last
    step as in training: gradients vanish through time and reach float32's subnormal range past
    T = 200, which many x86 CPUs compute tens of times slower (docs/numerics.md). Subnormals are
    flushed, as in every run (backend.flush_denormal)."""
    if not benchmarks_enabled:
        pytest.skip("speed goals are measured by `make bench`, not by the unit tests")
    flushing = cells.native.flushes_denormals()
    cells.native.flush_denormal(True)
    try:
        torch.manual_seed(0)
        modules = {(name, impl): (getattr(cells, name.upper())(2, hidden) if impl == "loop"
                                  else getattr(torch.nn, name.upper())(2, hidden), torch.nn.Linear(hidden, 1))
                   for name in ("rnn", "lstm", "gru") for impl in ("ours", "torch")}
        batches = {T: tasks.adding(T).splits(0, 1)[0](B) for T in LENGTHS}

        def step(cell, readout, batch):
            cell.zero_grad(set_to_none=True)
            out, _ = cell(batch.x)
            ((readout(out[-1]).squeeze(-1) - batch.y) ** 2).mean().backward()

        calls = {(*key, T): functools.partial(step, *modules[key], batches[T]) for key in modules for T in LENGTHS}
        t = {key: timing.median / (key[2] * B) for key, timing in
             measure.time_calls(calls, "cpu", repeats=5 if hidden > 32 else 15, warmup=1).items()}
    finally:
        cells.native.flush_denormal(flushing)
    ratios = {key: {T: t[(*key, T)] / t[(*key, 100)] for T in LENGTHS} for key in modules}
    print(f"\nforward+backward per token over T=100's, H={hidden} B={B} I=2, {torch.get_num_threads()} thread(s), "
          f"subnormals flushed; T={', '.join(map(str, LENGTHS))}:")
    for (name, impl), r in ratios.items():
        print(f"  {name} {impl} ({t[(name, impl, 100)] * 1e6:.2f} us/token at T=100): "
              + " ".join(f"{v:.2f}" for v in r.values()))
    limit = {(name, T): max(PER_TOKEN_LIMIT, TORCH_MARGIN * ratios[(name, "torch")][T]) for name, _ in modules for T in LENGTHS}
    beyond = [f"{name} T={T} ({v:.2f})" for (name, impl), r in ratios.items() for T, v in r.items()
              if impl == "torch" and T > 100 and v > PER_TOKEN_LIMIT]
    if beyond:
        print(f"  torch's own modules grow past {PER_TOKEN_LIMIT}x at: {', '.join(beyond)}")
    slow = {f"{name} T={T}": round(v, 2) for (name, impl), r in ratios.items() for T, v in r.items()
            if impl == "ours" and T > 100 and v > limit[(name, T)]}
    assert not slow, f"cost per token above {PER_TOKEN_LIMIT}x that at T=100 (or {TORCH_MARGIN}x torch's growth): {slow}"


# The variants no acceleration covers (docs/cells.md) and the standard cell each is set beside;
# MUT1 and MUT2 take input of the hidden size, so their row compares with the GRU at I = H.
STEP_LOOP = {"janet": ("LSTM", {"coupled_gates": True, "coupled_shift": 1.0, "output_gate": False,
                                "output_activation": "identity"}, I),
             "fgr": ("LSTM", {"peepholes": True, "gate_recurrence": True}, I),
             "mut1": ("GRU", {"reset_after": False, "mutation": 1}, H),
             "mut2": ("GRU", {"reset_after": False, "mutation": 2}, H),
             "mut3": ("GRU", {"reset_after": False, "mutation": 3}, I)}


def test_variants_without_acceleration_run_the_step_loop(benchmarks_enabled):
    """What running the step loop costs: each variant's forward + backward time over its standard
    cell's (ours, on its fastest path) and over torch's module, same sizes, interleaved rounds; and
    that dispatch sends the variants to the step loop and the standard cells past it."""
    if not benchmarks_enabled:
        pytest.skip("speed is measured by `make bench`, not by the unit tests")
    torch.manual_seed(0)
    lines = []
    for name, (family, flags, width) in STEP_LOOP.items():
        modules = {"variant": getattr(cells, family)(width, H, **flags), "ours": getattr(cells, family)(width, H),
                   "torch": getattr(torch.nn, family)(width, H)}
        x = torch.randn(T, B, width)

        def step(m):
            m.zero_grad(set_to_none=True)
            out, _ = m(x)
            out.sum().backward()

        t = {k: v.median for k, v in measure.time_calls({k: functools.partial(step, m) for k, m in modules.items()},
                                                         "cpu", repeats=5, warmup=1).items()}
        assert modules["variant"].paths == ["steps"] and modules["ours"].paths != ["steps"], name
        macs = {k: sum(w.numel() for n, w in modules[k].named_parameters() if n.startswith("weight"))
                for k in ("variant", "ours")}
        lines.append(f"  {name} (I={width}): {t['variant'] * 1e3:.0f} ms, {t['variant'] / t['ours']:.2f}x our "
                     f"{family} ({modules['ours'].paths[0]}), {t['variant'] / t['torch']:.2f}x nn.{family}; per "
                     f"multiply-add {t['variant'] / t['ours'] * macs['ours'] / macs['variant']:.2f}x our {family}'s")
    print(f"\nthe step loop, forward+backward, T={T} B={B} H={H}, {torch.get_num_threads()} thread(s):\n"
          + "\n".join(lines))


PACKED_LIMIT = 1.3  # packed input over the step loop on the same steps, unpacked
BIDIRECTIONAL_LIMIT = 1.3  # a bidirectional layer over twice a one-direction layer, both ours


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_packed_and_bidirectional_input_cost(benchmarks_enabled, monkeypatch, family):
    """What packed and bidirectional input cost, forward + backward, same sizes: packed input
    (every sequence T steps long: the same work as unpacked) runs the step loop, a batch that
    shrinks as its sequences end; goal: at most PACKED_LIMIT x the step loop on the same input
    unpacked. A bidirectional layer runs each direction on its fastest path; goal: at most
    BIDIRECTIONAL_LIMIT x twice one direction. Both are shown against ours unpacked and torch's."""
    if not benchmarks_enabled:
        pytest.skip("speed is measured by `make bench`, not by the unit tests")
    from torch.nn.utils.rnn import pack_padded_sequence

    from cells import accelerations
    torch.manual_seed(0)
    ours, torch_module = getattr(cells, family)(I, H), getattr(torch.nn, family)(I, H)
    ours_bi, torch_bi = getattr(cells, family)(I, H, bidirectional=True), getattr(torch.nn, family)(I, H, bidirectional=True)
    x = torch.randn(T, B, I)
    packed = pack_padded_sequence(x, torch.full((B,), T), enforce_sorted=False)

    def step(m, inputs):
        m.zero_grad(set_to_none=True)
        out, _ = m(inputs)
        (out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out).sum().backward()

    calls = {"ours": (ours, x), "ours packed": (ours, packed), "torch": (torch_module, x),
             "torch packed": (torch_module, packed), "ours bidirectional": (ours_bi, x),
             "torch bidirectional": (torch_bi, x)}
    t = {k: v.median for k, v in measure.time_calls({k: functools.partial(step, *c) for k, c in calls.items()},
                                                     "cpu", repeats=ROUNDS, warmup=2).items()}
    fast = accelerations.ran(ours, functools.partial(step, ours, x), "-")[1]
    assert accelerations.ran(ours, functools.partial(step, ours, packed), "-")[1] == accelerations.STEPS
    with monkeypatch.context() as m:  # no acceleration: the step loop on unpacked input
        m.setattr(accelerations, "REGISTRY", [])
        steps = measure.time_calls({"steps": functools.partial(step, ours, x)}, "cpu", repeats=5, warmup=1)
    t["steps"] = steps["steps"].median
    packed_ratio, bi_ratio = t["ours packed"] / t["steps"], t["ours bidirectional"] / (2 * t["ours"])
    print(f"\n{family} forward+backward, T={T} B={B} I={I} H={H}, {torch.get_num_threads()} thread(s): "
          f"ours {t['ours'] * 1e3:.0f} ms ({fast}), "
          f"step loop {t['steps'] * 1e3:.0f} ms; packed {t['ours packed'] * 1e3:.0f} ms = {packed_ratio:.2f}x the "
          f"step loop, {t['ours packed'] / t['ours']:.2f}x ours unpacked, {t['ours packed'] / t['torch packed']:.2f}x "
          f"torch's packed; bidirectional {t['ours bidirectional'] * 1e3:.0f} ms = {bi_ratio:.2f}x twice one "
          f"direction, {t['ours bidirectional'] / t['torch bidirectional']:.2f}x torch's bidirectional")
    assert packed_ratio <= PACKED_LIMIT, f"packed input costs {packed_ratio:.2f}x the step loop (goal {PACKED_LIMIT})"
    assert bi_ratio <= BIDIRECTIONAL_LIMIT, f"bidirectional costs {bi_ratio:.2f}x two directions (goal {BIDIRECTIONAL_LIMIT})"
