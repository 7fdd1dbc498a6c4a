"""Scratch buffers a layer's Function reuses from one call to the next (on the CPU).

The whole-layer Functions keep, for their own backward only, buffers of every step's gates: tens
of MB at T=100, B=64, H=256; and their outputs (every h, the LSTM's c), which the caller holds
until it drops them. A fresh buffer that large comes from the OS (glibc maps every allocation
above 32 MB anew) and costs a page fault per 4 KB page when first written; one written before
costs nothing (what reuse saves: docs/backends.md). A buffer is handed out again only when
nothing but the workspace holds it: the graph that saved it is gone (after its backward, or
dropped) and no view of it is alive; otherwise a new one replaces it. Off the CPU the device's
caching allocator already reuses memory, and a torch without the use counts below gets fresh
buffers every time.
"""
import torch

_COUNTS = hasattr(torch.Tensor, "_use_count") and hasattr(torch._C, "_storage_Use_Count")


def _only_here(t: torch.Tensor) -> bool:
    """No graph, view or other tensor shares t: one reference to t, and t's (plus the temporary
    storage object's) to its storage."""
    return t._use_count() == 1 and torch._C._storage_Use_Count(t.untyped_storage()._cdata) == 2


class Workspace:
    """One layer's scratch buffers, by name; they live as long as the cell."""

    def __init__(self):
        self._kept: dict[str, torch.Tensor] = {}

    def empty(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of `shape`, with like's dtype and device."""
        if like.device.type != "cpu" or not _COUNTS:
            return like.new_empty(shape)
        t = self._kept.get(name)
        if t is None or t.shape != shape or t.dtype != like.dtype or not _only_here(t):
            t = self._kept[name] = like.new_empty(shape)
        return t

    def __deepcopy__(self, memo):  # scratch: a copy of the cell starts with none
        return Workspace()

    def __getstate__(self):  # nor does a pickled one
        return {}

    def __setstate__(self, state):
        self._kept = {}
