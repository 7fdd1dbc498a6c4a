"""The vanilla (Elman) RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
import torch

from ._base import COMMON_FLAGS, Flag, Layout, Recurrent

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


class RNN(Recurrent):
    """Drop-in for torch.nn.RNN (the seed writes σ for act; tanh is the standard).

    Flags:
        nonlinearity='tanh'  # 'tanh' | 'relu'; 'relu' with init='identity' is the IRNN (Le et al. 2015)
        init='default'       # 'default' | 'orthogonal' | 'identity' (W_hh = I, biases 0); chrono needs a gate
    """

    FLAGS = {"nonlinearity": Flag("tanh", tuple(ACTIVATIONS)), **COMMON_FLAGS}
    TORCH_FLAGS = ("nonlinearity",)

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None, **flags):
        # nonlinearity sits fourth, as in torch.nn.RNN's positional order
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, flags.pop("proj_size", 0), device, dtype,
                         nonlinearity=nonlinearity, **flags)

    @classmethod
    def make_layout(cls, flags: dict) -> Layout:
        return Layout(blocks=("h",))

    def _prepare(self, k, x):
        xw = self._project(k, x)  # (T, B, H)
        w_hh_t, act = self._params(k)[1].t(), ACTIVATIONS[self.nonlinearity]

        def step(xw_t, state):
            return (act(torch.addmm(xw_t, state[0], w_hh_t)),), {}

        return step, xw
