# %% [markdown]
# # The claims ledger
# Does each claim of the seed (S1-S7, docs/design.md) hold on these results? The verdicts are the
# report's (`bench.claims`); this notebook shows the parts each verdict rests on and the runs
# behind them. It reads the committed reference results unless `RNNBENCH_RESULTS` names another
# results directory. Run it from `notebooks/` (`jupytext --to ipynb claims.py` opens it in Jupyter).

# %%
import os

import pandas as pd

from bench import claims, figures, selection, stats
from bench.results import load_tables

RESULTS = os.environ.get("RNNBENCH_RESULTS", "../results/reference")
tables = load_tables(RESULTS)
every = claims.annotate(tables["runs"])
runs = selection.select(every)  # each cell at its best trial on validation: the runs the claims read
print(f"{len(every)} runs in {RESULTS}: {every.status.value_counts().to_dict()}; {len(runs)} chosen")

# %% [markdown]
# ## Verdicts
# One row per claim; the rule behind each verdict is its function's docstring in `bench/claims.py`.

# %%
verdicts = claims.judge(tables)
pd.DataFrame([(v.id, v.claim, v.verdict) for v in verdicts], columns=["id", "claim", "verdict"])

# %% [markdown]
# ## The parts of each claim
# Estimates are mean paired differences (score, or a ratio where marked x) with 95% t
# intervals over seeds; n seeds (pairs for pass/fail parts), p the Holm-adjusted p-value of the
# test that supports the claim; for an undecided part, the seeds that would decide it 4 times in
# 5 if its estimate held; with 6 seeds or more, the verdicts on each half of the seeds.

# %%
parts = [v.parts.assign(id=v.id) for v in verdicts if len(v.parts)]
columns = ["id", "part", "estimate", "n", "p", "verdict", "seeds to decide", "halves", "stability"]
table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
table[[c for c in columns if c in table]] if parts else "no parts: no data"

# %% [markdown]
# ## Tuning
# Each cell's mean validation score at each learning rate of the grid, and the one chosen.

# %%
trials = selection.trials(every)
print(selection.summary(trials))
selection.wide(trials)

# %% [markdown]
# ## Score and skill per cell, task and length
# Runs are compared on their score (`bench.tasks.SCALES`): 0 at the task's chance baseline,
# decades of test loss below it (counting: how far beyond its training range a cell counts).
# Skill is the test metric on a bounded scale, 0 at chance and 1 perfect (`bench.stats.skill`).

# %%
train = runs[runs.training]
train.pivot_table(index=["task", "seq_len"], columns="cell", values=["score", "skill"], aggfunc="mean").round(3)

# %%
figures.accuracy_vs_length(runs, tables);

# %% [markdown]
# ## Every seed of the GRU-vs-LSTM comparison (S4)
# The pairs the S4 verdict averages: same task, length, seed and budget.

# %%
pairs = stats.pairs(train, claims.standard(train, "gru"), claims.standard(train, "lstm"))
pairs[["task", "seq_len", "seed", "score_a", "score_b"]].rename(columns={"score_a": "gru", "score_b": "lstm"})
