# %% [markdown]
# # Throughput and cost (S5)
# Tokens per second per cell, implementation and device, and the GRU / LSTM time ratio next to
# the ratios of parameters and multiply-adds: what the GRU's 25% fewer multiply-adds buy on this
# hardware. Reads `RNNBENCH_RESULTS` (default: the committed reference results).

# %%
import os

from bench import claims, costs, figures, report
from bench.results import load_tables

RESULTS = os.environ.get("RNNBENCH_RESULTS", "../results/reference")
tables = load_tables(RESULTS)
runs = claims.annotate(tables["runs"])

# %% [markdown]
# ## Tokens per second
# Median over repeats within a run, then over the runs (seeds) of a setting.

# %%
per_cell, ratios = report.speed(tables)
per_cell.round(1)

# %% [markdown]
# Time per call over torch's nn.LSTM's timed in the same rounds: runs in different processes
# compare only so.

# %%
figures.throughput(runs, tables);

# %% [markdown]
# ## GRU / LSTM
# Below 1: the GRU is cheaper. Compare time_ratio with macs_ratio: where time tracks the
# multiply-adds, the implementation is compute-bound; where it does not, something else costs.

# %%
costs.gru_vs_lstm(tables).round(3)

# %% [markdown]
# ## Training throughput
# Tokens per second while training: the steps after the first, evaluations excluded (the first
# step pays what a backend does once: compile, trace, capture; `first_step_seconds` holds it).
# Parallel runs share the machine, so compare these within one sweep only.

# %%
train = runs[runs.training]
train.groupby(["cell", "impl", "task", "seq_len"]).train_tokens_per_s.median().unstack("cell").round(0)
