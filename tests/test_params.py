"""Parameter counts: the closed form of docs/design.md, G·(H·(I+H) + 2H) + P·H per layer and direction for
every flag combination, count_params without a module, match_hidden_size, and the contradictions refused."""
import itertools

import pytest

import cells
from reference import expected_blocks, expected_peepholes

I, H = 3, 5


def closed_form(family, flags, input_size, hidden_size, num_layers, bias, bidirectional=False):
    G, P = len(expected_blocks(family, flags)), len(expected_peepholes(flags) if family == "lstm" else ())
    D = 2 if bidirectional else 1  # each direction its own parameters; layers above read D·H
    widths = [input_size] + [D * hidden_size] * (num_layers - 1)
    return D * sum(G * (hidden_size * (w + hidden_size) + (2 * hidden_size if bias else 0)) + P * hidden_size
                   for w in widths)


def lstm_contradiction(f, bias):
    return ((f["coupled_gates"] and not f["input_gate"]) or (f["coupled_gates"] and not f["forget_gate"])
            or (f["forget_bias"] is not None and (not f["forget_gate"] or not bias))
            or (f["peepholes"] and not (f["input_gate"] or f["forget_gate"] or f["output_gate"])))


def gru_contradiction(f, bias):
    return ((f["minimal"] and not (f["reset_gate"] and f["update_gate"] and f["tied_gates"]))
            or (not f["tied_gates"] and not f["update_gate"]))


def combos(space):
    names = list(space)
    return [dict(zip(names, values)) for values in itertools.product(*space.values())]


SPACES = {
    "lstm": (combos({"input_gate": (True, False), "forget_gate": (True, False), "output_gate": (True, False),
                     "peepholes": (False, True), "coupled_gates": (False, True),
                     "input_activation": ("tanh", "identity"), "output_activation": ("tanh", "identity"),
                     "forget_bias": (None, 1.0)}), lstm_contradiction),
    "gru": (combos({"reset_after": (True, False), "reset_gate": (True, False), "update_gate": (True, False),
                    "tied_gates": (True, False), "minimal": (False, True)}), gru_contradiction),
    "rnn": (combos({"nonlinearity": ("tanh", "relu")}), lambda f, bias: False),
}


@pytest.mark.parametrize("family", list(SPACES))
def test_every_flag_combination_counts_by_the_closed_form_or_is_refused(family):
    cls, (space, contradictory) = cells.CELLS[family], SPACES[family]
    refused = counted = 0
    for flags, num_layers, bias, bi in itertools.product(space, (1, 2), (True, False), (False, True)):
        if contradictory(flags, bias):
            with pytest.raises(ValueError):
                cls(I, H, num_layers, bias=bias, bidirectional=bi, **flags)
            with pytest.raises(ValueError):
                cells.count_params(family, I, H, num_layers, bias=bias, bidirectional=bi, **flags)
            refused += 1
            continue
        module = cls(I, H, num_layers, bias=bias, bidirectional=bi, **flags)
        want = closed_form(family, flags, I, H, num_layers, bias, bi)
        assert sum(p.numel() for p in module.parameters()) == want, flags
        assert cells.count_params(family, I, H, num_layers, bias=bias, bidirectional=bi, **flags) == want
        assert cells.count_params(cls, I, H, num_layers, bias=bias, bidirectional=bi, **flags) == want
        blocks = expected_blocks(family, flags)
        assert module.weight_hh_l0.shape == (len(blocks) * H, H)  # the layout drops removed blocks
        counted += 1
    assert counted > 0 and (refused > 0 or family == "rnn")


def test_standard_cells_have_1_4_3_blocks_and_gru_is_three_quarters_of_lstm():
    for i, h in [(1, 64), (10, 128), (32, 256)]:
        rnn, lstm, gru = (cells.count_params(c, i, h) for c in ("rnn", "lstm", "gru"))
        assert lstm == 4 * (h * (i + h) + 2 * h) and gru == 3 * (h * (i + h) + 2 * h) and rnn == lstm // 4
        assert gru / lstm == 0.75


def test_reset_before_keeps_torchs_shapes():
    a, b = cells.GRU(I, H), cells.GRU(I, H, reset_after=False)
    assert [(n, p.shape) for n, p in a.named_parameters()] == [(n, p.shape) for n, p in b.named_parameters()]


@pytest.mark.parametrize("mutation,count", [
    (1, lambda i, h: 2 * h * i + 2 * h * h + 6 * h), (2, lambda i, h: 2 * h * i + 3 * h * h + 6 * h),
    (3, lambda i, h: 3 * h * i + 3 * h * h + 6 * h)])
def test_mut1_3_count_what_their_equations_weigh(mutation, count):
    """docs/cells.md: MUT1's n and MUT2's r take x_t unweighted (I = H), MUT1's z sees no h; two
    biases per block, as torch's layout has them."""
    for i, h, layers in ((H, H, 1), (8, 8, 2), (3, 7, 2)):
        if mutation != 3 and i != h:
            with pytest.raises(ValueError, match="input_size must equal hidden_size"):
                cells.count_params("gru", i, h, layers, reset_after=False, mutation=mutation)
            continue
        want = count(i, h) + (layers - 1) * count(h, h)
        assert cells.count_params("gru", i, h, layers, reset_after=False, mutation=mutation) == want
        module = cells.GRU(i, h, layers, reset_after=False, mutation=mutation)
        assert sum(p.numel() for p in module.parameters()) == want


def test_peephole_rows_follow_the_gates_that_have_their_own_block():
    assert cells.LSTM(I, H, peepholes=True).weight_ch_l0.shape == (3, H)
    assert cells.LSTM(I, H, peepholes=True, coupled_gates=True).layout.peepholes == ("f", "o")
    assert cells.LSTM(I, H, peepholes=True, output_gate=False).layout.peepholes == ("i", "f")
    assert cells.LSTM(I, H, 2, peepholes=True, input_gate=False).weight_ch_l1.shape == (2, H)


@pytest.mark.parametrize("cell,flags", [("gru", {}), ("rnn", {}), ("gru", {"minimal": True}),
                                        ("lstm", {"coupled_gates": True}), ("lstm", {"peepholes": True}),
                                        ("gru", {"tied_gates": False})], ids=str)
@pytest.mark.parametrize("input_size,lstm_hidden", [(1, 128), (10, 64), (8, 128), (32, 256), (1, 512)])
def test_match_hidden_size_matches_an_lstm_within_one_percent(cell, flags, input_size, lstm_hidden):
    target = cells.count_params("lstm", input_size, lstm_hidden)
    h = cells.match_hidden_size(cell, target, input_size, **flags)
    count = lambda n: cells.count_params(cell, input_size, n, **flags)  # noqa: E731
    assert abs(count(h) - target) <= 0.01 * target
    assert abs(count(h) - target) <= min(abs(count(h - 1) - target), abs(count(h + 1) - target))


def test_match_hidden_size_takes_the_closest_count_where_one_percent_is_out_of_reach():
    """At H ~ 32 one step of H moves a count by ~3%: the closest is the best there is."""
    target = cells.count_params("lstm", 1, 32)
    for cell in ("rnn", "gru"):
        h = cells.match_hidden_size(cell, target, 1)
        gaps = [abs(cells.count_params(cell, 1, n) - target) for n in (h - 1, h, h + 1)]
        assert gaps[1] == min(gaps)
    assert cells.match_hidden_size("rnn", 1, 10) == 1  # below the smallest cell: the smallest


def test_match_hidden_size_is_exact_on_its_own_counts_and_two_layers():
    for h in (1, 7, 64, 300):
        assert cells.match_hidden_size("gru", cells.count_params("gru", 5, h, 2), 5, 2) == h


def test_count_params_refuses_an_unknown_cell():
    with pytest.raises(ValueError, match="'rnn' \\| 'lstm' \\| 'gru'"):
        cells.count_params("transformer", I, H)
