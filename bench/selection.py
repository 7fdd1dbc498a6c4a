"""Equal tuning: each cell at its best configuration on validation. For each cell, task, length
and everything else that makes two runs comparable (stats.PAIR_KEYS but the seed), the runs
that differ only in the tuned hyperparameters (TUNED) are the trials of one setting: the points
of a grid (train.lr=1e-3,3e-3,1e-2) or the trials of a tuning sweeper alike. The trial with the
best mean validation score stands for the cell there; its runs are the ones the claims compare
(on test), and pairs join the selected runs of two cells whatever their learning rates. Trials are compared on the seeds they share, so that a grid can run on a few seeds and
the chosen trial on more. The test set plays no part in the choice."""
import pandas as pd

from . import stats

TUNED = ["config.train.lr"]  # what a trial may change; never a pair key
assert not set(TUNED) & set(stats.PAIR_KEYS)
CELL = ["family", "variant", "sized"]  # which cell (claims.annotate's columns)
MEASURED = ("seeds", "compared_on", "valid_score", "trials", "chosen")  # trials' columns after setting and tuned


def trials(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting and trial of the training runs: the cell, the setting's keys, the
    tuned values, its seeds, the mean validation score over the seeds every trial of its setting
    has (`compared_on` of them; a diverged run's score counts as 0, chance; a failed run is left
    out), how many trials its setting had, and whether it was chosen (the best mean; ties go to
    the first in sorted order). Comparing on shared seeds lets a grid run on a few seeds and the
    chosen trial on more: the extra seeds do not tip the choice."""
    train = runs[runs.training & runs.valid_score.notna()]
    tuned = [k for k in TUNED if k in train]
    setting = [*CELL, *(k for k in stats.PAIR_KEYS if k in train and k != "seed")]
    columns = [*setting, *tuned, *MEASURED]
    if train.empty or not tuned:
        return pd.DataFrame(columns=columns)
    keys = _filled(train, setting + tuned).assign(valid_score=train.valid_score, seed=train.seed)
    seeds = keys.groupby(setting + tuned).seed.agg(frozenset).rename("own").reset_index()
    common = seeds.groupby(setting).own.transform(lambda s: [frozenset.intersection(*s)] * len(s))
    seeds["shared"] = [c or own for c, own in zip(common, seeds.own)]  # none in common: each on its own
    keys = keys.merge(seeds[[*setting, *tuned, "shared"]], on=setting + tuned)
    on_shared = keys[[seed in shared for seed, shared in zip(keys.seed, keys.shared)]]
    table = seeds.assign(seeds=seeds.own.map(len), compared_on=seeds.shared.map(len)).merge(
        on_shared.groupby(setting + tuned).valid_score.mean().reset_index(), on=setting + tuned, how="left")
    table = table.sort_values(setting + tuned, key=lambda c: c.map(_order)).reset_index(drop=True)
    grouped = table.groupby(setting, sort=False)
    table["trials"] = grouped.valid_score.transform("size")
    best = grouped.valid_score.idxmax()  # the first maximum: sorted order breaks ties
    table["chosen"] = table.index.isin(best.dropna())
    return table[columns]


def select(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the claims read: every run that is not a training run, and the training runs of
    each setting's chosen trial. Runs without a validation score (failed) go with their trial."""
    table = trials(runs)
    tuned = [k for k in TUNED if k in runs]
    if not tuned or table.empty:
        return runs
    keys = [c for c in table.columns if c not in MEASURED]
    chosen = table[table.chosen][keys].assign(_chosen=True)
    marked = _filled(runs, keys).merge(chosen, on=keys, how="left")._chosen.fillna(False).to_numpy(bool)
    return runs[~runs.training.to_numpy(bool) | marked]


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """The trials table as the report shows it: one row per cell, task, length and setting (only
    the setting's columns that vary), the mean validation score at each tuned value, the chosen one."""
    tuned = [k for k in TUNED if k in table]
    if table.empty or not tuned:
        return table
    keys = [c for c in table.columns if c not in (*tuned, *MEASURED)]
    shown = [k for k in keys if k in ("family", "task", "seq_len") or table[k].nunique() > 1]
    trial = table[tuned].astype(str).agg(", ".join, axis=1)
    out = table.assign(trial=trial).pivot_table(index=keys, columns="trial", values="valid_score", aggfunc="first")
    out.columns = [f"valid score at {', '.join(k.removeprefix('config.train.') for k in tuned)} {c}" for c in out.columns]
    chosen = table[table.chosen].assign(chosen_trial=trial).set_index(keys).chosen_trial
    return out.assign(chosen=chosen).reset_index()[[*shown, *out.columns, "chosen"]]


def summary(table: pd.DataFrame) -> str:
    """What the report says about tuning: the grid, trials per cell, and whether every cell had
    the same number of trials in each task and length."""
    if table.empty:
        return "No training runs with a validation score: nothing was selected."
    tuned = [k for k in TUNED if k in table]
    grid = "; ".join(f"{k.removeprefix('config.')} in {{{', '.join(map(_show, sorted(table[k].unique(), key=_order)))}}}"
                     for k in tuned)
    counts = table.drop_duplicates([*CELL, "task", "seq_len"]).groupby(["task", "seq_len"]).trials.agg(set)
    unequal = counts[counts.map(len) > 1]
    equal = ("every cell had the same number of trials in each task and length ("
             + ", ".join(f"{t} T={n}: {min(c)}" for (t, n), c in counts.items()) + ")") if unequal.empty else (
        "**cells had unequal numbers of trials** in " + ", ".join(f"{t} T={n} ({sorted(c)})"
                                                                   for (t, n), c in unequal.items())
        + ": there the comparison favours the cell tuned more")
    chosen = table[table.chosen]
    picked = "; ".join(f"{k.removeprefix('config.')} " + ", ".join(
        f"{_show(v)} by {n}" for v, n in sorted(chosen[k].value_counts().items(), key=lambda kv: _order(kv[0])))
        for k in tuned)
    ends = (f" Chosen: {picked} (of {len(chosen)} settings); where most choices sit at an end of the grid, a "
            "grid reaching past it may serve those cells better.")
    return (f"Each cell stands, per task, length and setting, for its trial with the best mean validation "
            f"score, over the seeds all its trials share, among {grid}; {equal}. Pairs join the chosen runs of two cells, whatever "
            f"their learning rates; the test set plays no part in the choice.{ends}")


BEST = "best"  # train.lr=best: the value the recorded trials of the run's setting chose


def best(config: dict, recorded: pd.DataFrame, free: tuple = (), key: str = "config.train.lr"):
    """The value of `key` that the trials recorded for a run's setting chose (select's rule), for
    `train.lr=best`: a grid runs on a few seeds, then more seeds at each cell's choice. config:
    the run's config as the runs table records it ('config.*' columns); its setting's runs are
    those recorded with the same value in every 'config.*' column (missing where config has none)
    but the seed, the tuned keys and the columns under `free` (prefixes: what the run does not
    compute). recorded: its results_dir's runs, annotated (claims.annotate). ValueError, naming
    what to run first, where no trial of the setting is recorded."""
    free = ("config.seed", *TUNED, *free)
    columns = {k for k in [*config, *recorded.columns] if k.startswith("config.")
               and not any(k == f or k.startswith(f + ".") for f in free)}
    same = pd.Series(True, index=recorded.index)
    for k in columns:
        v = config.get(k)
        column = recorded[k] if k in recorded else pd.Series(None, index=recorded.index, dtype=object)
        missing = v is None or (isinstance(v, float) and v != v)
        same &= column.map(lambda x, v=v, missing=missing: pd.isna(x) if missing else x == v).astype(bool)
    table = trials(recorded[same])
    if table.empty:
        raise ValueError(f"{key.removeprefix('config.')}=best: no trial of this setting is recorded in results_dir; "
                         "allowed: a number, or best once a grid has run there (e.g. train.lr=0.003,0.01)")
    chosen = table[table.chosen]
    if len(chosen) > 1:  # the recorded runs differ in a key of the setting that the config does not set
        differ = [c for c in chosen.columns if c not in (key, *MEASURED) and chosen[c].nunique(dropna=False) > 1]
        raise ValueError(f"{key.removeprefix('config.')}=best: the recorded trials of this setting differ in "
                         f"{', '.join(differ)}; allowed: best where they agree, else a number")
    return chosen[key].item()


def _order(value) -> tuple:
    """Numbers in order, then anything else ('-': not recorded) by its text."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _filled(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """frame[keys] with missing values as '-', so that they group and join (NaN does neither)."""
    return frame[keys].astype(object).where(frame[keys].notna(), "-")
