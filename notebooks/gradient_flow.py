# %% [markdown]
# # Gradient flow (S1, S2)
# How far back the loss reaches: the per-timestep profile ‖∂L/∂h_t‖ at initialisation and after
# training, its decay rate per cell, the global gradient norm during training, and how much h and
# c change per step. Reads `RNNBENCH_RESULTS` (default: the committed reference results).

# %%
import os

import numpy as np
import pandas as pd
import seaborn as sns

from bench import claims, figures, selection
from bench.results import load_tables

RESULTS = os.environ.get("RNNBENCH_RESULTS", "../results/reference")
tables = load_tables(RESULTS)
runs = selection.select(claims.annotate(tables["runs"]))  # each cell at its best trial on validation
standard = runs[runs.training & (runs.variant == "") & ~runs.sized]

# %%
figures.gradient_profile(runs, tables);

# %% [markdown]
# ## Decay rate
# The slope of log10 ‖∂L/∂h_t‖ against t (a line fitted per run, layer 0): how many decades the
# gradient loses per step back in time. Near 0: the gradient reaches the first steps.

# %%
p = tables["profiles"]
p = p[(p.quantity == "dL/dh") & (p.layer == 0) & (p.value > 0)].merge(
    standard[["run_id", "cell", "task", "seq_len"]], on="run_id")
p = p.assign(when=np.where(p.step == 0, "init", "trained"))
p = p[(p.step == 0) | (p.step == p.groupby("run_id").step.transform("max"))]
slopes = p.groupby(["task", "seq_len", "cell", "when", "run_id"]).apply(
    lambda g: np.polyfit(g.t, np.log10(g.value), 1)[0] if g.t.nunique() > 1 else np.nan, include_groups=False)
slopes.groupby(["task", "seq_len", "cell", "when"]).mean().unstack("when").round(4) if len(slopes) else "no profiles"

# %% [markdown]
# ## Global gradient norm during training
# Before clipping, on the training batch at each evaluation.

# %%
m = tables["metrics"].merge(standard[["run_id", "cell", "task", "seq_len"]], on="run_id")
norms = m[m.metric == "grad_norm"]
if len(norms):
    grid = sns.relplot(data=norms, x="step", y="value", hue="cell", col="seq_len", row="task", kind="line",
                       height=2.5, aspect=1.3, errorbar=("ci", 95), seed=0)
    grid.set(yscale="log")

# %% [markdown]
# ## Step change of h and c (S2)
# Mean ‖s_t - s_t-1‖ / ‖s_t-1‖ on the validation set after training. S2's verdict reads only the LSTMs
# that learned their task (score above its scale's margin); the table shows every run.

# %%
figures.step_change(runs, tables);

# %%
changes = m[m.metric.isin(["step_change_h", "step_change_c"]) & (m.layer == 0)]
changes = changes[changes.step == changes.groupby("run_id").step.transform("max")]
changes.pivot_table(index=["task", "seq_len", "cell"], columns="metric", values="value").round(3)
