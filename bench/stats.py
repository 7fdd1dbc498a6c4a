"""The statistics behind every verdict: a task-independent skill score, pairs of runs that differ
only in the cell, a percentile bootstrap of the mean paired difference, and the three-way tests
that turn an estimate into supported / not supported / inconclusive."""
from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVEL = 0.95  # confidence level of every interval
N_BOOT = 10_000  # bootstrap resamples
MIN_PAIRS = 3  # fewer pairs than this decide nothing: an interval of one pair is a point
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
# What makes two runs a pair: everything but the cell (and its size and param_match: the masks
# that pick each side decide those). Only the columns a table has are used, so hand-made tables
# in tests can leave some out.
PAIR_KEYS = ["task", "seq_len", "seed", "requested_hidden_size", "num_layers", "device", "impl", "dtype", "native",
             "flush_denormal", "config.train.steps", "config.train.lr", "config.train.batch_size", "task_version"]


def skill(runs: pd.DataFrame) -> pd.Series:
    """Each run's final test score on one scale: 0 at the task's chance baseline, 1 perfect
    (1 - mse / chance for mse; (accuracy - chance) / (1 - chance) otherwise). A diverged run
    learned nothing: 0. Failed runs (an exception, not the cell's doing) are NaN."""
    value, chance = runs.final_value.astype(float), runs.chance.astype(float)
    score = np.where(runs.metric == "mse", 1 - value / chance, (value - chance) / (1 - chance))
    score = pd.Series(score, index=runs.index)
    score[runs.status == "diverged"] = 0.0
    score[runs.status == "failed"] = np.nan
    return score


@dataclass(frozen=True)
class Estimate:
    mean: float  # the mean paired difference
    lo: float  # its confidence interval (LEVEL, percentile bootstrap)
    hi: float
    n: int  # pairs (seeds x settings)

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}] (n={self.n})"


def bootstrap(diffs, strata=None, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Estimate:
    """The mean of paired differences and its percentile-bootstrap interval. Pairs are resampled
    with replacement within each stratum (a task and length), so that each resample keeps the
    design: as many pairs of each setting as were run."""
    d = np.asarray(diffs, dtype=float)
    strata = np.zeros(len(d), dtype=int) if strata is None else pd.factorize(pd.Series(list(strata)))[0]
    rng = np.random.default_rng(seed)
    totals = np.zeros(n_boot)
    for s in np.unique(strata):
        group = d[strata == s]
        totals += group[rng.integers(0, len(group), (n_boot, len(group)))].sum(axis=1)
    means = totals / len(d)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(float(d.mean()), float(lo), float(hi), len(d))


def pairs(runs: pd.DataFrame, a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Rows `a` and `b` of runs (boolean masks) joined on PAIR_KEYS: one row per pair, the columns
    of each side suffixed _a and _b, plus the pair keys once."""
    keys = [k for k in PAIR_KEYS if k in runs.columns]
    left, right = runs[a].copy(), runs[b].copy()
    for side in (left, right):
        side[keys] = side[keys].astype(object).where(side[keys].notna(), "-")  # NaN keys must still join
    return left.merge(right, on=keys, suffixes=("_a", "_b"))


def greater(est: Estimate, margin: float) -> str:
    """The claim "the difference is positive": supported when the interval lies above 0 and the
    mean beyond the margin; not supported when the interval lies below the margin (no effect
    worth the name, or one the other way); inconclusive otherwise, and with fewer than MIN_PAIRS."""
    if est.n < MIN_PAIRS:
        return INCONCLUSIVE
    if est.lo > 0 and est.mean > margin:
        return SUPPORTED
    return NOT_SUPPORTED if est.hi < margin else INCONCLUSIVE


def non_inferior(est: Estimate, margin: float) -> str:
    """The claim "A is no worse than B" (difference A - B): supported when the interval lies above
    -margin; not supported when it lies below -margin; inconclusive otherwise, and with fewer
    than MIN_PAIRS."""
    if est.n < MIN_PAIRS:
        return INCONCLUSIVE
    if est.lo >= -margin:
        return SUPPORTED
    return NOT_SUPPORTED if est.hi < -margin else INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """A claim tested in several parts: supported if every part is, not supported if every part
    is not, inconclusive otherwise (mixed, or some part inconclusive)."""
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if verdicts and all(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    return INCONCLUSIVE
