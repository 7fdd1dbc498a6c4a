"""Equal tuning (bench.selection): each cell at its best trial on validation, pairs between the
chosen runs, the test set out of the choice, and the report's statement of the grid."""
import pandas as pd
import pytest

from bench import claims, selection, stats

from test_report import MARGIN, runs_of, tables, verdict


def trial(cell, scores, lr, valid=None, **kw):
    """runs_of at learning rate lr; `valid`: validation scores (default: the test scores)."""
    rows = runs_of(cell, scores, **kw)
    valid = scores if valid is None else valid
    return [dict(r, run_id=f"{r['run_id']}-lr{lr}", valid_score=v, **{"config.train.lr": lr})
            for r, v in zip(rows, valid)]


def test_each_cell_stands_for_its_best_learning_rate_on_validation():
    runs = claims.annotate(pd.DataFrame(trial("lstm", [0.2] * 3, 1e-3) + trial("lstm", [2.0] * 3, 3e-3)
                                        + trial("gru", [2.5] * 3, 1e-3) + trial("gru", [1.0] * 3, 3e-3)))
    chosen = selection.select(runs)
    assert sorted(zip(chosen.cell, chosen["config.train.lr"]))[::3] == [("gru", 1e-3), ("lstm", 3e-3)]
    pairs = stats.pairs(chosen, chosen.family == "gru", chosen.family == "lstm")
    assert len(pairs) == 3 and (pairs.score_a - pairs.score_b).tolist() == [0.5] * 3  # gru at 1e-3, lstm at 3e-3
    table = selection.trials(runs)
    assert table.trials.tolist() == [2] * 4 and table.chosen.sum() == 2
    assert "lr in {0.001, 0.003}" in selection.summary(table)
    assert "Chosen: train.lr 0.001 by 1, 0.003 by 1 (of 2 settings)" in selection.summary(table)
    wide = selection.wide(table)
    assert list(wide.columns) == ["family", "task", "seq_len", "valid score at lr 0.001", "valid score at lr 0.003",
                                  "chosen"] and wide.chosen.tolist() == ["0.001", "0.003"]
    assert "every cell had the same number of trials in each task and length (adding T=30: 2)" in selection.summary(table)


def test_the_test_set_plays_no_part_in_the_choice():
    # at 1e-2 the LSTM's test scores are its best, but validation prefers 3e-3
    runs = claims.annotate(pd.DataFrame(trial("lstm", [2.0] * 3, 3e-3, valid=[2.0] * 3)
                                        + trial("lstm", [3.0] * 3, 1e-2, valid=[1.5] * 3)))
    assert set(selection.select(runs)["config.train.lr"]) == {3e-3}


def test_old_and_new_rule_disagree_on_a_gate_when_the_standard_cell_needs_another_learning_rate():
    """At lr 1e-3 the LSTM fails and the LSTM without input gate does not; at 3e-3 the LSTM is a
    decade and a half better. With the learning rate a pair key (the old rule), a seed's pairs at
    both rates are averaged: +0.1, inside the margin, and the gate 'does not matter'. Each cell at
    its best rate on validation: +1.5, the gate matters."""
    rows = (trial("lstm", [0.2, 0.3, 0.25], 1e-3) + trial("lstm", [3.0, 3.1, 2.9], 3e-3)
            + trial("lstm_nig", [1.5, 1.6, 1.4], 1e-3, family="lstm", input_gate=False)
            + trial("lstm_nig", [1.5, 1.4, 1.6], 3e-3, family="lstm", input_gate=False))
    assert verdict("S7", tables(rows)) == stats.SUPPORTED
    runs = claims.annotate(pd.DataFrame(rows))
    keyed = runs.assign(seed=runs.seed.astype(str) + "/" + runs["config.train.lr"].astype(str))  # lr a pair key
    old = stats.pairs(keyed, keyed.variant == "", keyed.variant != "")
    est = stats.mean_diff(old.score_a - old.score_b, old.seed.str.split("/").str[0])
    assert est.n == 3 and 0 < est.mean < MARGIN


def test_unequal_trials_are_flagged():
    runs = claims.annotate(pd.DataFrame(trial("lstm", [2.0] * 3, 1e-3) + trial("lstm", [2.0] * 3, 3e-3)
                                        + trial("gru", [2.0] * 3, 1e-3)))
    text = selection.summary(selection.trials(runs))
    assert "cells had unequal numbers of trials** in adding T=30 ([1, 2])" in text


def test_runs_without_a_tuned_column_all_stand():
    runs = claims.annotate(pd.DataFrame(runs_of("lstm", [2.0] * 3)))
    assert len(selection.select(runs)) == 3


def test_trials_are_compared_on_the_seeds_they_share():
    """A grid on seeds 0-2, then seeds 3-5 at one learning rate only: those extra seeds (here much
    worse) do not tip the choice, and the chosen trial brings all its seeds."""
    rows = (trial("lstm", [2.0] * 3, 1e-3) + trial("lstm", [1.5] * 3, 3e-3)
            + [dict(r, seed=r["seed"] + 3, run_id=r["run_id"] + "-more") for r in trial("lstm", [0.1] * 3, 1e-3)])
    runs = claims.annotate(pd.DataFrame(rows))
    table = selection.trials(runs)
    assert table.seeds.tolist() == [6, 3] and table.compared_on.tolist() == [3, 3]
    assert table.chosen.tolist() == [True, False] and table.valid_score.tolist() == [2.0, 1.5]
    assert len(selection.select(runs)) == 6
    # no seed in common: each trial is judged on its own seeds
    apart = claims.annotate(pd.DataFrame(trial("lstm", [2.0] * 3, 1e-3)
                                         + [dict(r, seed=r["seed"] + 3) for r in trial("lstm", [1.5] * 3, 3e-3)]))
    assert selection.trials(apart).compared_on.tolist() == [3, 3]



def test_train_lr_best_runs_more_seeds_at_the_grids_choice(cli):
    """A grid on seeds 0-1, then `train.lr=best` on seeds 2-3: each new run takes the learning rate
    the recorded trials of its setting chose, records it, and the report's selection keeps the
    grid's choice with all four seeds."""
    from bench.results import load_tables
    assert cli("-m", "train.lr=0.001,0.01", "seed=0,1")[0] == 0
    grid = claims.annotate(load_tables(cli.results)["runs"])
    chosen = selection.trials(grid).query("chosen")["config.train.lr"].item()
    assert cli("-m", "train.lr=best", "seed=2,3")[0] == 0
    runs = claims.annotate(load_tables(cli.results)["runs"])
    assert sorted(runs[runs.seed >= 2]["config.train.lr"]) == [chosen, chosen]
    kept = selection.select(runs)
    assert sorted(kept.seed) == [0, 1, 2, 3] and set(kept["config.train.lr"]) == {chosen}


def test_best_reads_the_trials_of_its_own_setting_only():
    """A setting is the whole config but for seed and learning rate: the vanilla LSTM (peepholes)
    and its ablation without input gate are two settings, although the ablation's config only
    adds a key to the other's."""
    def config(**cell):
        return {"config.train.steps": 1000, "config.cell.peepholes": True,
                **{f"config.cell.{k}": v for k, v in cell.items()}}
    rows = [dict(r, **config()) for r in trial("lstm_peephole", [2.0] * 3, 1e-3, family="lstm", peepholes=True)
            + trial("lstm_peephole", [1.0] * 3, 1e-2, family="lstm", peepholes=True)]
    rows += [dict(r, **config(input_gate=False)) for r in trial("lstm_peephole", [1.0] * 3, 1e-3, family="lstm",
                                                                 peepholes=True, input_gate=False)
             + trial("lstm_peephole", [2.0] * 3, 1e-2, family="lstm", peepholes=True, input_gate=False)]
    runs = claims.annotate(pd.DataFrame(rows))
    assert selection.best(config(), runs) == 1e-3
    assert selection.best(config(input_gate=False), runs) == 1e-2


def test_best_refuses_trials_that_differ_in_what_the_config_does_not_set():
    rows = trial("lstm", [2.0] * 3, 1e-3) + [dict(r, run_id=r["run_id"] + "-gpu", device="cuda")
                                             for r in trial("lstm", [1.0] * 3, 1e-3)]
    with pytest.raises(ValueError, match=r"^train.lr=best: the recorded trials of this setting differ in device;"):
        selection.best({"config.train.steps": 1000}, claims.annotate(pd.DataFrame(rows)))


def test_records_of_before_and_after_the_path_column_are_one_setting():
    """Runs recorded before 2026-12-06 name the compiled loops (`native`); later ones the path they
    took (`path`). Neither parts a setting or a pair: every path computes the same function."""
    old = [dict(r, native="lstm,gru") for r in trial("lstm", [2.0] * 3, 1e-3) + trial("gru", [1.0] * 3, 1e-3)]
    new = [dict(r, run_id=r["run_id"] + "-new", seed=r["seed"] + 3, path="compiled")
           for r in trial("lstm", [1.0] * 3, 3e-3) + trial("gru", [2.0] * 3, 3e-3)]
    runs = claims.annotate(pd.DataFrame(old + new))
    assert selection.best({"config.train.steps": 1000}, runs[runs.family == "lstm"]) == 1e-3
    assert selection.trials(runs).trials.tolist() == [2] * 4
    assert len(stats.pairs(runs, runs.family == "gru", runs.family == "lstm")) == 6


def test_train_lr_best_without_a_recorded_grid_is_one_line(cli):
    code, out, err = cli("train.lr=best")
    assert code == 2 and err.strip() == ("rnnbench: error: train.lr=best: no trial of this setting is recorded in "
                                         "results_dir; allowed: a number, or best once a grid has run there "
                                         "(e.g. train.lr=0.003,0.01)")
    assert cli("train.lr=0.01")[0] == 0  # a grid of one, recorded after the refusal: best now finds it
    assert cli("train.lr=best", "seed=1")[0] == 0
