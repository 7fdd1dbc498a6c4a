"""The statistics behind every verdict: a bounded skill for display, pairs of runs that differ
only in the cell, estimates of a paired effect with their intervals and one-sided tests, Holm's
correction over the parts of a claim, and the three-way rules that turn tests into supported /
not supported / inconclusive.

Two kinds of outcome, each with the method whose coverage holds at the number of seeds we run
(tests/test_stats.py measures it by simulation):
- a number per run (a score, a log ratio): the paired t interval of the mean difference over seeds;
- pass/fail per run (solved or not): Clopper-Pearson intervals of each cell's rate and the exact
  McNemar test on the pairs where the two cells disagree;
- time to solve, censored at the budget: the exact sign test on which cell solved first.
A number whose seeds split into two modes (one seed in three fails) breaks the t interval at
small n: there the pass/fail part of a claim carries the evidence (docs/statistics.md)."""
import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sp

from . import tasks

LEVEL = 0.95  # confidence level of every two-sided interval
ALPHA = (1 - LEVEL) / 2  # each one-sided test, the interval's ends: 0.025
MIN_PAIRS = 3  # fewer seeds than this decide nothing: an interval of one pair is a point
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
# What makes two runs a pair: everything but the cell (and its size and param_match: the masks
# that pick each side decide those) and the tuned hyperparameters (bench.selection: each cell at
# its best learning rate). Only the columns a table has are used, so hand-made tables
# in tests can leave some out. Not the path a cell took (cells.accelerations): every path computes
# the same function, and throughput, where the path matters, is keyed on it (costs.KEYS).
PAIR_KEYS = ["task", "seq_len", "seed", "requested_hidden_size", "num_layers", "config.cell.bidirectional",
             "config.embed", "device", "impl", "dtype",
             "flush_denormal", "config.train.steps", "config.train.batch_size", "task_version"]


def skill(runs: pd.DataFrame) -> pd.Series:
    """Each run's final test metric on one bounded scale, for display: 0 at the task's chance
    baseline, 1 perfect (1 - value / chance for mse and nll; (accuracy - chance) / (1 - chance) otherwise).
    Runs are compared on their score (tasks.SCALES), which does not stop at 1."""
    value, chance = runs.final_value.astype(float), runs.chance.astype(float)
    score = np.where(runs.metric.isin(tasks.LOWER_IS_BETTER), 1 - value / chance, (value - chance) / (1 - chance))
    return by_status(pd.Series(score, index=runs.index), runs.status)


def by_status(score: pd.Series, status: pd.Series) -> pd.Series:
    """A score (0 at chance) as runs are compared on it: a diverged run learned nothing, 0; a
    failed run (an exception, not the cell's doing) is left out, NaN."""
    return score.mask(status == "diverged", 0.0).mask(status == "failed", np.nan)


@dataclass(frozen=True)
class Estimate:
    """The mean paired difference over n seeds and its paired t interval (LEVEL), with the
    one-sided t tests against any threshold. se = 0 (every seed the same difference) makes the
    tests exact: the difference is what it is."""
    mean: float
    se: float  # standard error of the mean
    n: int  # seeds
    pairs: int  # pairs of runs (seeds x settings)

    @property
    def lo(self) -> float:
        return self.mean - self._half()

    @property
    def hi(self) -> float:
        return self.mean + self._half()

    def _half(self) -> float:
        return math.inf if self.n < 2 else _t_quantile(self.n - 1) * self.se

    def p_above(self, threshold: float) -> float:
        """p-value of "the effect is at most threshold": small when the data show it above."""
        if self.n < 2:
            return 1.0
        if self.se == 0:
            return 0.0 if self.mean > threshold else 1.0
        return float(sp.t.sf((self.mean - threshold) / self.se, self.n - 1))

    def p_below(self, threshold: float) -> float:
        """p-value of "the effect is at least threshold": small when the data show it below."""
        return Estimate(-self.mean, self.se, self.n, self.pairs).p_above(-threshold)

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}] (n={self.n})"


@functools.lru_cache(maxsize=None)
def _t_quantile(df: int) -> float:
    return float(sp.t.ppf(1 - ALPHA, df))


def mean_diff(diffs, units=None) -> Estimate:
    """The mean of paired differences with its t interval. `units` (a seed per difference) are the
    independent replicates: differences of one unit (one seed at several lengths, whose runs share
    their initial weights) are averaged first, so that n counts seeds, not pairs."""
    d = np.asarray(diffs, dtype=float)
    per_unit = d if units is None else pd.Series(d).groupby(np.asarray(units)).mean().to_numpy()
    n = len(per_unit)
    se = float(per_unit.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return Estimate(float(per_unit.mean()) if n else math.nan, se, n, len(d))


def rate(successes: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson interval (LEVEL) of a pass/fail rate: exact, never below its level."""
    if n == 0:
        return 0.0, 1.0
    ci = sp.binomtest(int(successes), int(n)).proportion_ci(LEVEL, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class SignTest:
    """Paired outcomes that only say which side won: of n pairs, a won `a_wins` and b `b_wins`;
    the rest are ties or say nothing. The exact sign test: under "neither wins more often", each
    decided pair is a's with probability 1/2."""
    a_wins: int
    b_wins: int
    n: int

    @property
    def mean(self) -> float:  # the net share of pairs a wins
        return (self.a_wins - self.b_wins) / self.n if self.n else math.nan

    def p_above(self, threshold: float = 0.0) -> float:
        """Exact one-sided p of "a wins no more often than b" (threshold 0 only)."""
        if threshold != 0:
            raise ValueError("a sign test is tested against 0 only")
        m = self.a_wins + self.b_wins
        return 1.0 if m == 0 else float(sp.binomtest(self.a_wins, m, 0.5, alternative="greater").pvalue)

    def p_below(self, threshold: float = 0.0) -> float:
        return SignTest(self.b_wins, self.a_wins, self.n).p_above(threshold)

    def text(self, a: str = "a", b: str = "b") -> str:
        return f"{a} first {self.a_wins}, {b} first {self.b_wins}, neither {self.n - self.a_wins - self.b_wins} (of {self.n})"

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True)
class Discordance(SignTest):
    """Paired pass/fail outcomes, the exact McNemar test: a "wins" a pair where only a passed.
    a and b: the pairs where each passed."""
    a: int = 0
    b: int = 0

    def __str__(self) -> str:
        (alo, ahi), (blo, bhi) = rate(self.a, self.n), rate(self.b, self.n)
        return (f"passed {self.a}/{self.n} [{alo:.2f}, {ahi:.2f}] vs {self.b}/{self.n} [{blo:.2f}, {bhi:.2f}], "
                f"discordant {self.a_wins}:{self.b_wins}")


def discordance(a, b) -> Discordance:
    """Pass/fail outcomes of n pairs (boolean arrays, a's and b's)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return Discordance(int((a & ~b).sum()), int((b & ~a).sum()), len(a), int(a.sum()), int(b.sum()))


def first_to_solve(steps_a, solved_a, steps_b, solved_b, units=None) -> SignTest:
    """Time to solve, censored: a run that never solved is censored at its budget, not scored at
    it. A pair is a's when a solved and b solved later or not at all; b's likewise; a pair where
    neither solved, or both at the same step, says nothing. `units` (a seed per pair): a seed is
    a's when a won more of its pairs than b, so that n counts independent seeds."""
    ta = np.where(np.asarray(solved_a, dtype=bool), np.asarray(steps_a, dtype=float), np.inf)
    tb = np.where(np.asarray(solved_b, dtype=bool), np.asarray(steps_b, dtype=float), np.inf)
    net = pd.Series(np.where(ta < tb, 1, np.where(tb < ta, -1, 0)))  # +1: a first, -1: b first
    if units is not None:
        net = net.groupby(np.asarray(units)).sum()
    return SignTest(int((net > 0).sum()), int((net < 0).sum()), len(net))


def median_to_solve(steps, solved) -> float:
    """The Kaplan-Meier median time to solve when every run is censored at the same budget (then
    it is the median with unsolved runs at infinity); inf: not reached (half or more never solved)."""
    t = np.where(np.asarray(solved, dtype=bool), np.asarray(steps, dtype=float), np.inf)
    return float(np.sort(t)[(len(t) - 1) // 2]) if len(t) else math.nan


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment: reject where the adjusted p is below the level, and the chance
    of any false rejection among the family stays below it whatever the dependence."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def pairs(runs: pd.DataFrame, a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Rows `a` and `b` of runs (boolean masks) joined on PAIR_KEYS: one row per pair, the columns
    of each side suffixed _a and _b, plus the pair keys once."""
    keys = [k for k in PAIR_KEYS if k in runs.columns]
    left, right = runs[a].copy(), runs[b].copy()
    for side in (left, right):
        side[keys] = side[keys].astype(object).where(side[keys].notna(), "-")  # NaN keys must still join
    return left.merge(right, on=keys, suffixes=("_a", "_b"))


@dataclass
class Test:
    """A part's hypothesis as two one-sided tests: `support` (its p-value is small when the data
    support the claim) and `against` (small when they contradict it); `gate`: False where the
    estimate itself rules support out (an effect shown above 0 but smaller than the margin).
    `est` and `boundary`: the estimate and the threshold of the test its mean points to, from
    which seeds_to_decide plans a budget."""
    support: float
    against: float
    n: int
    gate: bool = True
    est: object = None
    boundary: float = 0.0


def leaning(t: Test) -> str:
    """The verdict a test's data point to, decided or not: the side whose one-sided test has the
    smaller p (unadjusted); not supported where the estimate itself rules support out (gate)."""
    return SUPPORTED if t.gate and t.support < t.against else NOT_SUPPORTED


def greater(est, margin: float) -> Test:
    """The claim "the difference is positive, by more than the margin": supported when the test
    shows it above 0 and the mean lies beyond the margin; not supported when the test shows it
    below the margin (no effect worth the name, or one the other way)."""
    if not isinstance(est, Estimate):  # sign tests: against 0 only
        return Test(est.p_above(0.0), est.p_below(0.0), est.n, gate=est.mean > margin, est=est)
    return Test(est.p_above(0.0), est.p_below(margin), est.n, gate=est.mean > margin, est=est,
                boundary=0.0 if est.mean > margin else margin)


def non_inferior(est: Estimate, margin: float) -> Test:
    """The claim "A is no worse than B by more than the margin" (difference A - B), TOST's lower
    test: supported when the test shows the difference above -margin; not supported when it shows
    it below -margin."""
    return Test(est.p_above(-margin), est.p_below(-margin), est.n, est=est, boundary=-margin)


POWER = 0.8  # the budget a report plans: the seeds at which a part is decided 4 times in 5


def seeds_to_decide(est, boundary: float, level: float = ALPHA, limit: int = 1000) -> int | None:
    """A budget that would decide an undecided part if its estimate were the truth: the fewest
    seeds at which the one-sided test against `boundary` at `level` has power POWER, for a t test
    with the same mean and spread (noncentral t), for a sign test with the same shares of pairs
    decided and won (binomial). None: the mean sits on the boundary (no number of seeds decides
    it), or more than `limit` seeds would be needed."""
    if isinstance(est, SignTest):
        lead, decided = max(est.a_wins, est.b_wins), est.a_wins + est.b_wins
        if not est.n or 2 * lead == decided:
            return None

        def power(n):
            m = round(decided * n / est.n)  # pairs decided among n, the rest say nothing
            if m == 0:
                return 0.0
            k = int(sp.binom.isf(level, m, 0.5)) + 1  # the fewest wins the exact test rejects at
            return float(sp.binom.sf(k - 1, m, lead / decided))
        return next((n for n in range(est.n, limit + 1) if power(n) >= POWER), None)  # saw-toothed in n: scan
    gap, sd = abs(est.mean - boundary), est.se * math.sqrt(est.n)
    if est.n < 2 or not gap > 0 or not math.isfinite(gap):
        return None
    if sd == 0:
        return est.n

    def power(n):
        return float(sp.nct.sf(sp.t.ppf(1 - level, n - 1), n - 1, gap * math.sqrt(n) / sd))
    if power(limit) < POWER:
        return None
    lo, hi = est.n, limit
    while lo < hi:  # power grows with n: bisect for the first n that reaches it
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(mid) >= POWER else (mid + 1, hi)
    return lo


def decide(tests: list[Test]) -> list[tuple[str, float, int | None]]:
    """Each part's verdict, its Holm-adjusted support p, and for an inconclusive part the seeds
    that would decide it if its estimate held (seeds_to_decide at ALPHA over the number of parts,
    Holm's strictest level): the parts of one claim are one family, and so are their `against`
    tests. A part with fewer than MIN_PAIRS seeds is inconclusive."""
    if not tests:
        return []
    support, against = holm([t.support for t in tests]), holm([t.against for t in tests])
    out = []
    for t, ps, pa in zip(tests, support, against):
        if t.n < MIN_PAIRS:
            verdict = INCONCLUSIVE
        elif ps < ALPHA and t.gate:
            verdict = SUPPORTED
        elif pa < ALPHA:
            verdict = NOT_SUPPORTED
        else:
            verdict = INCONCLUSIVE
        needed = None
        if verdict == INCONCLUSIVE and t.est is not None:
            needed = seeds_to_decide(t.est, t.boundary, ALPHA / len(tests))
            needed = needed and max(needed, MIN_PAIRS)
        out.append((verdict, ps, needed))
    return out


def combine(verdicts: list[str]) -> str:
    """A claim tested in several parts: supported if every part is, not supported if every part
    is not, inconclusive otherwise (mixed, or some part inconclusive)."""
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if verdicts and all(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    return INCONCLUSIVE
