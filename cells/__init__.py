"""The cell zoo: drop-in torch.nn.RNN / LSTM / GRU whose ablations are constructor flags."""
from ._base import ArgumentTypeError, Recurrent, ShapeError
from .gru import GRU
from .lstm import LSTM
from .params import CELLS, count_params, match_hidden_size
from .rnn import RNN

__all__ = ["RNN", "LSTM", "GRU", "CELLS", "Recurrent", "count_params", "match_hidden_size", "ArgumentTypeError",
           "ShapeError"]
