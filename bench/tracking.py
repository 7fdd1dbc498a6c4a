"""Live views of a run while it trains (`logger=...`, conf/logger/). The parquet tables written
when a run ends stay its record; a logger only shows the same metric rows as they come."""
import math
from pathlib import Path

KINDS = ("none", "tensorboard")


class TensorBoard:
    """One TensorBoard run per rnnbench run, in `folder/<name>`; each metric row a scalar tagged
    split/metric[/layer][/param][/gate], flushed at every evaluation."""

    def __init__(self, folder: str, name: str):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard: checked up front (check)
        self.writer = SummaryWriter(str(Path(folder) / name))

    def log(self, rows: list[dict]) -> None:
        for r in rows:
            if math.isfinite(r["value"]):
                parts = (r["split"], r["metric"], r.get("layer"), r.get("param"), r.get("gate"))
                self.writer.add_scalar("/".join(str(p) for p in parts if p is not None), r["value"], r["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def check(cfg) -> None:
    """A logger config that can run here; ValueError says what is wrong."""
    if cfg.kind not in KINDS:
        raise ValueError(f"logger.kind={cfg.kind!r} is not valid; allowed: {' | '.join(KINDS)}")
    if cfg.kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ValueError("logger=tensorboard needs the tensorboard package; allowed: pip install -e '.[track]', "
                             "or logger=none") from None


def open_logger(cfg, name: str) -> TensorBoard | None:
    """The run's logger, None for logger=none."""
    return TensorBoard(cfg.dir, name) if cfg.kind == "tensorboard" else None
