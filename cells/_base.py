"""The frame every cell shares: torch's constructor, parameter layout, initialisation and time loop.

A cell family (RNN, LSTM, GRU) subclasses `Recurrent` and supplies three things:
- `FLAGS`: its ablation flags, each with a default (the standard cell) and the allowed values;
- `make_layout(flags)`: which weight blocks and peepholes those flags leave, refusing contradictions;
- `_prepare(k, x)`: unit k's input projection for every step and the step function (a unit is
  one layer in one direction: k = layer · D + direction, D = 2 when bidirectional).
Everything else (argument checks, parameters, init, layers, directions, batch_first, unbatched
and packed input, dropout between layers, initial states) lives here once.
"""
import contextlib
import math
import numbers
import warnings
from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

from . import accelerations
from .workspace import Workspace

INITS = ("default", "orthogonal", "identity", "chrono")
INIT_FLAGS = {"init", "t_max", "forget_bias"}  # flags that set starting values, not equations


class Layout(NamedTuple):
    """What a set of flags leaves of a cell: the shape of its parameters and what init touches."""

    blocks: tuple[str, ...]  # weight blocks, in weight_ih / weight_hh / bias row order, H rows each
    peepholes: tuple[str, ...] = ()  # gates with a diagonal weight on c: the rows of weight_ch
    chrono: tuple[tuple[str, float], ...] = ()  # (block, sign): chrono writes sign * log U[1, t_max-1]
    # gates whose activations at t-1 feed each of them at t (Greff et al.'s FGR): weight_gg's blocks
    recurrent_gates: tuple[str, ...] = ()
    no_input: tuple[str, ...] = ()  # blocks without rows in weight_ih (MUT1's n, MUT2's r: x_t enters unweighted)
    no_hidden: tuple[str, ...] = ()  # blocks without rows in weight_hh (MUT1's z does not see h)

    def rows(self, kind: str) -> tuple[str, ...]:
        """The blocks of parameter `kind` ('weight_ih', 'weight_hh', 'bias_ih', ...), in row order."""
        left_out = {"weight_ih": self.no_input, "weight_hh": self.no_hidden}.get(kind, ())
        named = {"weight_ch": self.peepholes, "weight_gg": self.recurrent_gates}.get(kind, self.blocks)
        return tuple(b for b in named if b not in left_out)


class ArgumentTypeError(ValueError, TypeError):
    """A constructor argument of the wrong type: TypeError as torch raises it, and ValueError as
    this project did before (callers catching either still catch it)."""


class ShapeError(ValueError, RuntimeError):
    """An input or state of the wrong shape (or an empty sequence): RuntimeError as torch raises
    it, and ValueError as this project did before."""


class Flag(NamedTuple):
    default: object
    allowed: tuple  # the allowed values; a type in it admits any value of that type


def flag_error(cell: str, message: str) -> ValueError:
    return ValueError(f"{cell}: {message}")


COMMON_FLAGS = {
    "init": Flag("default", INITS),  # 'orthogonal' | 'identity' set each HxH block of weight_hh
    "t_max": Flag(None, (None, numbers.Real)),  # chrono's longest expected dependency, > 2
}


def _is_allowed(value, allowed) -> bool:
    for a in allowed:
        if isinstance(a, type):
            if isinstance(value, a) and not isinstance(value, bool):
                return True
        elif type(value) is type(a) and value == a:
            return True
    return False


def _describe(allowed) -> str:
    return " | ".join("a number" if isinstance(a, type) else repr(a) for a in allowed)


def check_size(name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name}={value!r} is not valid; allowed: an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is not valid; allowed: an integer >= {minimum}")


class Recurrent(nn.Module):
    """torch.nn.RNNBase's interface over our own time loop; see RNN, LSTM and GRU."""

    FLAGS: dict[str, Flag] = {}
    TORCH_FLAGS: tuple[str, ...] = ()  # flags torch's own module takes too (RNN's nonlinearity)
    n_states = 1  # tensors in the recurrent state: h (RNN, GRU) or h, c (LSTM)
    projects = False  # whether proj_size is taken (the LSTM's, as torch's)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None, **flags):
        super().__init__()
        name = type(self).__name__
        check_size("input_size", input_size)
        check_size("hidden_size", hidden_size)
        check_size("num_layers", num_layers)
        for arg, value in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(value, bool):
                raise ArgumentTypeError(f"{arg}={value!r} is not valid; allowed: True | False")
        if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout={dropout!r} is not valid; allowed: a number in [0, 1]")
        if dropout > 0 and num_layers == 1:  # as torch warns
            warnings.warn(f"cells.{name}: dropout={dropout} acts between layers, and num_layers=1 has none: "
                          "it changes nothing", UserWarning, stacklevel=2)
        self.flags = self.resolve_flags(flags)
        self.layout = self.make_layout(self.flags)
        self.check_init(self.flags, self.layout, bias)
        for flag, value in self.flags.items():
            setattr(self, flag, value)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        out, D = proj_size or hidden_size, self._directions  # h's width: the projection's, where there is one
        self._trace: list | None = None  # see trace()
        self._wrap_step: Callable | None = None  # see steps_through()
        # A unit is one layer in one direction: unit k = layer * D + direction (1: reversed), the
        # order of torch's h_n; its parameters are named weight_ih_l{layer}, with '_reverse' for 1.
        self._bound: tuple | None = None  # (k, unit k's parameters) inside replay()
        self._workspaces = [Workspace() for _ in range(self._units)]  # the scans' scratch, per unit
        self.paths = [accelerations.STEPS] * self._units  # each unit's path in the last forward (_run_layer)

        self.check_sizes(self.flags, input_size, hidden_size, num_layers, bidirectional, proj_size)
        gh, factory = len(self.layout.blocks) * hidden_size, {"device": device, "dtype": dtype}
        gi, gr = (len(self.layout.rows(kind)) * hidden_size for kind in ("weight_ih", "weight_hh"))
        new = lambda *shape: nn.Parameter(torch.empty(*shape, **factory))  # noqa: E731
        for k in range(self._units):
            width = input_size if k < D else D * out
            self.register_parameter(self._name("weight_ih", k), new(gi, width))
            self.register_parameter(self._name("weight_hh", k), new(gr, out))
            if bias:
                self.register_parameter(self._name("bias_ih", k), new(gh))
                self.register_parameter(self._name("bias_hh", k), new(gh))
            if proj_size:  # h = W_hr (o ⊙ tanh(c)), torch's name and place
                self.register_parameter(self._name("weight_hr", k), new(proj_size, hidden_size))
            if self.layout.peepholes:
                self.register_parameter(self._name("weight_ch", k), new(len(self.layout.peepholes), hidden_size))
            if self.layout.recurrent_gates:  # (R*H, R*H): block (g, g') maps gate g' at t-1 into gate g
                n = len(self.layout.recurrent_gates) * hidden_size
                self.register_parameter(self._name("weight_gg", k), new(n, n))
        self.reset_parameters()

    # ---- flags -------------------------------------------------------------------------------
    @classmethod
    def resolve_flags(cls, flags: dict) -> dict:
        """Defaults filled in, every name and value checked; contradictions are make_layout's."""
        for flag in flags:
            if flag not in cls.FLAGS:
                raise TypeError(f"cells.{cls.__name__} has no flag {flag!r}; "
                                f"its flags are: {', '.join(cls.FLAGS)}")
        resolved = {flag: flags.get(flag, spec.default) for flag, spec in cls.FLAGS.items()}
        for flag, value in resolved.items():
            if not _is_allowed(value, cls.FLAGS[flag].allowed):
                raise ValueError(f"cells.{cls.__name__}: {flag}={value!r} is not valid; "
                                 f"allowed: {_describe(cls.FLAGS[flag].allowed)}")
        return resolved

    @classmethod
    def make_layout(cls, flags: dict) -> Layout:
        raise NotImplementedError

    @classmethod
    def adds_raw_input(cls, flags: dict) -> bool:
        """Whether these flags add x_t itself to an H-wide sum (MUT1, MUT2): input_size must be hidden_size."""
        return False

    @classmethod
    def check_sizes(cls, flags: dict, input_size: int, hidden_size: int, num_layers: int = 1,
                    bidirectional: bool = False, proj_size: int = 0) -> None:
        """Refuse sizes these flags (and torch's rules for proj_size) cannot take."""
        check_size("proj_size", proj_size, 0)
        if proj_size and not cls.projects:
            raise ValueError(f"proj_size={proj_size} is not valid for cells.{cls.__name__}; allowed: 0 (the LSTM's "
                             "only, as torch's)")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size={proj_size} is not valid; allowed: an integer below hidden_size={hidden_size}")
        if not cls.adds_raw_input(flags):
            return
        changed = ", ".join(f"{k}={v!r}" for k, v in flags.items() if v != cls.FLAGS[k].default)
        if input_size != hidden_size:
            raise ValueError(f"cells.{cls.__name__}({changed}) adds x_t to an H-wide sum: input_size must equal "
                             f"hidden_size (got {input_size} and {hidden_size}); allowed: input_size={hidden_size} "
                             f"(in rnnbench: embed=true)")
        if bidirectional and num_layers > 1:
            raise ValueError(f"cells.{cls.__name__}({changed}) adds x_t to an H-wide sum, and a bidirectional "
                             f"layer above the first reads 2·hidden_size; allowed: num_layers=1 or bidirectional=False")

    @classmethod
    def check_init(cls, flags: dict, layout: Layout, bias: bool) -> None:
        name, init, t_max = f"cells.{cls.__name__}", flags["init"], flags["t_max"]
        if init == "chrono":
            if t_max is None or not t_max > 2:
                raise ValueError(f"{name}: init='chrono' needs t_max=, a number > 2 (got {t_max!r})")
            if not layout.chrono:
                raise ValueError(f"{name}: init='chrono' needs a gate that keeps the state, "
                                 f"which these flags remove; allowed inits: 'default' | 'orthogonal' | 'identity'")
            if not bias:
                raise ValueError(f"{name}: init='chrono' writes gate biases and needs bias=True")
        elif t_max is not None:
            raise ValueError(f"{name}: t_max={t_max!r} is only used by init='chrono' (init={init!r})")
        if not bias and flags.get("forget_bias") is not None:
            raise ValueError(f"{name}: forget_bias sets a bias and needs bias=True")

    def extra_repr(self) -> str:
        """As torch's: the sizes, then only what differs from the defaults (the flags last)."""
        shown = [f"{self.input_size}, {self.hidden_size}"]
        for arg, value, default in (("proj_size", self.proj_size, 0), ("num_layers", self.num_layers, 1),
                                    ("bias", self.bias, True), ("batch_first", self.batch_first, False),
                                    ("dropout", self.dropout, 0.0), ("bidirectional", self.bidirectional, False)):
            if value != default:
                shown.append(f"{arg}={value}")
        return ", ".join(shown + [f"{k}={v!r}" for k, v in self.flags.items() if v != self.FLAGS[k].default])

    @property
    def torch_equivalent(self) -> bool:
        """Whether torch's own module computes this cell: no flag changes an equation."""
        changed = {k for k, v in self.flags.items() if v != self.FLAGS[k].default}
        return not changed - INIT_FLAGS - set(self.TORCH_FLAGS)

    def to_torch(self) -> nn.RNNBase | None:
        """torch's own module computing the same function, with a copy of these weights; None
        where a flag changes an equation that torch's module does not have."""
        if not self.torch_equivalent:
            return None
        p = next(self.parameters())
        twin = getattr(nn, type(self).__name__)(
            self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
            batch_first=self.batch_first, dropout=self.dropout, bidirectional=self.bidirectional,
            device=p.device, dtype=p.dtype, **({"proj_size": self.proj_size} if self.proj_size else {}),
            **{k: self.flags[k] for k in self.TORCH_FLAGS})
        twin.load_state_dict(self.state_dict())
        return twin.train(self.training)

    # ---- parameters --------------------------------------------------------------------------
    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _units(self) -> int:
        """Layers times directions."""
        return self.num_layers * self._directions

    def _name(self, kind: str, k: int) -> str:
        """Unit k's parameter of `kind` ('weight_ih', ...) by torch's name."""
        D = self._directions
        return f"{kind}_l{k // D}" + ("_reverse" if k % D else "")

    def _param(self, kind: str, k: int):
        return getattr(self, self._name(kind, k), None)

    def _params(self, k: int):
        """Unit k's (weight_ih, weight_hh, bias_ih, bias_hh, weight_ch); absent ones are None.
        Inside replay(), the tensors it was given."""
        if self._bound is not None and self._bound[0] == k:
            return self._bound[1]
        return tuple(self._param(kind, k) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ch"))

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        return [[p for p in self._params(k) if p is not None] for k in range(self._units)]

    def flatten_parameters(self) -> None:
        """torch's cuDNN weight packing; our parameters are used as they are, so nothing to do."""

    def _block(self, tensor: torch.Tensor, block: str, kind: str = "bias_ih") -> torch.Tensor:
        """The H rows of `tensor`, a parameter of `kind`, that belong to `block`."""
        j, h = self.layout.rows(kind).index(block), self.hidden_size
        return tensor[j * h:(j + 1) * h]

    @torch.no_grad()
    def set_gate_bias(self, k: int, block: str, value) -> None:
        """Make the effective bias of `block` in unit k exactly `value`: bias_ih = value, bias_hh = 0."""
        _, _, b_ih, b_hh, _ = self._params(k)
        self._block(b_ih, block).copy_(torch.as_tensor(value, dtype=b_ih.dtype))
        self._block(b_hh, block).zero_()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torch's U(-1/sqrt(H), 1/sqrt(H)) for every parameter, then what `init` changes."""
        bound, h = 1.0 / math.sqrt(self.hidden_size), self.hidden_size
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        for k in range(self._units):
            _, w_hh, b_ih, b_hh, _ = self._params(k)
            for block in w_hh.split(h):  # each (H, H)
                if self.init == "orthogonal":
                    nn.init.orthogonal_(block)
                elif self.init == "identity":
                    nn.init.eye_(block)  # (H, H), or (H, proj_size) with a projection
            if self.init == "identity" and b_ih is not None:
                b_ih.zero_()
                b_hh.zero_()
            if self.init == "chrono":  # Tallec & Ollivier 2018: keep-gate bias log U[1, t_max - 1]
                u = torch.empty(h, dtype=torch.float64).uniform_(1.0, self.t_max - 1).log()
                for block, sign in self.layout.chrono:
                    self.set_gate_bias(k, block, sign * u)

    # ---- forward -----------------------------------------------------------------------------
    def _project(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Unit k's input projection of every step at once, with both biases: (T, B, G*H). Cells
        whose hidden bias sits inside a gate (the GRU's b_hn) make their own."""
        w_ih, _, b_ih, b_hh, _ = self._params(k)
        return F.linear(x, w_ih, None if b_ih is None else b_ih + b_hh)

    def _prepare(self, k: int, x: torch.Tensor) -> tuple[Callable, torch.Tensor]:
        """Unit k on x (T, B, I): (step, xw) with xw (T, B, G*H) and
        step(xw_t, state) -> (state, gates), gates a dict of the step's gate activations (B, H);
        state's h is (B, proj_size) with a projection, else (B, H)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def trace(self):
        """Record every step of the forward passes inside: yields a list that fills with one
        dict per unit (layer and direction; a reverse unit's steps run from the last input back),
        {"states": [state_t, ...], "gates": [{gate: (B, H)}, ...]}, holding the graph's own tensors
        (so `retain_grad()` on a state gives ∂L/∂h_t after backward). Padded input only."""
        self._trace = []
        try:
            yield self._trace
        finally:
            self._trace = None

    @contextlib.contextmanager
    def steps_through(self, wrap: Callable[[Callable], Callable]):
        """Run the step loop inside, each layer's step function replaced by wrap(step): the
        'compile_step' backend passes torch.compile, which then compiles one step and reuses it for
        all T, where compiling the whole forward would unroll the T steps."""
        self._wrap_step = wrap
        try:
            yield
        finally:
            self._wrap_step = None

    def _initial_state(self, hx, batch: int, like: torch.Tensor, unbatched: bool) -> tuple[torch.Tensor, ...]:
        """hx as a tuple of n_states tensors of shape (L·D, B, H) (h: (L·D, B, proj_size) with a
        projection); zeros like `like` when hx is None."""
        shapes = [(self._units, batch, self.hidden_size) for _ in range(self.n_states)]
        shapes[0] = (self._units, batch, self.proj_size or self.hidden_size)
        if hx is None:
            return tuple(like.new_zeros(shape) for shape in shapes)
        states = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
        if len(states) != self.n_states or not all(isinstance(s, torch.Tensor) for s in states):
            what = "a tuple (h_0, c_0)" if self.n_states > 1 else "a tensor h_0"
            raise ShapeError(f"cells.{type(self).__name__}: hx must be {what}")
        for s, shape in zip(states, shapes):
            want = shape[::2] if unbatched else shape
            if tuple(s.shape) != want:
                raise ShapeError(f"cells.{type(self).__name__}: expected hidden state of shape "
                                 f"{want}, got {tuple(s.shape)}")
        return tuple(s.unsqueeze(1) for s in states) if unbatched else states

    def forward(self, input: torch.Tensor, hx=None):
        """input (T, B, I), (B, T, I) with batch_first, or unbatched (T, I); hx (L·D, B, H) or
        (L·D, H), a tuple (h_0, c_0) for the LSTM, D = 2 when bidirectional (h's width proj_size
        with a projection), or a PackedSequence. Returns (output, h_n) like torch: output
        (T, B, D·H), both directions' outputs side by side (D·proj_size with a projection; a
        PackedSequence for packed input)."""
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        if packed:  # data (N, I): the steps' active rows one after another, batch_sizes[t] at step t
            x, batch_sizes, sorted_indices, unsorted_indices = input
            if x.dim() != 2 or x.size(-1) != self.input_size:
                raise ShapeError(f"cells.{name}: expected packed data of shape (N, {self.input_size}), "
                                 f"got {tuple(x.shape)}")
            batch, unbatched = int(batch_sizes[0]), False
        else:
            if input.dim() not in (2, 3) or input.size(-1) != self.input_size:
                raise ShapeError(f"cells.{name}: expected input of shape (T, B, {self.input_size}), "
                                 f"(B, T, {self.input_size}) with batch_first or (T, {self.input_size}), "
                                 f"got {tuple(input.shape)}")
            unbatched = input.dim() == 2
            if unbatched:
                x = input.unsqueeze(1)
            else:
                x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
            if x.shape[0] == 0:
                raise ShapeError(f"cells.{name}: expected a sequence of at least one step, got {tuple(input.shape)}")
            batch = x.shape[1]
        weight = self.weight_hh_l0
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):  # as torch checks
            raise ValueError(f"cells.{name}: input dtype {x.dtype} does not match the weights' {weight.dtype}; "
                             f"allowed: input.to({weight.dtype}), or the module .to({x.dtype})")
        state = self._initial_state(hx, batch, x, unbatched)
        if packed and sorted_indices is not None:  # hx comes in the caller's order, the data by length
            state = tuple(s.index_select(1, sorted_indices) for s in state)
        finals, D = [], self._directions
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            outs = []
            for d in range(D):  # the reverse direction reads the steps backwards and writes them back in order
                k = layer * D + d
                start = tuple(s[k] for s in state)
                if packed:
                    out, last = self._packed_unit(k, x, batch_sizes, bool(d), start)
                else:
                    out, last = self._run_layer(k, x.flip(0) if d else x, start)
                    out = out.flip(0) if d else out
                outs.append(out)
                finals.append(last)
            x = torch.cat(outs, -1) if D > 1 else outs[0]
        final = tuple(torch.stack(per_unit) for per_unit in zip(*finals))  # each (L·D, B, H)
        if packed:
            if unsorted_indices is not None:
                final = tuple(s.index_select(1, unsorted_indices) for s in final)
            x = PackedSequence(x, batch_sizes, sorted_indices, unsorted_indices)
        elif unbatched:
            x, final = x.squeeze(1), tuple(s.squeeze(1) for s in final)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, (final if self.n_states > 1 else final[0])

    def _packed_unit(self, k: int, data: torch.Tensor, batch_sizes: torch.Tensor, reverse: bool,
                     state: tuple) -> tuple[torch.Tensor, tuple]:
        """Unit k on packed data (N, I), sequences sorted by length: at step t the first
        batch_sizes[t] sequences are active, the others keep their state (done, or in reverse not
        yet begun), so each ends with its own last step's state. The step loop runs it; no
        acceleration is written for a batch that changes from step to step."""
        if self._trace is not None:
            raise ValueError(f"cells.{type(self).__name__}.trace() records padded input only; allowed: "
                             "a padded batch (torch.nn.utils.rnn.pad_packed_sequence)")
        self.paths[k] = accelerations.STEPS
        step, xw = self._prepare(k, data.unsqueeze(1))
        if self._wrap_step is not None:
            step = self._wrap_step(step)
        sizes = batch_sizes.tolist()
        steps = xw.squeeze(1).split(sizes)  # each (batch_sizes[t], G*H)
        outs = [None] * len(sizes)
        for t in (reversed(range(len(sizes))) if reverse else range(len(sizes))):
            n = sizes[t]
            new, _ = step(steps[t], tuple(s[:n] for s in state))
            outs[t] = new[0]
            state = tuple(torch.cat([a, s[n:]]) if n < s.shape[0] else a for a, s in zip(new, state))
        return torch.cat(outs), state

    def _run_layer(self, k: int, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """Unit k (a layer in one direction): x (T, B, I) -> outputs (T, B, H) and the last state,
        by the first registered acceleration that serves the call (cells/accelerations.py), else
        the step loop; the path taken is recorded in self.paths[k]."""
        fast = accelerations.choose(self, x)
        self.paths[k] = fast.name if fast is not None else accelerations.STEPS
        if fast is not None:
            return fast.run(self, k, x, state)
        return self._step_loop(k, x, state)

    def replay(self, k: int, x: torch.Tensor, params: tuple, state: tuple) -> tuple[torch.Tensor, tuple]:
        """Unit k's step loop on the given parameters (as _params orders them) rather than the
        module's: an acceleration's backward asked for a graph (create_graph=True) replays the
        layer so that autograd can differentiate its gradients again."""
        # _params binds the five tensors it returns: a cell with more (FGR's weight_gg, a projection's
        # weight_hr) would read those from the module; no acceleration covers them
        assert not self.layout.recurrent_gates and not self.proj_size, "replay binds _params' five tensors only"
        bound, self._bound = self._bound, (k, params)
        try:
            return self._step_loop(k, x, state)
        finally:
            self._bound = bound

    def _step_loop(self, k: int, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        step, xw = self._prepare(k, x)
        if self._wrap_step is not None:
            step = self._wrap_step(step)
        outputs, record = [], self._trace
        if record is not None:
            record.append({"states": [], "gates": []})
        for xw_t in xw.unbind(0):  # unbind, not xw[t]: its backward is one stack, not T scatters
            state, gates = step(xw_t, state)
            outputs.append(state[0])
            if record is not None:
                record[-1]["states"].append(state)
                record[-1]["gates"].append(gates)
        return torch.stack(outputs), state


def gate_mul(gate, value: torch.Tensor) -> torch.Tensor:
    """gate ⊙ value, where a removed gate (None) is the constant 1."""
    return value if gate is None else gate * value
