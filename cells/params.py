"""Parameter counts in closed form, without building a module, and parameter matching."""
from ._base import Recurrent, check_size
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN

CELLS: dict[str, type[Recurrent]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def _cell_class(cell) -> type[Recurrent]:
    if isinstance(cell, type) and issubclass(cell, Recurrent):
        return cell
    if isinstance(cell, str) and cell.lower() in CELLS:
        return CELLS[cell.lower()]
    raise ValueError(f"cell={cell!r} is not valid; allowed: {' | '.join(map(repr, CELLS))} or one of their classes")


def count_params(cell, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 bidirectional: bool = False, proj_size: int = 0, **flags) -> int:
    """Recurrent parameters of `cell` with `flags`: per layer and direction G_x·H·I + G_h·H·P_h +
    2G·H + P·H + (R·H)² (+ proj_size·H for the projection), where G is the number of blocks the
    flags leave (1, 4, 3 for the standard RNN, LSTM, GRU), G_x and G_h those with an input and a
    hidden weight (G, but for MUT1-3), P_h the width of h (proj_size or H), P the peephole rows, R
    the gates that feed each other (FGR), and I the input size of layer 0 and D·P_h above it (D =
    2 bidirectional). Flags and sizes are checked as the constructor checks them."""
    cls = _cell_class(cell)
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        check_size(name, value)
    resolved = cls.resolve_flags(flags)
    layout = cls.make_layout(resolved)
    cls.check_init(resolved, layout, bias)
    cls.check_sizes(resolved, input_size, hidden_size, num_layers, bidirectional, proj_size)
    G, P, R, H = len(layout.blocks), len(layout.peepholes), len(layout.recurrent_gates), hidden_size
    G_x, G_h = len(layout.rows("weight_ih")), len(layout.rows("weight_hh"))
    D, out = 2 if bidirectional else 1, proj_size or hidden_size
    widths = [input_size] + [D * out] * (num_layers - 1)
    return D * sum(G_x * H * width + G_h * H * out + 2 * G * H * bias + P * H + (R * H) ** 2 + proj_size * H
                   for width in widths)


def match_hidden_size(cell, target_params: int, input_size: int, num_layers: int = 1, **flags) -> int:
    """The hidden size whose count_params is closest to target_params (the smaller on a tie)."""
    check_size("target_params", target_params)
    count = lambda h: count_params(cell, input_size, h, num_layers, **flags)  # noqa: E731
    lo, hi = 1, 1
    while count(hi) < target_params:  # the count grows strictly with H: double, then bisect
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target_params else (lo, mid)
    return min((lo, hi), key=lambda h: (abs(count(h) - target_params), h))
