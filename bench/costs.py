"""GRU versus LSTM cost from a results directory's throughput table: for each implementation,
device, dtype, size and pass, the GRU's time per token relative to the LSTM's, next to the
ratios of their parameters and multiply-adds (0.75 each at equal sizes). `python -m bench.costs
RESULTS_DIR` prints it."""
import argparse

import numpy as np
import pandas as pd

from .backends import runs_compiled_loops
from .results import load_tables

KEYS = ["impl", "native", "device", "dtype", "threads", "seq_len", "batch_size", "input_size", "hidden_size", "pass"]


# `native` as records before the LSTM's compiled loops wrote it: a bool, True for the GRU's
LEGACY_NATIVE = {True: "gru", False: ""}


def with_native(runs: pd.DataFrame) -> pd.DataFrame:
    """runs with `native` on every row: the cells whose CPU loops ran compiled, '' for none (and
    for records from before the column); older records' bools read as LEGACY_NATIVE says, and
    records from before 2026-11-28 named the machine's compiled loops on every CPU run, also
    where the backend never runs them (fused, script, compile, bfloat16): '' there."""
    if "native" not in runs:
        return runs.assign(native="")
    named = [LEGACY_NATIVE[bool(v)] if isinstance(v, (bool, np.bool_)) else "" if pd.isna(v) else str(v)
             for v in runs["native"]]
    ran = map(runs_compiled_loops, runs["impl"], runs["device"], runs["dtype"])
    return runs.assign(native=[n if r else "" for n, r in zip(named, ran)])


def per_ref(throughput: pd.DataFrame) -> pd.Series:
    """Each row's time over its yardstick's, timed in the same rounds (NaN where it has none)."""
    return throughput.seconds / throughput.ref_seconds.astype(float)


def gru_vs_lstm(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per setting measured for both the standard GRU and LSTM: time, parameter and
    multiply-add ratios GRU / LSTM (a time ratio below 1: the GRU is faster). `tables` as
    load_tables returns them. Each run's time counts relative to the yardstick timed in its
    own rounds (ref_seconds) where it has one, so that drift between runs cancels."""
    tp = tables["throughput"].merge(with_native(tables["runs"])[["run_id", "cell", "n_params", "native"]],
                                    on="run_id")
    tp = tp[tp.cell.isin(["gru", "lstm"])].assign(relative=per_ref)
    if tp.cell.nunique() < 2:
        return pd.DataFrame(columns=KEYS + ["time_ratio", "params_ratio", "macs_ratio"])
    med = tp.groupby(KEYS + ["cell"]).agg(seconds=("seconds", "median"), relative=("relative", "median"),
                                          n_params=("n_params", "first"), macs=("macs_per_token", "first"))
    wide = med.unstack("cell").dropna(subset=[("seconds", "gru"), ("seconds", "lstm")])
    absolute = wide["seconds"]["gru"] / wide["seconds"]["lstm"]
    out = pd.DataFrame({
        "gru_ms": wide["seconds"]["gru"] * 1e3, "lstm_ms": wide["seconds"]["lstm"] * 1e3,
        "time_ratio": (wide["relative"]["gru"] / wide["relative"]["lstm"]).fillna(absolute),
        "params_ratio": wide["n_params"]["gru"] / wide["n_params"]["lstm"],
        "macs_ratio": wide["macs"]["gru"] / wide["macs"]["lstm"],
    })
    return out.reset_index()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", nargs="?", default="results/runs")
    args = parser.parse_args(argv)
    table = gru_vs_lstm(load_tables(args.results_dir))
    if table.empty:
        raise SystemExit(f"rnnbench: no GRU and LSTM throughput pairs in {args.results_dir}; "
                         "run `rnnbench -m experiment=throughput` first")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
