"""The interim main job: every named cell of conf/cell/ builds, counts and, where torch has the
same cell, matches it."""
import math

from bench import zoo

NAMED = {"rnn", "irnn", "lstm", "lstm_nig", "lstm_nfg", "lstm_nog", "lstm_niaf", "lstm_noaf", "lstm_peephole",
         "lstm_cifg", "lstm_fb1", "lstm_chrono", "gru", "gru_reset_before", "gru_no_reset", "gru_no_update",
         "gru_untied", "mgu", "janet", "ugrnn", "lstm_fgr", "mut1", "mut2", "mut3"}


def test_zoo_table_covers_every_named_cell_with_measured_deviations(capsys):
    rows = {r["cell"]: r for r in zoo.zoo_table(input_size=4)}
    assert set(rows) == NAMED
    for r in rows.values():
        assert r["n_params"] == r["closed_form"]
    assert math.isclose(rows["gru"]["vs_lstm"], 0.75) and math.isclose(rows["rnn"]["vs_lstm"], 0.25)
    with_twin = {n for n, r in rows.items() if r["dev_f64"] is not None}
    assert with_twin == {"rnn", "irnn", "lstm", "lstm_fb1", "lstm_chrono", "gru"}
    assert all(rows[n]["dev_f64"] < 1e-9 and rows[n]["dev_f32"] < 1e-2 for n in with_twin)
    zoo.main(["--input-size", "4"])
    printed = capsys.readouterr().out
    assert all(name in printed for name in NAMED) and "dev_f64" in printed
