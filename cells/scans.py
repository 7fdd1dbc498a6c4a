"""What the whole-layer autograd Functions (gru_scan.py, lstm_scan.py) share: the fused activation
backward kernels, the size of the backward's gradient buffer, per-step views and block slices."""
import torch

tanh_backward = torch.ops.aten.tanh_backward.grad_input  # grad * (1 - y²), written into grad_input
sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input  # grad * y (1 - y)
tanh_grad = torch.ops.aten.tanh_backward.default  # grad * (1 - y²), into a new tensor

# The backward's buffer of ∂L/∂(pre-activations), per device type: on a CPU a few steps, 4 MB (of
# 1, 2, 4, 16 MB the fastest for the GRU's loops; the LSTM's compiled loops are within 1% from 1 to
# 8 MB, and slower with all T steps); elsewhere (not named) all T steps, faster on a GPU.
CHUNK_BYTES = {"cpu": 4 << 20}


def steps_per_buffer(dout: torch.Tensor, width: int) -> int:
    """How many steps of a backward's gradient buffer, rows of `width` values per batch element,
    fit CHUNK_BYTES on dout's device (T, B, H): all T where it names none."""
    T, B = dout.shape[:2]
    chunk = CHUNK_BYTES.get(dout.device.type)
    return T if chunk is None else max(1, min(T, chunk // (B * width * dout.element_size())))


def steps(a: torch.Tensor | None):
    """The per-step views of a (T, ...) buffer, or None."""
    return None if a is None else a.unbind(0)


def block_slices(blocks: tuple[str, ...], H: int, start: int = 0) -> dict[str, slice]:
    """Each block's H rows (or columns) when `blocks` lie one after another from `start`."""
    return {b: slice(start + j * H, start + (j + 1) * H) for j, b in enumerate(blocks)}


def replayed(ctx, grad_outputs: tuple) -> tuple:
    """An acceleration's backward where autograd asks for a graph of the gradients (create_graph=
    True, e.g. a gradient penalty): the gradients of its forward's first ctx.n_inputs arguments
    (saved last, in order) through ctx.replay, the layer's step loop on the same tensors, whose
    graph autograd differentiates again; None for every other argument."""
    inputs = ctx.saved_tensors[-ctx.n_inputs:]
    with torch.enable_grad():
        outputs = ctx.replay(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    wanted = [i for i, t in enumerate(inputs) if t is not None and ctx.needs_input_grad[i]]
    used = [(o, g) for o, g in zip(outputs, grad_outputs) if g is not None]
    grads = torch.autograd.grad([o for o, _ in used], [inputs[i] for i in wanted], [g for _, g in used],
                                create_graph=True, allow_unused=True)
    result = [None] * len(ctx.needs_input_grad)
    for i, g in zip(wanted, grads):
        result[i] = g
    return tuple(result)
