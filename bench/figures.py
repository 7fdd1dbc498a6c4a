"""The report's figures: seaborn on long-form tables, one function per figure. Each takes the
annotated runs (bench.claims.annotate) and the tables, and returns a figure, or None when the
tables hold nothing to draw. Error bars are 95% t intervals over seeds (stats.mean_diff)."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import claims, results, stats


def CI(values) -> tuple[float, float]:
    """Error bars: the t interval over seeds that the verdicts use (stats.mean_diff); none for one."""
    est = stats.mean_diff(values)
    return (est.lo, est.hi) if est.n > 1 else (np.nan, np.nan)


sns.set_theme(style="whitegrid", context="paper")


def _standard_training(runs):
    """The training runs of the cells the ledger compares (claims.reference), named in `name`."""
    return runs[runs.training & claims.reference(runs)]


def accuracy_vs_length(runs, tables):
    """Score (0 = chance; each task's scale, tasks.SCALES) against sequence length, per cell the
    ledger compares and task."""
    data = _standard_training(runs).dropna(subset=["score"])
    if data.seq_len.nunique() < 2:
        return None
    data = data.assign(task=data.task + " (" + data.scale + ")")
    grid = sns.relplot(data=data, x="seq_len", y="score", hue="name", col="task", kind="line", marker="o",
                       errorbar=CI, seed=0, height=3, aspect=1.2, facet_kws={"sharex": False, "sharey": False})
    grid.set(xscale="log")
    grid.set_titles("{col_name}")
    grid.set_axis_labels("sequence length T", "score (0 chance)")
    return grid.figure


def gradient_profile(runs, tables):
    """‖∂L/∂h_t‖ over t (layer 0), at initialisation and after training, for the cells the ledger
    compares at each task's longest length; per-example gradients averaged over the probe batch."""
    p = tables["profiles"]
    p = p[(p.quantity == "dL/dh") & (p.layer == 0)]
    std = _standard_training(runs)
    longest = std.groupby("task").seq_len.transform("max")
    p = p.merge(std[std.seq_len == longest][["run_id", "name", "task", "seq_len", "steps"]], on="run_id")
    if p.empty:
        return None
    last = p.groupby("run_id").step.transform("max")
    p = p[(p.step == 0) | (p.step == last)].assign(
        when=lambda d: np.where(d.step == 0, "at initialisation", "trained"),
        task_T=lambda d: d.task + " T=" + d.seq_len.astype(str),
        value=lambda d: d.value.where(d.value > 0))  # a log axis: a value that underflowed is not drawn
    grid = sns.relplot(data=p, x="t", y="value", hue="name", col="when", row="task_T", kind="line",
                       errorbar=CI, seed=0, height=2.8, aspect=1.4, facet_kws={"sharex": False})
    grid.set(yscale="log")
    grid.set_titles("{row_name}, {col_name}")
    grid.set_axis_labels("time step t", "‖∂L/∂h_t‖")
    return grid.figure


def step_change(runs, tables):
    """Mean relative step change ‖s_t - s_t-1‖ / ‖s_t-1‖ of h and (LSTM) c on the validation set
    after training, per cell the ledger compares, task and length."""
    m = tables["metrics"]
    m = m[m.metric.isin(["step_change_h", "step_change_c"]) & (m.layer == 0)]
    std = _standard_training(runs)
    m = m.merge(std[["run_id", "name", "task", "seq_len", "steps"]], on="run_id")
    m = m[m.step == m.steps]
    if m.empty:
        return None
    m = m.assign(state=m.metric.str.removeprefix("step_change_"), cell=m.name + " T=" + m.seq_len.astype(str))
    grid = sns.catplot(data=m, x="cell", y="value", hue="state", col="task", kind="bar", errorbar=CI, seed=0,
                       height=3, aspect=1.4, sharex=False)
    grid.set_axis_labels("", "relative step change")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", rotation=45)
    return grid.figure


def throughput(runs, tables):
    """Time per call over the yardstick's (torch's LSTM timed in the same rounds) per
    implementation and cell, forward and forward+backward: runs timed in different processes
    compare only so (an H200's speed moved by 40% between them). Tokens/s where a run has no
    yardstick."""
    tp = tables["throughput"].merge(runs[["run_id", "cell"]], on="run_id")
    if tp.empty:
        return None
    tp = tp.assign(size=lambda d: "T=" + d.seq_len.astype(str) + " B=" + d.batch_size.astype(str)
                   + " H=" + d.hidden_size.astype(str) + " " + d.device + " " + d.dtype)
    relative = tp.ref_seconds.notna().all()
    y, label = (("relative", "time / torch's nn.LSTM's") if relative else ("tokens_per_s", "tokens / s"))
    tp = tp.assign(relative=tp.seconds / tp.ref_seconds)
    grid = sns.catplot(data=tp, x="impl", y=y, hue="cell", col="pass", row="size", kind="bar",
                       errorbar=CI, seed=0, height=3, aspect=1.2, sharey=False)
    grid.set_axis_labels("implementation", label)
    grid.set_titles("{col_name}\n{row_name}")
    return grid.figure


def ablations(runs, tables):
    """Each ablation's score minus its base cell's (claims.ablation_pairs), paired by seed, per task
    and length."""
    effects = claims.ablation_pairs(runs)
    if effects.empty:
        return None
    effects = effects.assign(where=effects.task + " T=" + effects.seq_len.astype(str),
                             ablated=effects.base + " " + effects.ablation)
    grid = sns.catplot(data=effects, y="ablated", x="effect", col="where", kind="point", errorbar=CI, seed=0,
                       linestyle="none", height=max(2.5, 0.35 * effects.ablated.nunique()), aspect=1.0,
                       sharey=False)
    for ax in grid.axes.flat:
        ax.axvline(0, color="0.3", lw=1)
    grid.set_axis_labels("score minus the base cell's", "")
    grid.set_titles("{col_name}")
    return grid.figure


FIGURES = {
    "accuracy_vs_length.png": accuracy_vs_length,
    "gradient_profile.png": gradient_profile,
    "step_change.png": step_change,
    "throughput.png": throughput,
    "ablations.png": ablations,
}


def save(figure, path) -> None:
    """Write a PNG atomically: a reader never sees half a file."""
    try:
        results.write_whole(path, lambda tmp: figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    finally:
        plt.close(figure)


def draw(runs: pd.DataFrame, tables: dict) -> dict:
    """{file name: figure} for every figure with data."""
    drawn = {name: fn(runs, tables) for name, fn in FIGURES.items()}
    return {name: fig for name, fig in drawn.items() if fig is not None}
