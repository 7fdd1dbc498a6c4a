"""GRU versus LSTM cost from a results directory's throughput table: for each implementation,
device, dtype, size and pass, the GRU's time per token relative to the LSTM's, next to the
ratios of their parameters and multiply-adds (0.75 each at equal sizes). `python -m bench.costs
RESULTS_DIR` prints it."""
import argparse

import numpy as np
import pandas as pd

from .results import load_tables

KEYS = ["impl", "path", "device", "dtype", "threads", "seq_len", "batch_size", "input_size", "hidden_size", "pass"]


# `native` as records before 2026-11-28 wrote it: a bool, True for the GRU's compiled loops
LEGACY_NATIVE = {True: "gru", False: ""}


def with_path(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The throughput table with its runs' cell and parameter count, and `path` on every row: the
    path each pass took (cells.accelerations), as recorded. Records from before 2026-12-06 have
    none; their run's `native` named the cells whose CPU loops ran compiled (also on CPU runs that
    never call them, before 2026-11-28): 'compiled' where it names the run's cell and the run was
    ours ('loop') on a CPU in float32 or float64, else '-' (not recorded)."""
    runs = tables["runs"].reindex(columns=["run_id", "cell", "cell_class", "n_params", "native"])
    tp = tables["throughput"].merge(runs, on="run_id")
    if "path" not in tp:
        tp["path"] = None
    legacy = [("compiled" if impl == "loop" and device == "cpu" and dtype in ("float32", "float64")
               and str(cls).lower() in _named(native) else "-")
              for impl, device, dtype, cls, native in zip(tp.impl, tp.device, tp.dtype, tp.cell_class, tp.native)]
    return tp.assign(path=tp.path.where(tp.path.notna(), legacy)).drop(columns=["native"])


def _named(native) -> list[str]:
    if isinstance(native, (bool, np.bool_)):
        native = LEGACY_NATIVE[bool(native)]
    return [] if native is None or pd.isna(native) else str(native).split(",")


def per_ref(throughput: pd.DataFrame) -> pd.Series:
    """Each row's time over its yardstick's, timed in the same rounds (NaN where it has none)."""
    return throughput.seconds / throughput.ref_seconds.astype(float)


def gru_vs_lstm(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per setting measured for both the standard GRU and LSTM: time, parameter and
    multiply-add ratios GRU / LSTM (a time ratio below 1: the GRU is faster). `tables` as
    load_tables returns them. Each run's time counts relative to the yardstick timed in its
    own rounds (ref_seconds) where it has one, so that drift between runs cancels."""
    tp = with_path(tables)
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
