"""Fast paths for a layer's time loop, registered with what they cover.

A cell family's step function (its `_prepare`) is the definition of the cell. An acceleration
computes the same layer another way (a whole-layer autograd Function, compiled loops) and says
what it serves: the family, the flag sets (a predicate on the cell's resolved flags), the devices
and dtypes, and the modes of a call it can run in (grad, no_grad, tracing, autocast). `choose`
takes the first registered acceleration that serves a call (each family registers its fastest
first); where none does, the layer runs the step loop (`STEPS`). Each layer records the path it
took (`Recurrent.paths`), and tests/test_accelerations.py proves every registered acceleration
equal to the step loop over every flag set it claims.
"""
from dataclasses import dataclass, field
from typing import Callable

import torch

STEPS = "steps"  # the path of a layer that no acceleration serves: the step loop
MODES = frozenset({"grad", "no_grad", "tracing", "autocast"})


@dataclass(frozen=True)
class Acceleration:
    name: str  # the path a layer records when it runs this acceleration
    family: str  # the cell family it serves: 'lstm', 'gru', 'rnn'
    run: Callable  # run(cell, k, x, state) -> (outputs (T, B, H), last state): unit k, as the steps compute it
    covers: Callable[[dict], bool] = lambda flags: True  # the flag sets it computes (and 'proj_size')
    devices: tuple[str, ...] | None = None  # device types; None: any
    dtypes: tuple[torch.dtype, ...] | None = None  # None: any
    modes: frozenset = field(default=frozenset({"grad", "no_grad"}))  # the modes of a call it can run in
    available: Callable[[], bool] = lambda: True  # asked last (it may build something)

    def serves(self, family: str, flags: dict, x: torch.Tensor, modes: frozenset) -> bool:
        return (family == self.family and modes <= self.modes and self.covers(flags)
                and (self.devices is None or x.device.type in self.devices)
                and (self.dtypes is None or x.dtype in self.dtypes) and self.available())


REGISTRY: list[Acceleration] = []


def register(acceleration: Acceleration) -> Acceleration:
    """Add an acceleration; a family registers its fastest first."""
    assert acceleration.modes <= MODES, f"unknown modes {set(acceleration.modes - MODES)}"
    assert acceleration.name != STEPS and acceleration.name not in {
        a.name for a in REGISTRY if a.family == acceleration.family}, f"{acceleration.name} is registered already"
    REGISTRY.append(acceleration)
    return acceleration


def modes(cell, x: torch.Tensor) -> frozenset:
    """The modes of a call of `cell` on x: grad or no_grad; tracing where the steps must be seen
    (the cell's trace() or steps_through(), torch.jit tracing, torch.compile); autocast."""
    found = {"grad" if torch.is_grad_enabled() else "no_grad"}
    if (cell._trace is not None or cell._wrap_step is not None or torch.jit.is_tracing()
            or torch.compiler.is_compiling()):
        found.add("tracing")
    if torch.is_autocast_enabled(x.device.type):
        found.add("autocast")
    return frozenset(found)


def choose(cell, x: torch.Tensor) -> Acceleration | None:
    """The first registered acceleration that serves this call of `cell` on x (T, B, I), or None
    (the steps): also for an empty batch (B = 0), which no acceleration is written for."""
    if x.shape[1] == 0:
        return None
    family, call = type(cell).__name__.lower(), modes(cell, x)
    flags = cell.flags | {"proj_size": cell.proj_size}  # what covers() reads: the flags, and a projection
    return next((a for a in REGISTRY if a.serves(family, flags, x, call)), None)


def register_scan(family: str, scan: Callable, covers: Callable[[dict], bool] = lambda flags: True) -> None:
    """A family's whole-layer autograd Function, scan(cell, k, x, state, loops), over the flag sets
    `covers` accepts, as its two accelerations: `compiled`, with the compiled CPU loops (cells/native.py) where they are built,
    in float32 and float64, with and without grad (their forward alone is faster than the steps);
    and `scan`, its torch loops on any device, under grad only (without grad the steps are as fast)."""
    from . import native

    register(Acceleration("compiled", family, lambda cell, k, x, state: scan(cell, k, x, state, native.module()),
                          covers, devices=("cpu",), dtypes=(torch.float32, torch.float64), available=native.active))
    register(Acceleration("scan", family, lambda cell, k, x, state: scan(cell, k, x, state, None),
                          covers, modes=frozenset({"grad"})))


def ran(cell, call: Callable, otherwise: str):
    """call()'s result and the path `cell` took in it, as dispatch recorded it ('compiled', 'scan',
    'steps'; the layers' paths joined by ',' where they differ), or `otherwise` where the cell did
    not run (another module computed instead: torch's fused one)."""
    cell.paths = [None] * len(cell.paths)
    result = call()
    return result, ",".join(dict.fromkeys(p or otherwise for p in cell.paths))
