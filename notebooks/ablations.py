# %% [markdown]
# # Ablations: which parts of a gated cell matter (S6, S7)
# Each ablation is a flag on one cell (docs/cells.md). Here every ablated run is paired with
# its standard cell's run of the same seed and setting, and the gate statistics show what the
# gates did. Reads `RNNBENCH_RESULTS` (default: the committed reference results).

# %%
import os

import pandas as pd

from bench import claims, figures, selection, stats
from bench.results import load_tables

RESULTS = os.environ.get("RNNBENCH_RESULTS", "../results/reference")
tables = load_tables(RESULTS)
runs = selection.select(claims.annotate(tables["runs"]))  # each cell at its best trial on validation

# %% [markdown]
# ## Effect of each ablation on the score
# Ablated minus base score (`bench.tasks.SCALES`; the base is the cell without the ablation's
# flag), per task and length; negative: the ablation hurts.

# %%
effects = claims.ablation_pairs(runs)
rows = []
for (base, ablation, task, seq_len), g in effects.groupby(["base", "ablation", "task", "seq_len"]):
    est = stats.mean_diff(g.effect, g.seed)
    rows.append({"base": base, "ablation": ablation, "task": task, "T": seq_len, "effect": est.mean,
                 "ci_lo": est.lo, "ci_hi": est.hi, "seeds": est.n})
pd.DataFrame(rows).round(3) if rows else "no ablated runs"

# %%
figures.ablations(runs, tables);

# %% [markdown]
# ## Gate activations after training
# Mean activation and the fraction saturated (below 0.1 or above 0.9) per gate, validation set, last
# evaluation, layer 0. A gate stuck near 0 or 1 acts as a constant.

# %%
m = tables["metrics"].merge(runs[["run_id", "name", "task", "seq_len", "steps"]], on="run_id")
gates = m[m.metric.isin(["gate_mean", "gate_saturated"]) & (m.step == m.steps) & (m.layer == 0)]
gates.pivot_table(index=["task", "seq_len", "name", "gate"], columns="metric", values="value").round(3)

# %% [markdown]
# ## Steps to solve per ablation
# Runs that never reached the threshold count as not solved.

# %%
train = runs[runs.training & runs.solved_threshold.notna()]
train.groupby(["task", "seq_len", "cell"]).agg(solved=("solved", "sum"), seeds=("seed", "nunique"),
                                                median_steps=("steps_to_solve", "median"))
