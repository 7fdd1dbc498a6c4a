"""The claims ledger S1-S7 (docs/design.md), judged from the result tables. Each claim is one
function whose docstring is its verdict rule, stated in the report as written here. A claim is
tested in parts (a task, an implementation, a gate); each part gets a verdict from the tests in
bench.stats and the claim combines them (stats.combine). A claim without data is
"inconclusive: no data", never guessed."""
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

import cells
from cells._base import INIT_FLAGS
from . import costs, selection, stats, tasks
from .stats import Estimate

# Accuracy is compared on each task's score (tasks.SCALES: 0 at chance, no ceiling in practice),
# with its scale's margin: smaller differences count as comparable. A run learned its task when
# its score exceeds the margin; two cells that both stay at chance are alike whatever their
# design, so a comparison where neither learned decides nothing.
SPEED_MARGIN = math.log(1.05)  # a cell is cheaper when it is at least 5% faster
CHANGE_MARGIN = math.log(1.5)  # "changes a lot more": at least 1.5x the relative step change
NEEDED = ["cell_class", "mode", "metric", "final_value", "chance", "scale", "score", "valid_score", "score_max",
          "solved_threshold", "solved", "steps_to_solve",
          "seconds_to_solve", "steps", "device_name", "config.param_match", "config.train.steps"]
GATES = ("input_gate", "forget_gate", "output_gate", "reset_gate", "update_gate")
# An ablation changes one flag of a cell (claims.variant's 'flag=value'); its base is the same cell
# without that change (the standard cell, or Greff et al.'s vanilla LSTM for its own ablations).
ABLATIONS = (*(f"{gate}=False" for gate in GATES), "tied_gates=False", "coupled_gates=True", "minimal=True",
             "reset_after=False", "input_activation=identity", "output_activation=identity")
# The LSTMs a part may read, by variant: torch's init, forget-gate bias 1 (Jozefowicz et al.
# 2015) and Greff et al. 2017's vanilla LSTM (peepholes), named as their configs in conf/cell/.
# A part that reads an LSTM names it; a comparison is made with each of them that has runs.
LSTMS = {"": "lstm", "forget_bias=1.0": "lstm_fb1", "peepholes=True": "lstm_peephole"}


@dataclass
class Verdict:
    id: str
    claim: str
    verdict: str  # starts with supported | not supported | inconclusive
    evidence: str
    # part, estimate (shown: a difference, a ratio "xM [lo, hi]", counts; None: exact), n, p, verdict,
    # seeds to decide (an inconclusive part's budget if its estimate held: stats.seeds_to_decide)
    parts: pd.DataFrame


def annotate(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with their family (rnn, lstm, gru), variant ('' for the standard cell, else its flags
    that differ from the defaults), whether param_match resized them, whether they trained (not
    mode=throughput), their skill (shown) and score (compared; a diverged run's is 0, chance, a failed
    run's NaN), their scale's margin, and whether they learned their task (score above the margin)."""
    missing = [c for c in NEEDED if c not in runs]  # an empty table has the contract columns only
    runs = runs.reindex(columns=[*runs.columns, *missing])
    runs["training"] = runs["mode"].fillna("train") != "throughput"
    runs["family"] = [str(c).lower() for c in runs.cell_class]
    runs["variant"] = [variant(row, family) for row, family in zip(runs.to_dict("records"), runs.family)]
    match = runs["config.param_match"]
    runs["sized"] = match.notna() & (match != runs.family)
    runs["name"] = [name(f, v) for f, v in zip(runs.family, runs.variant)]
    runs["skill"] = stats.skill(runs) if len(runs) else pd.Series(dtype=float)
    runs["score"] = stats.by_status(runs.score.astype(float), runs.status)
    runs["valid_score"] = stats.by_status(runs.valid_score.astype(float), runs.status)
    runs["margin"] = [tasks.SCALES[s].margin if s in tasks.SCALES else math.nan for s in runs.scale]
    runs["learned"] = runs.score > runs.margin
    return runs


def variant(row: dict, family: str) -> str:
    """The flags of `row` that differ from its cell's defaults, as 'flag=value,...'; a flag the
    row does not record is at its default."""
    def same(value, default):
        return value is None or (isinstance(value, float) and math.isnan(value)) or value == default
    flags = cells.CELLS[family].FLAGS if family in cells.CELLS else {}
    changed = {f: row.get(f) for f, spec in flags.items() if not same(row.get(f), spec.default)}
    return ",".join(f"{f}={v}" for f, v in changed.items())


def name(family: str, variant: str) -> str:
    """A cell's name in the ledger: its family for the standard cell, an LSTM of LSTMS by its
    name there, any other cell as 'family[variant]'."""
    if family == "lstm" and variant in LSTMS:
        return LSTMS[variant]
    return f"{family}[{variant}]" if variant else family


def reference(runs):
    """The cells the ledger compares: each family's standard cell and the LSTMs of LSTMS, not
    resized by param_match."""
    return ~runs.sized & ((runs.variant == "") | ((runs.family == "lstm") & runs.variant.isin(list(LSTMS))))


def lstms(runs) -> list[tuple[str, pd.Series]]:
    """(name, mask) of each LSTM of LSTMS that has runs, not resized by param_match."""
    masks = [(n, ~runs.sized & (runs.name == n)) for n in LSTMS.values()]
    return [(n, m) for n, m in masks if m.any()]


def standard(runs, family: str | None = None):
    """The standard cell of `family` (of every family when None): no flag changed, not resized
    by param_match."""
    std = (runs.variant == "") & ~runs.sized
    return std if family is None else std & (runs.family == family)


def _compare(runs, a, b, by: str = "task") -> list[tuple[str, Estimate, pd.DataFrame]]:
    """Score of `a` minus score of `b`, paired by seed, one estimate per value of `by` with the
    lengths pooled (each seed's differences averaged over its lengths first)."""
    p = stats.pairs(runs, a, b)
    p = p[p.score_a.notna() & p.score_b.notna()]
    return [(key, stats.mean_diff(g.score_a - g.score_b, g.seed), g) for key, g in p.groupby(by)]


def _score_part(label: str, est: Estimate, g: pd.DataFrame, test, key: str):
    """A part comparing the scores of the pairs g (score_a, score_b): test(est, the scale's
    margin), or inconclusive, saying why, where neither side's mean score exceeds the margin. The
    label names the scale and counts the pairs tied at the ceiling (both at the scale's best
    score) or at the floor (neither learned): the scale cannot tell those cells apart."""
    margin, scale = g.margin_a.iloc[0], g.scale_a.iloc[0]
    ceiling = int(((g.score_a >= g.score_max_a) & (g.score_b >= g.score_max_b)).sum())
    floor = int((~g.learned_a.astype(bool) & ~g.learned_b.astype(bool)).sum())
    ties = [f"{k} of {len(g)} pairs tied at the {where}" for k, where in ((ceiling, "ceiling"), (floor, "floor")) if k]
    label += f" ({scale}{''.join('; ' + t for t in ties)})"
    best = max(g.score_a.mean(), g.score_b.mean())
    if best > margin:
        return label, est, test(est, margin), key
    return f"{label} (neither cell learned the task: best mean score {best:+.3f})", est, stats.INCONCLUSIVE, key


def _where(g: pd.DataFrame) -> str:
    lengths = ",".join(str(t) for t in sorted(g.seq_len.unique()))
    return f"{g.task.iloc[0]} T={lengths}, {g.seed.nunique()} seeds"


def _verdict(id_, claim, parts: list[tuple], scope: str, extra: str = "") -> Verdict:
    """parts: (label, the estimate as shown, a Test or a verdict reached without one[, key]): the
    key names the part whatever its data (the label may count seeds or name a length the data
    chose); it is the label where none is given. The parts' tests are decided together
    (stats.decide: Holm over the claim's parts)."""
    tests = [t for _, _, t, *_ in parts if isinstance(t, stats.Test)]
    decided = iter(stats.decide(tests))
    rows = []
    for label, est, t, *key in parts:
        test = isinstance(t, stats.Test)
        verdict, p, needed = next(decided) if test else (t, None, None)
        rows.append((label, est, t.n if test else None, p, verdict, needed, (key or [label])[0],
                     stats.leaning(t) if test else verdict))
    table = pd.DataFrame(rows, columns=["part", "estimate", "n", "p", "verdict", "seeds to decide", "key", "leans"])
    if table.empty:
        return Verdict(id_, claim, "inconclusive: no data", "no runs that this claim's rule can use", table)
    verdict = stats.combine(list(table.verdict))
    if {stats.SUPPORTED, stats.NOT_SUPPORTED} <= set(table.verdict):  # decided parts that differ: it depends
        decided = table[table.verdict != stats.INCONCLUSIVE]
        undecided = len(table) - len(decided)
        verdict = "depends: " + "; ".join(f"{v} for " + ", ".join(f"[{label}]" for label in g.part)
                                          for v, g in decided.groupby("verdict", sort=False))
        verdict += f"; {undecided} part{'s' * (undecided > 1)} undecided" if undecided else ""
    elif verdict == stats.INCONCLUSIVE and len(table) > 1:
        counts = table.verdict.value_counts()
        verdict += ": parts " + ", ".join(f"{v} {n}" for v, n in counts.items())
    lines = [f"{part}: " + (f"{est} " if est is not None else "") + (f"p={p:.2g} " if p is not None else "") + v
             for part, est, _, p, v, *_ in table.itertuples(index=False)]
    evidence = "; ".join(lines) + (f". {extra.rstrip('.')}" if extra else "") + f". {scope}"
    return Verdict(id_, claim, verdict, evidence, table)


def s1(runs, tables):
    """Per task with a solved threshold and per LSTM (LSTMS) run at every length the vanilla RNN
    was, the longest length each cell solves (most of its seeds reach the threshold). Supported
    when the LSTM solves a longer length than the RNN and both tests show it: over the lengths the
    LSTM solves and the RNN does not, the LSTM's score exceeds the RNN's (stats.greater with the
    scale's margin, paired by seed, lengths pooled), and at the longest of them that both ran the
    LSTM solves more often (exact McNemar test on the seeds where one cell solved). Not supported when the RNN
    solves as long a length as the LSTM; inconclusive otherwise, and when the LSTM solves no
    length. The gradient profile is shown as evidence, not tested."""
    parts, extra, used = [], [], []
    for task, g in runs[runs.solved_threshold.notna()].groupby("task"):
        rnn = g[standard(g, "rnn")]
        covering = [(n, m) for n, m in lstms(g) if set(rnn.seq_len) <= set(g[m].seq_len)] if len(rnn) else []
        solved_to = []  # each LSTM's longest solved length: the gradient ratio reads the longest of them
        for lstm_name, mask in covering:
            used.append(g[mask | standard(g, "rnn")])
            longest = {"lstm": _longest(g[mask]), "rnn": _longest(rnn)}
            solved_to.append(longest["lstm"] or 0)
            label = (f"{task}: longest solved {lstm_name} T={longest['lstm'] or 'none'}, "
                     f"rnn T={longest['rnn'] or 'none'}")
            key = f"{task}: longest solved, {lstm_name} vs rnn"
            if longest["lstm"] is None:
                parts.append((label, None, stats.INCONCLUSIVE, key))
            elif (longest["rnn"] or 0) >= longest["lstm"]:
                parts.append((label, None, stats.NOT_SUPPORTED, key))
            else:
                gap = g[(g.seq_len > (longest["rnn"] or 0)) & (g.seq_len <= longest["lstm"])]
                for _, est, pairs in _compare(gap, mask.loc[gap.index], standard(gap, "rnn")):
                    lengths = ",".join(map(str, sorted(pairs.seq_len.unique())))
                    parts.append(_score_part(f"{label}; {lstm_name} - rnn score at T={lengths}", est, pairs,
                                             stats.greater, f"{task}: {lstm_name} - rnn score where only it solves"))
                    both = pairs.seq_len.max()  # the longest length of the gap the RNN ran too
                    at = pairs[pairs.seq_len == both]  # one pair per seed: independent outcomes
                    solved = stats.discordance(at.solved_a.astype(bool), at.solved_b.astype(bool))
                    parts.append((f"{task}: solved at T={both}, {lstm_name} vs rnn", solved,
                                  stats.greater(solved, 0.0), f"{task}: solved at the longest both ran, {lstm_name} vs rnn"))
        if max(solved_to, default=0):
            extra.append(_gradient_ratio(tables["profiles"], runs, task, max(solved_to)))
    scope = _scope(pd.concat(used) if used else runs.iloc[:0])
    return _verdict("S1", CLAIMS["S1"][0], parts, scope, " ".join(e for e in extra if e))


def _longest(runs):
    solved = runs.groupby("seq_len").solved.mean()
    solved = solved[solved > 0.5]
    return int(solved.index.max()) if len(solved) else None


def _gradient_ratio(profiles, runs, task, seq_len) -> str:
    """log10 ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ (layer 0), median over seeds, per cell the ledger compares
    (reference), at initialisation and after training. Profiles are float64
    (probes.gradient_profile): a value of 0 underflowed even there, or, in records whose profiles
    were float32, below 1.2e-38."""
    at = runs[(runs.task == task) & (runs.seq_len == seq_len) & reference(runs)]
    p = profiles[(profiles.quantity == "dL/dh") & (profiles.layer == 0)].merge(at[["run_id", "name"]], on="run_id")
    if p.empty:
        return ""
    p = p[(p.step == 0) | (p.step == p.groupby("run_id").step.transform("max"))]
    ends = p.pivot_table(index=["name", "run_id", "step"], columns="t", values="value").iloc[:, [0, -1]]
    with np.errstate(divide="ignore"):
        ratio = np.log10(ends.iloc[:, 0] / ends.iloc[:, -1])  # -inf: the first step's gradient underflowed
    ratio = ratio.reset_index(name="r").assign(when=lambda r: np.where(r.step == 0, "init", "trained"))
    mean = ratio.groupby(["name", "when"]).r.median().unstack("when").reindex(columns=["init", "trained"])
    show = lambda v: "underflow" if v == -np.inf else f"{v:+.1f}"  # noqa: E731
    return (f"log10 ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at {task} T={seq_len}, median over seeds, initialisation -> trained: "
            + ", ".join(f"{f} {show(row.init)} -> {show(row.trained)}" for f, row in mean.iterrows()))


def s2(runs, tables):
    """Per LSTM (LSTMS), its trained runs that learned their task (score above the margin): per
    run, the ratio of h's mean relative step change ‖h_t - h_t-1‖ / ‖h_t-1‖ to c's (validation
    set, last evaluation, layer 0); the geometric mean over seeds. Two parts: c whole, and c's
    slowest quarter of units (the longest time constants 1 / (1 - mean f), the units that carry
    the memory; records since 2026-12-04), each against the whole of h. A part is supported when
    its interval lies above 1 and its mean above 1.5 (h changes at least 1.5x as much as c); not
    supported when the interval lies below 1.5; inconclusive otherwise, and when no LSTM learned
    its task."""
    m = tables["metrics"]
    m = m[m.metric.isin(["step_change_h", "step_change_c", "step_change_c_slow", "time_constant_slow"])
          & (m.layer == 0)]
    parts, used = [], []
    for lstm_name, mask in lstms(runs):
        every = runs[mask & runs.score.notna()]  # failed runs have no score: left out
        used.append(every)
        parts += _step_change(lstm_name, every, m)
    return _verdict("S2", CLAIMS["S2"][0], parts, _scope(pd.concat(used) if used else runs.iloc[:0]))


def _step_change(lstm_name: str, every, metrics) -> list[tuple]:
    """S2's parts for one LSTM's runs."""
    lstm = every[every.learned]
    m = metrics.merge(lstm[["run_id", "steps", "task", "seq_len", "seed"]], on="run_id")
    wide = m[m.step == m.steps].pivot_table(index=["run_id", "task", "seq_len", "seed"], columns="metric",
                                            values="value").reset_index()
    wide = wide.dropna(subset=[c for c in ("step_change_h", "step_change_c") if c in wide] or None)
    key = f"{lstm_name}: h / c step change"
    if len(wide) and {"step_change_h", "step_change_c"} <= set(wide):
        parts = []
        est = stats.mean_diff(np.log(wide.step_change_h / wide.step_change_c), wide.seed)
        settings = wide[["task", "seq_len"]].drop_duplicates().sort_values(["task", "seq_len"])
        where = "; ".join(f"{t} T={n}" for t, n in settings.itertuples(index=False))
        dropped = len(every) - len(lstm)
        left_out = f"; {dropped} of {len(every)} runs learned nothing, left out" if dropped else ""
        parts.append((f"{key} ({where}{left_out})", _ratio(est), stats.greater(est, CHANGE_MARGIN), key))
        slow = wide.dropna(subset=["step_change_c_slow"]) if "step_change_c_slow" in wide else wide.iloc[:0]
        if len(slow):
            est = stats.mean_diff(np.log(slow.step_change_h / slow.step_change_c_slow), slow.seed)
            tau = slow.time_constant_slow.median()
            parts.append((f"{key}, c's slowest quarter of units (median time constant {tau:.3g} steps)",
                          _ratio(est), stats.greater(est, CHANGE_MARGIN), f"{key}, slowest units"))
        return parts
    if len(every) and lstm.empty:
        return [(f"{lstm_name}: {len(every)} runs, none learned its task (best score {every.score.max():+.3f})",
                 None, stats.INCONCLUSIVE, key)]
    return []


def _ratio(log_est: Estimate, invert: bool = False) -> str:
    """An estimate of a mean log ratio, shown as the ratio "xM [lo, hi]" (invert: of its inverse)."""
    sign = -1 if invert else 1
    lo, hi = sorted(math.exp(sign * v) for v in (log_est.lo, log_est.hi))
    return f"x{math.exp(sign * log_est.mean):.2f} [{lo:.2f}, {hi:.2f}] (n={log_est.n})"


def s3(runs, tables):
    """Standard GRU and LSTM runs of equal input size, hidden size, layers and directions (training
    and throughput runs alike). Supported when every such pair has the GRU's count below the LSTM's
    and every recorded count equals the closed form cells.count_params; not supported when a
    pair has the GRU's count at or above the LSTM's; inconclusive when a recorded count
    disagrees with the closed form. Counts are exact: no interval."""
    both = runs[(standard(runs, "gru") | standard(runs, "lstm"))]  # throughput runs count too
    keys = [k for k in ("input_size", "hidden_size", "num_layers", "config.cell.bidirectional") if k in both]
    counts = both.groupby([*keys, "family"]).n_params.agg(set).unstack("family").reindex(columns=["gru", "lstm"])
    parts = []
    for key, row in counts.dropna().iterrows():
        label = ", ".join(f"{k.removeprefix('config.cell.')}={v}" for k, v in zip(keys, key if isinstance(key, tuple)
                                                                                   else (key,)))
        if len(row.gru) > 1 or len(row.lstm) > 1:  # one count per setting, unless a size is not recorded
            parts.append((f"{label}: several counts, gru {sorted(row.gru)}, lstm {sorted(row.lstm)}", None,
                          stats.INCONCLUSIVE))
            continue
        (gru,), (lstm,) = row.gru, row.lstm
        parts.append((f"{label}: gru {gru} / lstm {lstm} = {gru / lstm:.4f}", None,
                      stats.SUPPORTED if gru < lstm else stats.NOT_SUPPORTED))
    wrong = _closed_form_mismatches(both)
    verdict = _verdict("S3", CLAIMS["S3"][0], parts, _scope(both),
                       "recorded counts equal the closed form" if not wrong else "")
    if wrong and parts and not verdict.verdict.startswith(stats.NOT_SUPPORTED):
        verdict.verdict = f"inconclusive: recorded counts differ from the closed form ({wrong})"
    return verdict


def _closed_form_mismatches(runs) -> str:
    if "input_size" not in runs:
        return "the runs do not record input_size"
    wrong = []
    for row in runs.to_dict("records"):
        cls = cells.CELLS[row["family"]]
        flags = {f: row[f] for f in cls.FLAGS if not pd.isna(row.get(f))}
        expected = cells.count_params(cls, int(row["input_size"]), int(row["hidden_size"]),
                                      int(row["num_layers"]), bias=bool(row.get("bias", True)),
                                      bidirectional=row.get("config.cell.bidirectional") is True, **flags)
        if expected != row["n_params"]:
            wrong.append(f"{row['cell']} H={row['hidden_size']}: {row['n_params']} != {expected}")
    return "; ".join(sorted(set(wrong)))


def s4(runs, tables):
    """GRU minus LSTM score, paired by seed, for each LSTM (LSTMS), at equal hidden size and at
    equal parameter count (the GRU resized with param_match=lstm: against the LSTMs whose flags
    change only starting values, so that their count is the standard LSTM's), one part per
    comparison, LSTM and task, lengths pooled. A part is supported when the GRU is non-inferior
    within the scale's margin (interval above -margin), not supported when the interval lies below
    -margin, inconclusive otherwise."""
    parts, used = [], []
    gru_equal = standard(runs, "gru")
    gru_sized = (runs.family == "gru") & (runs.variant == "") & runs.sized
    for lstm_name, lstm in lstms(runs):
        variant = runs.variant[lstm].iloc[0]  # 'flag=value,...': the same count where only starting values change
        same_count = all(item.split("=")[0] in INIT_FLAGS for item in variant.split(",") if item)
        for label, gru in [("equal H", gru_equal), *([("equal params", gru_sized)] if same_count else [])]:
            for task, est, g in _compare(runs, gru, lstm):
                parts.append(_score_part(f"{label}, {_where(g)}: gru - {lstm_name}", est, g, stats.non_inferior,
                                         f"{label}, {task}: gru - {lstm_name}"))
        used.append(runs[lstm])
    return _verdict("S4", CLAIMS["S4"][0], parts, _scope(pd.concat([*used, runs[gru_equal | gru_sized]])))


def s5(runs, tables):
    """Compute, per implementation, device, dtype and size (make reproduce times a grid of sizes;
    where the parts differ the claim 'depends', naming them): the GRU's forward+backward time over
    the LSTM's, paired by seed (mode=throughput runs), each time taken relative to torch's LSTM
    timed in the same rounds of the same process (so that the machine's drift between runs
    cancels). Each such part is tested on the log ratio: supported when the interval shows the GRU
    faster and by at least 5% (stats.greater, margin log 1.05), not supported when the interval
    lies below that, inconclusive otherwise. Training, per task, lengths pooled: steps to solve
    (on validation) censored at the budget, a run that never solved is not scored as solving at
    it; per seed, which cell solved first (over a seed's lengths, the cell that won more of
    them), by the exact sign test (stats.first_to_solve): supported when it shows the GRU first
    more often, not supported when it shows the LSTM first more often. The Kaplan-Meier median
    steps to solve of each cell and median seconds are shown, not tested: parallel runs share
    the machine."""
    parts, where = [], []  # where: each part's implementation and device ('training' for steps to solve)
    tp = costs.with_path(tables)
    tp = tp[tp["pass"] == "forward_backward"].drop(columns=["cell", "cell_class", "n_params"]).merge(
        runs[["run_id", "family", "variant", "sized", "seed", "cell"]], on="run_id")
    tp = tp[standard(tp)]
    keys = [*(k for k in costs.KEYS if k != "pass"), "seed"]  # impl, path, device, ..., hidden_size, seed
    tp = tp.assign(time=costs.per_ref(tp).fillna(tp.seconds))
    wide = tp.pivot_table(index=keys, columns="family", values="time").reset_index()
    if {"gru", "lstm"} <= set(wide.columns):
        wide = wide.dropna(subset=["gru", "lstm"])
        for key, g in wide.groupby(keys[:-1]):
            est = stats.mean_diff(np.log(g.lstm / g.gru), g.seed)
            impl = key[0] + (f" ({key[1]})" if key[0] == "loop" and key[1] != "-" else "")  # ours: its path
            label = f"{impl} {key[2]} {key[3]}, T={key[5]} B={key[6]} I={key[7]} H={key[8]}: gru / lstm time"
            parts.append((label, _ratio(est, invert=True), stats.greater(est, SPEED_MARGIN)))
            where.append(f"{impl} {key[2]}")
    train = runs[runs.training & runs.solved_threshold.notna()]
    used = [runs[runs.run_id.isin(tp.run_id)]]
    for lstm_name, lstm in lstms(train):
        p = stats.pairs(train, standard(train, "gru"), lstm)
        used.append(train[lstm | standard(train, "gru")])
        for task, g in p.groupby("task"):
            solved = [g[f"solved_{s}"].astype(bool) for s in "ab"]
            first = stats.first_to_solve(g.steps_to_solve_a, solved[0], g.steps_to_solve_b, solved[1], g.seed)
            medians = [stats.median_to_solve(g[f"steps_to_solve_{s}"], ok) for s, ok in zip("ab", solved)]
            seconds = [g[f"seconds_to_solve_{s}"].astype(float).median() for s in "ab"]
            shown = ", ".join(f"{n} {'not reached' if math.isinf(m) else f'{m:.0f}'} ({sec:.1f} s)"
                              for n, m, sec in zip(("gru", lstm_name), medians, seconds))
            parts.append((f"{_where(g)}: first to solve, gru vs {lstm_name}; median steps to solve {shown}",
                          first.text("gru", lstm_name), stats.greater(first, 0.0),
                          f"{task}: first to solve, gru vs {lstm_name}"))
            where.append(f"training on {task}")
    verdict = _verdict("S5", CLAIMS["S5"][0], parts, _scope(pd.concat(used)))
    if verdict.verdict.startswith("depends"):  # say on what, in words: per implementation, how many sizes each way
        by = verdict.parts.assign(where=where).groupby("where", sort=False).verdict
        verdict.verdict = "depends on implementation and size: " + "; ".join(
            f"{w}: " + ", ".join(f"{v} {n}" for v, n in g.value_counts().items()) + f" of {len(g)}" for w, g in by)
    return verdict


def ablation_pairs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per training run of an ablation (a cell that differs from another in one flag of
    ABLATIONS) and its base's run of the same seed and setting: cell (the ablated cell's name),
    family, variant, ablation (the flag=value), base (the base cell's name: claims.name), task,
    seq_len, seed, effect (score of the ablated minus score of the base: score_a - score_b), and
    each side's columns (_a, _b)."""
    train = runs[runs.training & ~runs.sized]
    frames = []
    for (family, var), _ in train[train.variant != ""].groupby(["family", "variant"]):
        items = var.split(",")
        removed = [item for item in items if item in ABLATIONS]
        if len(removed) != 1:
            continue
        base = ",".join(item for item in items if item != removed[0])
        p = stats.pairs(train, (train.family == family) & (train.variant == var),
                        (train.family == family) & (train.variant == base))
        frames.append(p.assign(cell=p.cell_a, family=family, variant=var, ablation=removed[0],
                               base=name(family, base), effect=p.score_a - p.score_b, device_name=p.device_name_a))
    columns = ["cell", "family", "variant", "ablation", "base", "task", "seq_len", "seed", "effect", "device", "impl",
               "dtype", "device_name",
               *(f"{c}_{s}" for c in ("score", "score_max", "learned", "margin", "scale") for s in "ab")]
    frames = [f[columns] for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True).dropna(subset=["effect"]) if frames else pd.DataFrame(columns=columns)


def _per_task(pairs: pd.DataFrame, sign: int):
    """(task, estimate of sign x effect with lengths pooled, the pairs) per task."""
    return [(task, stats.mean_diff(sign * g.effect, g.seed), g) for task, g in pairs.groupby("task")]


def s6(runs, tables):
    """The tie costs nothing: GRU minus untied GRU (tied_gates=False), and CIFG LSTM
    (coupled_gates=True) minus its LSTM (torch's, or Greff et al.'s vanilla LSTM for theirs),
    score paired by seed, one part per pair of cells and task, lengths pooled; each part tested
    for non-inferiority within the scale's margin, as in S4."""
    ablated = ablation_pairs(runs)
    used = ablated[ablated.ablation.isin(["tied_gates=False", "coupled_gates=True"])]
    parts = []
    for (ablation, base), pairs in used.groupby(["ablation", "base"], sort=False):
        untie = ablation == "tied_gates=False"
        label, sign = (f"{base} - untied {base}", -1) if untie else (f"cifg {base} - {base}", 1)
        for task, est, g in _per_task(pairs, sign):
            parts.append(_score_part(f"{_where(g)}: {label}", est, g, stats.non_inferior, f"{task}: {label}"))
    return _verdict("S6", CLAIMS["S6"][0], parts, _scope(used))


def s7(runs, tables):
    """Each gate matters: for each cell with one gate removed (input_gate, forget_gate,
    output_gate, reset_gate or update_gate False), the cell it was removed from (the standard
    cell, or Greff et al.'s vanilla LSTM for theirs) minus it, score paired by seed, one part per
    removed gate, base cell and task, lengths pooled. A part is supported when the base cell is
    better (stats.greater, the scale's margin), not supported when the interval lies below the
    margin, inconclusive otherwise; the claim combines its parts."""
    ablated = ablation_pairs(runs)
    used = ablated[ablated.ablation.isin([f"{gate}=False" for gate in GATES])]
    parts = []
    for (base, ablation), pairs in used.groupby(["base", "ablation"], sort=False):
        for task, est, g in _per_task(pairs, -1):
            gate = f"{base} - {base} without {ablation.split('=')[0]}"
            parts.append(_score_part(f"{_where(g)}: {gate}", est, g, stats.greater, f"{task}: {gate}"))
    return _verdict("S7", CLAIMS["S7"][0], parts, _scope(used))


def _scope(runs) -> str:
    """Where the evidence was measured: device, implementation, dtype and machine."""
    if runs.empty:
        return "no runs"
    where = runs[["device", "impl", "dtype", "device_name"]].drop_duplicates().astype(str)
    return "Measured on " + "; ".join(" ".join(row) for row in where.itertuples(index=False))


CLAIMS = {
    "S1": ("LSTM handles long dependencies that a vanilla RNN cannot (vanishing / exploding gradients)", s1),
    "S2": ("the LSTM cell state c changes slowly, while h differs a lot from step to step", s2),
    "S3": ("GRU has fewer parameters than LSTM", s3),
    "S4": ("GRU reaches accuracy comparable to LSTM", s4),
    "S5": ("GRU is cheaper to compute and faster / easier to train", s5),
    "S6": ("GRU's single gate z forgets and remembers at once (z and 1-z are tied)", s6),
    "S7": ("the gates are what matter", s7),
}


def judge(tables: dict[str, pd.DataFrame], runs: pd.DataFrame | None = None) -> list[Verdict]:
    """Every claim of the ledger, in order; `runs`: tables["runs"] annotated, if the caller has
    it. Each cell's training runs are those of its best trial on validation (selection.select);
    claims on accuracy read the training runs only. Parts with at least SPLIT_SEEDS seeds are
    judged again on each half of the seeds, each half reading the trials chosen on all of them:
    a learning-rate grid run on a few seeds, then more seeds at its choice, leaves a half that
    chose for itself, on one or two seeds, a trial with no seeds beyond the grid's."""
    runs = annotate(tables["runs"]) if runs is None else runs
    chosen = selection.select(runs)
    verdicts = _judge(tables, chosen)
    seeds = sorted(runs.seed.dropna().unique())
    if len(seeds) >= SPLIT_SEEDS:
        halves = [_judge(tables, chosen[chosen.seed.isin(seeds[k::2])]) for k in (0, 1)]
        for v, a, b in zip(verdicts, *halves):
            _mark_stability(v, a, b)
    for v in verdicts:
        v.parts = v.parts.drop(columns="leans", errors="ignore")  # read by _mark_stability only
    return verdicts


SPLIT_SEEDS = 6  # a part with fewer seeds is not split: its halves would hold fewer than MIN_PAIRS


def _judge(tables, runs) -> list[Verdict]:
    """Every claim on `runs`, each cell's chosen trial."""
    return [fn(runs if id_ in ("S3", "S5") else runs[runs.training], tables) for id_, (_, fn) in CLAIMS.items()]


def _mark_stability(v: Verdict, a: Verdict, b: Verdict) -> None:
    """Split-half stability: each part of v with at least SPLIT_SEEDS seeds gets its verdicts on
    the two halves of the seeds (even and odd in order, the trials chosen on all seeds), matched
    by key ('-' where a half has no such part), and how they stand to v's verdict (STABILITY). An
    unstable part is named in the verdict and the evidence."""
    if v.parts.empty:
        return
    halves = [{k: (verdict, leans) for k, verdict, leans in zip(h.parts.key, h.parts.verdict, h.parts.leans)}
              if len(h.parts) else {} for h in (a, b)]
    split = v.parts.n.fillna(0).astype(float) >= SPLIT_SEEDS
    shown = [f"{halves[0].get(k, ('-',))[0]} / {halves[1].get(k, ('-',))[0]}" if s else None
             for k, s in zip(v.parts.key, split)]
    stability = [_stability(verdict, halves[0].get(k), halves[1].get(k)) if s else None
                 for k, s, verdict in zip(v.parts.key, split, v.parts.verdict)]
    v.parts = v.parts.assign(halves=shown, stability=stability)
    unstable = v.parts[v.parts.stability.eq(UNSTABLE)]
    if len(unstable):
        v.verdict += f" ({len(unstable)} of {int(split.sum())} split parts unstable across seed halves)"
        v.evidence += ". Unstable across seed halves: " + "; ".join(
            f"{k} ({h})" for k, h in zip(unstable.key, unstable.halves))


AGREE, UNDERPOWERED, UNSTABLE = "agree", "halves underpowered", "unstable"
STABILITY = {
    AGREE: "the three verdicts are the same",
    UNDERPOWERED: "decided on all seeds, undecided on each half, and each half's estimate leans the "
                  "way of the verdict (its test for that side has the smaller p): the halves do not "
                  "disagree, they hold too few seeds to decide",
    UNSTABLE: "anything else: the halves differ from each other, a half leans against the verdict, "
              "or a half lacks the part",
}


def _stability(verdict: str, a: tuple | None, b: tuple | None) -> str:
    """a, b: each half's (verdict, leaning) for the part, None where the half lacks it."""
    if a is None or b is None:
        return UNSTABLE
    if a[0] == b[0] == verdict:
        return AGREE
    if verdict != stats.INCONCLUSIVE and a[0] == b[0] == stats.INCONCLUSIVE and a[1] == b[1] == verdict:
        return UNDERPOWERED
    return UNSTABLE
