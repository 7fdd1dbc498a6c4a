"""What flushing subnormal floats to zero changes in training: runs that differ only in
backend.flush_denormal (experiment=flush_check), paired, compared on their outcome and their speed.
`python -m bench.flushing RESULTS_DIR` prints it."""
import argparse

import numpy as np
import pandas as pd

from . import stats
from .results import load_tables

FLAG = "config.backend.flush_denormal"


def paired(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of runs whose configs differ in FLAG alone: each side's final test value,
    steps to solve and training tokens/s (suffixes _on, _off)."""
    runs = runs[runs.status.isin(["ok", "diverged"]) & runs[FLAG].notna()]
    ignored = {FLAG, "config.results_dir", "config.rerun", "config.progress"}  # where and how, not what
    keys = ["cell", "seq_len", *(c for c in runs.columns if c.startswith("config.") and c not in ignored)]
    keep = [*keys, "final_value", "steps_to_solve", "solved", "train_tokens_per_s"]
    on, off = (runs[runs[FLAG].astype(bool) == flag][keep] for flag in (True, False))
    return on.merge(off, on=keys, suffixes=("_on", "_off"))


def summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per cell and length: pairs, how many end on the same final value bit for bit, the largest
    difference of final values, the mean difference (on - off) with its t interval, how
    many pairs agree on solving and on the step they solved at, and the median speed ratio."""
    rows = []
    for (cell, seq_len), g in pairs.groupby(["cell", "seq_len"]):
        diff = (g.final_value_on - g.final_value_off).to_numpy(float)
        est = stats.mean_diff(diff)
        same_steps = (g.steps_to_solve_on.fillna(-1) == g.steps_to_solve_off.fillna(-1))
        rows.append({"cell": cell, "seq_len": seq_len, "pairs": len(g),
                     "identical": int((g.final_value_on == g.final_value_off).sum()),
                     "max_abs_diff": float(np.abs(diff).max()), "mean_diff": est.mean, "lo": est.lo, "hi": est.hi,
                     "same_solved": int((g.solved_on == g.solved_off).sum()), "same_steps": int(same_steps.sum()),
                     "speed_on_over_off": float((g.train_tokens_per_s_on / g.train_tokens_per_s_off).median())})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flushing", description=__doc__.split("\n")[0])
    parser.add_argument("results_dir")
    args = parser.parse_args(argv)
    table = summary(paired(load_tables(args.results_dir, names=("runs",))["runs"]))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}") if len(table) else "no paired runs")


if __name__ == "__main__":
    main()
