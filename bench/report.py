"""`rnnbench-report RESULTS_DIR`: the claims ledger with verdicts, the tables and the figures of a
results directory, written as RESULTS_DIR/report.md and PNG files beside it. It only reads the
tables (bench.results.load_tables); nothing is run."""
import argparse
import inspect
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

import cells
from . import claims, costs, figures, literature, results, selection, stats, tasks
from .results import load_tables

CAPTIONS = {
    "accuracy_vs_length.png": "Score (0 at chance, the task's scale) against sequence length per cell and task "
                              "(95% t intervals over seeds).",
    "gradient_profile.png": "‖∂L/∂h_t‖ over t at each task's longest length, at initialisation and after training.",
    "step_change.png": "Relative step change of h and of the LSTM's c after training.",
    "throughput.png": "Time per call over torch's nn.LSTM's timed in the same rounds (lower is faster; tokens "
                      "per second where runs have no such yardstick), per implementation, forward and forward+backward.",
    "ablations.png": "Each ablation's score minus its standard cell's, paired by seed.",
}


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table; floats to 4 significant digits, missing values as '-'."""
    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return "-"
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")
    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    return "\n".join([head, rule, *("| " + " | ".join(r) + " |" for r in rows)])


def ledger(verdicts) -> str:
    return markdown(pd.DataFrame([(v.id, v.claim, v.verdict, v.evidence) for v in verdicts],
                                 columns=["id", "claim", "verdict", "evidence"]))


def parameters(runs) -> pd.DataFrame:
    """Parameters per cell (and ablation) and size, with the ratio to the standard LSTM of the
    same sizes (closed form, cells.count_params)."""
    keys = ["cell", "variant", "input_size", "hidden_size", "num_layers", "bias", "n_params"]
    table = runs[[k for k in keys if k in runs]].drop_duplicates().sort_values(["hidden_size", "n_params"])
    if {"input_size", "bias"} <= set(table):
        lstm = [cells.count_params("lstm", int(i), int(h), int(n), bias=bool(b)) for i, h, n, b in
                zip(table.input_size, table.hidden_size, table.num_layers, table.bias)]
        table["/ lstm of these sizes"] = table.n_params / lstm
    return table


def accuracy(runs) -> pd.DataFrame:
    """Final test metric per cell (its config's name and the flags it changes), task and length:
    mean and sd over seeds, skill, score, solved."""
    train = runs[runs.training].assign(final=lambda r: r.final_value.astype(float),
                                       solved_runs=lambda r: r.solved.astype(float))
    table = train.groupby(["task", "seq_len", "cell", "variant", "hidden_size", "metric"], dropna=False).agg(
        chance=("chance", "first"), mean=("final", "mean"), sd=("final", "std"), skill=("skill", "mean"),
        score=("score", "mean"), score_sd=("score", "std"),
        seeds=("seed", "nunique"), solved=("solved_runs", "sum"))
    return table.reset_index().astype({"solved": int})


def solving(runs) -> pd.DataFrame:
    """Steps and seconds to reach the solved threshold (solved runs only), per cell (name and
    flags), task, length."""
    train = runs[runs.training & runs.solved_threshold.notna()].copy()
    for col in ("steps_to_solve", "seconds_to_solve"):
        train[col] = train[col].astype(float)
    table = train.groupby(["task", "seq_len", "cell", "variant", "hidden_size"]).agg(
        solved=("solved", "sum"), seeds=("seed", "nunique"), budget=("config.train.steps", "max"),
        median_steps=("steps_to_solve", "median"), median_seconds=("seconds_to_solve", "median"))
    return table.reset_index()


def speed(tables) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Median tokens/s per cell, implementation, device and size; and GRU / LSTM ratios."""
    tp = costs.with_path(tables)
    keys = ["cell", *costs.KEYS]
    tp = tp.assign(per_ref=costs.per_ref)
    per_cell = tp.groupby(keys).agg(tokens_per_s=("tokens_per_s", "median"), ms=("seconds", "median"),
                                    per_ref=("per_ref", "median"), seeds=("run_id", "nunique")).reset_index()
    per_cell["ms"] *= 1e3
    return per_cell, costs.gru_vs_lstm(tables)


def machines(runs) -> pd.DataFrame:
    cols = ["device", "device_name", "cpu", "threads", "torch_version", "onednn", "cudnn", "git_commit", "code"]
    table = runs[[c for c in cols if c in runs]].value_counts(dropna=False).rename("runs").reset_index()
    return table


def rules() -> str:
    """Every claim's verdict rule, as its function's docstring says it."""
    lines = [f"- **{id_}**: " + " ".join(inspect.getdoc(fn).split()) for id_, (_, fn) in claims.CLAIMS.items()]
    return "\n".join(lines)


def how_verdicts_are_reached() -> str:
    scales = "; ".join(f"**{s.name}**, {s.unit} (margin {s.margin:.3g})" for s in tasks.SCALES.values())
    return (
        "A training run trains its whole budget; its score is the test set's, scored once, at the end. Whether "
        "and when it solved, and every evaluation before, read the validation set (records before task_version "
        "2 stopped when the test set met the threshold). Accuracy is compared on each task's **score**, 0 at "
        f"the task's chance baseline and without a ceiling that runs reach (tasks.SCALES): {scales}. Losses "
        f"below {tasks.LOSS_FLOOR:g} score as it. A diverged run scores 0, a failed run is left out. **Skill** "
        "(0 at chance, 1 perfect: 1 - mse / chance, or (accuracy - chance) / (1 - chance)) is shown beside it "
        "and compares nothing: every cell that solves a task has a skill near 1. "
        "Two runs are a **pair** when they differ only in the cell: same task, length, seed, requested hidden "
        "size, backend and training budget. An estimate is the mean paired difference over seeds (a seed's "
        f"differences at several lengths averaged first) with its {stats.LEVEL:.0%} paired t interval; n counts "
        "seeds. A pass/fail part (solved or not) shows each cell's rate with its Clopper-Pearson interval "
        "and is tested with the exact McNemar test on the pairs where only one cell passed; n counts pairs. "
        "Time to solve is censored at the budget: a run that never solved is not scored as solving at it. "
        f"Each part is two one-sided tests at {stats.ALPHA:.3g} (the interval's ends): one that supports the claim "
        "(p in the tables) and one that contradicts it; the parts of a claim are one family, and both kinds "
        "of test are Holm-adjusted over it. \"The interval lies above\" in the rules below means the "
        f"adjusted test shows it; the intervals shown are not adjusted. Fewer than {stats.MIN_PAIRS} seeds "
        "decide nothing. A run learned its task when its score exceeds its scale's margin; a comparison where "
        "neither cell's mean score exceeds it decides nothing: two cells at chance are alike whatever their "
        "design. Each score part names its scale and counts the pairs tied at the ceiling (both at the best "
        "score the scale gives) or the floor (neither learned). A claim is supported when every part "
        "is, not supported when every part is not, 'depends' (naming the parts each way) when some parts are "
        "supported and some not (whatever its undecided parts), inconclusive otherwise. An undecided part "
        "shows the **seeds to decide** it: the fewest at which its test would decide it with power "
        f"{stats.POWER:.0%} if its estimate were the truth (same mean and spread, or the same shares of pairs won), at Holm's strictest level; '-' where decided, "
        "or where no budget up to 1,000 seeds would (a mean on the boundary). A part with at least "
        f"{claims.SPLIT_SEEDS} seeds is judged again on each half of its seeds (even and odd in order, each cell at "
        "the trial chosen on all seeds): **halves** shows their verdicts and **stability** how they stand to the "
        "part's: " + "; ".join(f"{k}, {rule}" for k, rule in claims.STABILITY.items()) + ". An unstable part is "
        "named in the ledger. Each cell stands for its "
        "best trial on validation (the tuning section below). The z of a GRU here is torch's (z keeps "
        "the old state); the seed's z is 1 - z. The rule of each claim:")


def write(results_dir: Path, strict: bool = False) -> tuple[Path, list[claims.Verdict], list[str]]:
    tables, skipped = results.scan(results_dir, strict=strict)
    every = claims.annotate(tables["runs"])
    runs = selection.select(every)  # each cell at its best trial on validation: what the claims read
    trials = selection.trials(every)
    verdicts = claims.judge(tables, every)
    lit = literature.beside(verdicts)
    drawn = figures.draw(runs, tables)
    for name, fig in drawn.items():
        figures.save(fig, results_dir / name)
    per_cell, ratios = speed(tables)
    status = every.status.value_counts().to_dict()
    sections = [
        f"# rnnbench report: {results_dir.name}",
        f"{len(every)} runs ({', '.join(f'{n} {s}' for s, n in status.items())}), read from `{results_dir}` "
        "with `bench.results.load_tables`. Written by `rnnbench-report`; every number below is computed "
        "from those tables."
        + (f" Skipped, damaged (their runs count as not recorded): {'; '.join(f'`{p}`' for p in skipped)}."
           if skipped else ""),
        "## Claims ledger", ledger(verdicts),
        "## How verdicts are reached",
        how_verdicts_are_reached(),
        rules(),
        "## Evidence per claim",
        *[f"### {v.id}: {v.verdict}\n\n" + (markdown(v.parts.drop(columns="key")) if len(v.parts) else v.evidence)
          for v in verdicts],
        "## The literature beside each verdict",
        "The published results a part can be compared with, the verdict each corresponds to, and whether this "
        "run agrees (`bench/literature.py`; citations with their tables in `docs/literature.md`, which also lists "
        "what is still to be checked). Parts not listed have no published result here.",
        markdown(lit) if len(lit) else "No part of these results has a published counterpart here.",
        *[f"{pub.task}, each cell beside {pub.cite} (what differs: {pub.differs}):\n\n{markdown(table)}"
          for pub, table in literature.per_cell(runs, tables["metrics"])],
        "## Tuning", selection.summary(trials),
        *([markdown(selection.wide(trials))] if trials.trials.gt(1).any() else []),
        "## Figures",
        *[f"![{CAPTIONS[name]}]({name})\n\n{CAPTIONS[name]}" for name in drawn],
        "## Parameters per cell", markdown(parameters(runs)),
        "## Accuracy per cell, task and length", markdown(accuracy(runs)),
        "## Steps and seconds to solve", markdown(solving(runs)),
        "## Throughput",
        "Median tokens/s and ms per call; per_ref: the time over that of torch's nn.LSTM of the same "
        "sizes, timed in the same rounds of the same process (a yardstick the machine's drift moves "
        "alike).", markdown(per_cell) if len(per_cell) else "No throughput runs.",
        "GRU / LSTM per implementation: time ratio (of per_ref times where measured) next to the "
        "parameter and multiply-add ratios (below 1: the GRU is cheaper).", markdown(ratios) if len(ratios) else "No GRU and LSTM pairs.",
        "## Machines and software", markdown(machines(every)),
    ]
    path = results_dir / "report.md"
    results.write_whole(path, "\n\n".join(sections) + "\n")
    return path, verdicts, list(drawn)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="rnnbench-report", description=__doc__.split("\n")[0])
    parser.add_argument("results_dir", type=Path, help="a results directory written by rnnbench")
    parser.add_argument("--strict", action="store_true",
                        help="stop at a damaged table (by default it is skipped with a warning, and its runs with it)")
    parser.add_argument("--mix-code", action="store_true",
                        help="report runs recorded by several versions of the code together (by default refused)")
    args = parser.parse_args(argv)
    try:
        runs = load_tables(args.results_dir, names=("runs",), strict=args.strict)["runs"]
    except results.Damaged as e:
        print(f"rnnbench-report: error: damaged: {e}", file=sys.stderr)
        raise SystemExit(2)
    if runs.empty:
        print(f"rnnbench-report: error: no runs in {args.results_dir}; run `make reproduce` or "
              f"`rnnbench ... results_dir={args.results_dir}` first", file=sys.stderr)
        raise SystemExit(2)
    versions = runs.get("code", pd.Series(index=runs.index, dtype=object)).fillna("unrecorded").value_counts()
    if len(versions) > 1 and not args.mix_code:
        print(f"rnnbench-report: error: {args.results_dir} holds runs of {len(versions)} versions of the code: "
              + ", ".join(f"{c} ({n} runs)" for c, n in versions.items()) + "; allowed: rerun them with "
              "on_code_change=rerun, or --mix-code to report them together", file=sys.stderr)
        raise SystemExit(2)
    matplotlib.use("Agg")  # files only: no display needed, none opened
    path, verdicts, drawn = write(args.results_dir, args.strict)
    counts = pd.Series([v.verdict.split(":")[0].split(" (")[0] for v in verdicts]).value_counts()
    print(f"rnnbench-report: {path} ({len(verdicts)} claims: "
          + ", ".join(f"{n} {v}" for v, n in counts.items()) + f"; {len(drawn)} figures)")


if __name__ == "__main__":
    main()
