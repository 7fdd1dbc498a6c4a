"""The statistics behind the verdicts, by their error rates: each interval's coverage by simulation
(or exactly, where the outcome is discrete), each test's false-positive rate, Holm's family-wise
error, and the three-way rules on estimates whose answer is known."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats as sp

from bench import stats

SUPPORTED, NOT, INCONCLUSIVE = stats.SUPPORTED, stats.NOT_SUPPORTED, stats.INCONCLUSIVE
REPEATS = 40_000  # simulated experiments per setting: the coverage's standard error is about 0.001
SEEDS = (3, 5, 10, 20)
BAND = (0.93, 0.97)  # a nominal 95% interval must cover this often

# paired differences of one number per run: (draw (R, n) samples, their true mean)
NUMBERS = {
    "normal": (lambda rng, shape: rng.normal(0.3, 1.0, shape), 0.3),
    "heavy-tailed t(3)": (lambda rng, shape: rng.standard_t(3, shape) + 0.1, 0.1),
    "heavy-tailed Laplace": (lambda rng, shape: rng.laplace(-0.2, 0.5, shape), -0.2),
}


def coverage(draw, mean, n, seed=0):
    rng = np.random.default_rng(seed)
    hits = 0
    for sample in draw(rng, (REPEATS, n)):
        est = stats.mean_diff(sample)
        hits += est.lo <= mean <= est.hi
    return hits / REPEATS


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("name", NUMBERS)
def test_t_interval_covers_the_mean_difference_as_often_as_it_claims(name, n):
    draw, mean = NUMBERS[name]
    assert BAND[0] <= coverage(draw, mean, n) <= BAND[1]


def test_a_mixture_of_two_modes_needs_seeds_or_a_pass_fail_test():
    """One seed in three fails (a difference near 1.5 instead of near 0.1): with 3 seeds all
    three often succeed and the t interval is narrow around the wrong mode. This is why claims
    whose runs pass or fail carry a pass/fail part (exact), and why claims_full runs more seeds."""
    draw = lambda rng, shape: np.where(rng.random(shape) < 1 / 3, rng.normal(1.5, 0.1, shape),  # noqa: E731
                                       rng.normal(0.1, 0.1, shape))
    mean = 1.5 / 3 + 0.2 / 3
    assert coverage(draw, mean, 3) < 0.8
    assert coverage(draw, mean, 20) >= BAND[0]


def test_units_average_first_so_that_n_counts_seeds():
    est = stats.mean_diff([1.0, 3.0, 5.0, 5.0], units=[0, 0, 1, 1])  # seed 0: 2, seed 1: 5
    assert (est.n, est.pairs, est.mean) == (2, 4, 3.5)
    assert est.se == pytest.approx(1.5)
    assert (est.lo, est.hi) == pytest.approx((3.5 - 12.706 * 1.5, 3.5 + 12.706 * 1.5), abs=1e-2)


def test_t_tests_match_scipy():
    d = np.array([0.05, 0.2, 0.3, 0.9])
    est = stats.mean_diff(d)
    ci = sp.ttest_1samp(d, 0).confidence_interval(stats.LEVEL)
    assert (est.lo, est.hi) == pytest.approx((ci.low, ci.high))
    assert est.p_above(0.1) == pytest.approx(sp.ttest_1samp(d, 0.1, alternative="greater").pvalue)
    assert est.p_below(0.5) == pytest.approx(sp.ttest_1samp(d, 0.5, alternative="less").pvalue)


def test_identical_differences_are_exact():
    est = stats.mean_diff([0.25, 0.25, 0.25])
    assert (est.lo, est.hi) == (0.25, 0.25)
    assert est.p_above(0.1) == 0.0 and est.p_above(0.3) == 1.0 and est.p_below(0.3) == 0.0


def binomial_coverage(n, p):
    """The exact coverage of the Clopper-Pearson interval: the chance of every count whose interval holds p."""
    return sum(sp.binom.pmf(k, n, p) for k in range(n + 1) if stats.rate(k, n)[0] <= p <= stats.rate(k, n)[1])


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("p", [1 / 3, 1 / 2, 2 / 3, 0.9])  # 2/3: one seed in three fails
def test_pass_fail_rate_interval_never_covers_less_than_it_claims(n, p):
    """Exact, so at least 95% for every rate; on a lattice of n + 1 counts it cannot be exactly 95%,
    and at few seeds it covers more (up to 1: with 3 seeds no count excludes 1/3)."""
    assert binomial_coverage(n, p) >= stats.LEVEL


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("p", [2 / 3, 0.5, 0.9])
def test_mcnemar_rejects_a_true_null_at_most_at_its_level(n, p):
    """Both cells pass with the same probability, independently per seed: the exact error rate of
    "a passes more often", over every outcome of n pairs."""
    q = p * (1 - p)  # a only, and b only
    error = 0.0
    for a_only, b_only in itertools.product(range(n + 1), repeat=2):
        if a_only + b_only > n:
            continue
        d = stats.Discordance(a_only, b_only, a=a_only, b=b_only, n=n)
        if d.p_above(0.0) < stats.ALPHA:
            error += sp.multinomial.pmf([a_only, b_only, n - a_only - b_only], n, [q, q, 1 - 2 * q])
    assert error <= stats.ALPHA


def test_mcnemar_finds_a_cell_that_always_passes_against_one_that_never_does():
    d = stats.discordance([True] * 6, [False] * 6)
    assert d.p_above(0.0) == pytest.approx(0.5 ** 6) and d.p_below(0.0) == 1.0 and d.mean == 1.0
    assert "passed 6/6" in str(d) and "discordant 6:0" in str(d)


def test_first_to_solve_censors_at_the_budget_and_counts_seeds():
    inf = float("nan")  # an unsolved run's steps are missing
    first = stats.first_to_solve([100, inf, 500, inf], [True, False, True, False],
                                 [200, 300, 500, inf], [True, True, True, False])
    assert (first.a_wins, first.b_wins, first.n) == (1, 1, 4)  # a first; b first; a tie; neither
    by_seed = stats.first_to_solve([100, 100, inf], [True, True, False], [200, 200, 50], [True, True, True],
                                   units=[0, 0, 1])
    assert (by_seed.a_wins, by_seed.b_wins, by_seed.n) == (1, 1, 2)
    assert stats.median_to_solve([100, 300, inf], [True, True, False]) == 300
    assert stats.median_to_solve([100, inf, inf, inf], [True, False, False, False]) == float("inf")


@pytest.mark.parametrize("n", SEEDS)
def test_sign_test_rejects_a_true_null_at_most_at_its_level(n):
    """Either cell solves first with probability 0.4 and neither with 0.2: the exact error rate."""
    error = sum(sp.multinomial.pmf([a, b, n - a - b], n, [0.4, 0.4, 0.2])
                for a, b in itertools.product(range(n + 1), repeat=2)
                if a + b <= n and stats.SignTest(a, b, n).p_above(0.0) < stats.ALPHA)
    assert error <= stats.ALPHA


def test_holm_controls_the_family_wise_error_rate():
    rng = np.random.default_rng(0)
    for m in (2, 4, 8):
        p = rng.random((REPEATS, m))  # every null true
        any_rejected = np.mean([(stats.holm(row) < stats.ALPHA).any() for row in p])
        assert any_rejected <= stats.ALPHA + 3 * math.sqrt(stats.ALPHA / REPEATS)


def test_holm_adjusts_as_the_step_down_rule_says():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


@pytest.mark.parametrize("diffs,greater,non_inferior", [
    ([0.18, 0.20, 0.22, 0.19, 0.21], SUPPORTED, SUPPORTED),  # clearly positive
    ([0.018, 0.020, 0.022, 0.019, 0.021], NOT, SUPPORTED),  # positive but below the margin: no effect worth the name
    ([-0.18, -0.20, -0.22, -0.19, -0.21], NOT, NOT),  # clearly negative
    ([-0.2, 0.3, 0.05, 0.1, -0.1], INCONCLUSIVE, INCONCLUSIVE),  # straddles both margins
])
def test_three_way_rules(diffs, greater, non_inferior):
    est = stats.mean_diff(diffs)
    assert stats.decide([stats.greater(est, 0.05)]) [0][0] == greater
    assert stats.decide([stats.non_inferior(est, 0.05)])[0][0] == non_inferior
    assert stats.decide([stats.greater(stats.mean_diff(diffs[:2]), 0.05)])[0][0] == INCONCLUSIVE  # too few seeds


def test_three_seeds_that_agree_closely_are_not_enough_where_the_bootstrap_said_they_were():
    """The rule before this one: a percentile bootstrap over 3 pairs, whose every resample mean lies
    within the three values. Here its interval [-0.02, +0.02] lay inside the margin: "comparable".
    The t interval at 2 degrees of freedom is about 4x as wide and reaches past -0.05."""
    est = stats.mean_diff([-0.02, 0.02, -0.01])
    assert min([-0.02, 0.02, -0.01]) >= -0.05  # every bootstrap resample mean was inside the margin
    assert est.lo < -0.05
    assert stats.decide([stats.non_inferior(est, 0.05)])[0][0] == INCONCLUSIVE


def test_holm_turns_a_part_that_alone_would_be_supported_inconclusive():
    est = stats.mean_diff([0.10, 0.22, 0.16, 0.30, 0.08, 0.2])  # p about 0.002 alone
    alone = stats.decide([stats.greater(est, 0.05)])
    with_others = stats.decide([stats.greater(est, 0.05)] + [stats.Test(0.5, 0.5, 6)] * 20)
    assert alone[0][0] == SUPPORTED and with_others[0][0] == INCONCLUSIVE
    assert with_others[0][1] == pytest.approx(min(1.0, 21 * est.p_above(0.0)))


def test_combine():
    assert stats.combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert stats.combine([NOT, NOT]) == NOT
    assert stats.combine([SUPPORTED, NOT]) == INCONCLUSIVE
    assert stats.combine([]) == INCONCLUSIVE


@pytest.mark.parametrize("mean,sd,boundary", [(0.5, 1.0, 0.0), (0.2, 0.3, 0.05), (-0.1, 0.4, 0.3)])
def test_seeds_to_decide_plans_the_budget_at_which_the_test_has_its_power(mean, sd, boundary):
    """If the estimate were the truth, the planned number of seeds decides the part POWER of the
    time (simulated t tests), and one seed fewer less often."""
    truth = stats.Estimate(mean, sd / math.sqrt(4), 4, 4)
    n = stats.seeds_to_decide(truth, boundary)
    rng = np.random.default_rng(1)

    def decided(k):
        samples = rng.normal(mean, sd, (20_000, k))
        t = (samples.mean(1) - boundary) / (samples.std(1, ddof=1) / math.sqrt(k))
        return np.mean(np.abs(t) > sp.t.ppf(1 - stats.ALPHA, k - 1))  # the test its mean points to
    assert stats.POWER - 0.015 <= decided(n) <= stats.POWER + 0.06
    assert decided(n - 1) < stats.POWER + 0.01


def test_seeds_to_decide_for_sign_tests_and_where_nothing_decides():
    # 3 of 3 seeds first: 6 of 6 is the fewest the exact test rejects at 0.025 (p = 1/64)
    assert stats.seeds_to_decide(stats.SignTest(3, 0, 3), 0.0) == 6
    # 4 of 5 decided pairs won: at the planned n the exact test's power is at least POWER
    n = stats.seeds_to_decide(stats.SignTest(4, 1, 5), 0.0)
    k = int(sp.binom.isf(stats.ALPHA, n, 0.5)) + 1
    assert sp.binom.sf(k - 1, n, 0.8) >= stats.POWER
    assert stats.seeds_to_decide(stats.SignTest(2, 2, 5), 0.0) is None  # no leader: no budget decides it
    assert stats.seeds_to_decide(stats.mean_diff([0.1, 0.3, 0.2]), 0.2) is None  # the mean on the boundary
    assert stats.seeds_to_decide(stats.mean_diff([0.0, 1.0, -1.0, 0.02]), 0.0, limit=50) is None  # beyond the limit


def test_decide_plans_a_budget_for_inconclusive_parts_only():
    decided, undecided = stats.mean_diff([0.18, 0.20, 0.22, 0.19, 0.21]), stats.mean_diff([0.3, -0.1, 0.4])
    (v1, _, n1), (v2, _, n2) = stats.decide([stats.greater(decided, 0.05), stats.greater(undecided, 0.05)])
    assert v1 == SUPPORTED and n1 is None
    assert v2 == INCONCLUSIVE and n2 == stats.seeds_to_decide(undecided, 0.0, stats.ALPHA / 2) > 3
