"""The cell zoo at a glance: every named cell of conf/cell/, its flags, its parameter count, the
ratio to the LSTM's, and the measured deviation from torch's module where one computes the same
function. `python -m bench.zoo` prints it (`make reproduce` until the runner exists)."""
import argparse

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import cells

from .run import CONF_DIR



def named_cells() -> dict:
    """name -> resolved config of every YAML in conf/cell/ (the file's name is the option's)."""
    return {p.stem: OmegaConf.to_container(OmegaConf.load(p), resolve=True)
            for p in sorted((CONF_DIR / "cell").glob("*.yaml"))}


def max_deviation(cell: cells.Recurrent, seq_len: int = 50, batch: int = 8) -> float | None:
    """Largest |ours - torch| over outputs, final states and all gradients; None without a twin."""
    twin = cell.to_torch()
    if twin is None:
        return None
    p = next(cell.parameters())
    x = torch.randn(seq_len, batch, cell.input_size, dtype=p.dtype)
    w = torch.randn(seq_len, batch, cell.hidden_size, dtype=p.dtype)  # a loss that weighs every output
    results = []
    for module in (cell, twin):
        module.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        out, state = module(xi)
        states = state if isinstance(state, tuple) else (state,)
        ((out * w).sum() + sum(s.sum() for s in states)).backward()
        results.append([out, *states, xi.grad, *(q.grad for q in module.parameters())])
    return max((a - b).abs().max().item() for a, b in zip(*results))


def zoo_table(input_size: int = 10, seed: int = 0) -> list[dict]:
    rows, configs = [], named_cells()
    order = list(cells.CELLS)  # rnn, lstm, gru; each family's standard cell first
    for name, cfg in configs.items():
        torch.manual_seed(seed)
        cls = cells.CELLS[cfg["_target_"].split(".")[-1].lower()]
        width = cfg["hidden_size"] if cls.adds_raw_input(cls.resolve_flags(
            {k: v for k, v in cfg.items() if k in cls.FLAGS})) else input_size  # MUT1, MUT2: I = H
        cell = instantiate(cfg, input_size=width)
        n_params = sum(p.numel() for p in cell.parameters())
        deviations = {}
        for dtype in (torch.float64, torch.float32):
            torch.manual_seed(seed)
            deviations[dtype] = max_deviation(cell.to(dtype))
        changed = {k: v for k, v in cell.flags.items() if v != cell.FLAGS[k].default}
        rows.append({
            "cell": name,
            "class": type(cell).__name__,
            "flags": ", ".join(f"{k}={v}" for k, v in changed.items()) or "-",
            "input_size": width,
            "hidden_size": cell.hidden_size,
            "n_params": n_params,
            "closed_form": cells.count_params(type(cell), width, cell.hidden_size,
                                              cell.num_layers, **cell.flags),
            "vs_lstm": n_params / cells.count_params("lstm", width, configs["lstm"]["hidden_size"]),
            "dev_f64": deviations[torch.float64],
            "dev_f32": deviations[torch.float32],
        })
    family = lambda r: (order.index(r["class"].lower()), r["cell"] != r["class"].lower(), r["cell"])  # noqa: E731
    return sorted(rows, key=family)


def format_table(rows: list[dict]) -> str:
    fmt = lambda v: "-" if v is None else f"{v:.2e}" if isinstance(v, float) and v < 1e-3 else (  # noqa: E731
        f"{v:.3f}" if isinstance(v, float) else str(v))
    header = ["cell", "class", "flags", "input_size", "hidden_size", "n_params", "closed_form", "vs_lstm",
              "dev_f64", "dev_f32"]
    lines = [header] + [[fmt(r[h]) for h in header] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join([text[0], "  ".join("-" * w for w in widths), *text[1:]])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(format_table(zoo_table(args.input_size, args.seed)))
    print(f"\nn_params: recurrent parameters at input_size={args.input_size} (hidden_size for MUT1 and MUT2, "
          "which add x_t unweighted); closed_form: count_params(); vs_lstm: ratio to the standard LSTM's "
          "count at the same sizes.\n"
          "dev_f64 / dev_f32: max |ours - torch.nn| over outputs, final states and all gradients "
          "(T=50, B=8) with copied weights; '-' where torch has no module computing that cell.")


if __name__ == "__main__":
    main()
