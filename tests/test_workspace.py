"""The scans' scratch buffers (cells/workspace.py): reused from one call to the next when free,
never while a graph or a view still holds them, and never copied with the cell."""
import copy
import pickle

import pytest
import torch

import cells

F64 = torch.float64
NAMES = {"GRU": "p", "LSTM": "acts"}  # the largest buffer of each scan


def grads(cell, out):
    out.sin().sum().backward(retain_graph=True)
    g = [p.grad.clone() for p in cell.parameters()]
    cell.zero_grad(set_to_none=True)
    return g


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_a_free_buffer_is_reused(name):
    cell = getattr(cells, name)(3, 4, 2)
    x = torch.randn(5, 2, 3)
    ptrs = []
    for _ in range(3):
        out, _ = cell(x)
        out.sum().backward()
        ptrs.append([ws._kept[NAMES[name]].data_ptr() for ws in cell._workspaces])
    assert ptrs[0] == ptrs[1] == ptrs[2] and len(set(ptrs[0])) == 2  # one per layer, kept


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_a_buffer_a_graph_still_holds_is_not_overwritten(name):
    """Two forwards before any backward, and a retained graph run backward again after a third
    forward: every gradient equals the step loop's."""
    torch.manual_seed(0)
    cell = getattr(cells, name)(3, 4, 2, dtype=F64)
    xs = [torch.randn(5, 2, 3, dtype=F64) for _ in range(3)]
    with cell.trace():
        want = [grads(cell, cell(x)[0]) for x in xs]
    kept = lambda: cell._workspaces[0]._kept[NAMES[name]].data_ptr()  # noqa: E731
    outs = [cell(xs[0])[0]]
    first = kept()
    outs.append(cell(xs[1])[0])  # the first graph holds its buffer: the second forward takes another
    assert kept() != first
    got = [grads(cell, out) for out in outs]
    out3 = cell(xs[2])[0]  # the first two graphs are retained: their buffers are still theirs
    got += [grads(cell, out3), grads(cell, outs[0])]
    for g, w in zip(got, [*want, want[0]], strict=True):
        for a, b in zip(g, w, strict=True):
            assert (a - b).abs().max().item() < 1e-12


def test_copies_of_a_cell_start_without_scratch():
    cell = cells.GRU(3, 4)
    cell(torch.randn(5, 2, 3))[0].sum().backward()
    assert cell._workspaces[0]._kept
    for twin in (copy.deepcopy(cell), pickle.loads(pickle.dumps(cell))):
        assert not twin._workspaces[0]._kept
        torch.testing.assert_close(twin(torch.ones(5, 2, 3))[0], cell(torch.ones(5, 2, 3))[0])


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_the_output_is_reused_only_once_the_caller_dropped_it(name):
    """The outputs (T, B, H) come from the workspace too: past 32 MB each fresh one would be a
    page fault per 4 KB page, every call. An output still held keeps its values."""
    cell = getattr(cells, name)(3, 4)
    x = torch.randn(5, 2, 3)
    first, state = cell(x)
    kept = first.clone()
    second, _ = cell(x + 1)  # the first output is held: the second is another tensor
    assert second.data_ptr() != first.data_ptr() and torch.equal(first, kept)
    ptr = second.data_ptr()
    del second, _
    third, _ = cell(x)  # the second was dropped: its memory serves the third
    assert third.data_ptr() == ptr and torch.equal(third, kept)
