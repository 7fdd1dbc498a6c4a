"""Bad values and contradictions raise ValueError, unknown flags TypeError; each message names
the flag and what is allowed."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import cells

I, H = 3, 4

CONTRADICTIONS = [
    ("LSTM", {"coupled_gates": True, "input_gate": False}, "input_gate"),
    ("LSTM", {"coupled_gates": True, "forget_gate": False}, "forget_gate"),
    ("LSTM", {"forget_bias": 1.0, "forget_gate": False}, "forget_gate"),
    ("LSTM", {"forget_bias": 1.0, "init": "chrono", "t_max": 10}, "chrono"),
    ("LSTM", {"peepholes": True, "input_gate": False, "forget_gate": False, "output_gate": False}, "peepholes"),
    ("LSTM", {"init": "chrono", "t_max": 10, "forget_gate": False}, "chrono"),
    ("GRU", {"minimal": True, "reset_gate": False}, "reset_gate"),
    ("GRU", {"minimal": True, "update_gate": False}, "update_gate"),
    ("GRU", {"minimal": True, "tied_gates": False}, "tied_gates"),
    ("GRU", {"tied_gates": False, "update_gate": False}, "update_gate"),
    ("GRU", {"init": "chrono", "t_max": 10, "update_gate": False}, "chrono"),
    ("RNN", {"init": "chrono", "t_max": 10}, "chrono"),
    ("LSTM", {"init": "chrono"}, "t_max"),
    ("GRU", {"t_max": 10}, "t_max"),
    ("GRU", {"mutation": 3}, "reset_after=False"),
    ("GRU", {"mutation": 3, "reset_after": False, "reset_gate": False}, "reset_gate"),
    ("GRU", {"mutation": 3, "reset_after": False, "minimal": True}, "minimal"),
    ("GRU", {"mutation": 1, "reset_after": False}, "input_size must equal hidden_size"),  # I = 3, H = 4
]


@pytest.mark.parametrize("name,flags,named", CONTRADICTIONS, ids=str)
def test_contradictions_are_refused_naming_the_flag(name, flags, named):
    with pytest.raises(ValueError, match=named):
        getattr(cells, name)(I, H, **flags)


@pytest.mark.parametrize("name,flags", [("LSTM", {"forget_bias": 1.0}), ("GRU", {"init": "chrono", "t_max": 9})])
def test_bias_writing_flags_need_bias(name, flags):
    with pytest.raises(ValueError, match="bias=True"):
        getattr(cells, name)(I, H, bias=False, **flags)


BAD_VALUES = [
    ("LSTM", {"input_gate": "no"}, "input_gate='no'.*True \\| False"),
    ("LSTM", {"input_activation": "relu"}, "input_activation='relu'.*'tanh' \\| 'identity'"),
    ("LSTM", {"output_activation": None}, "output_activation=None"),
    ("LSTM", {"forget_bias": "1"}, "forget_bias='1'.*a number"),
    ("GRU", {"reset_after": 1}, "reset_after=1.*True \\| False"),
    ("RNN", {"nonlinearity": "sigmoid"}, "nonlinearity='sigmoid'.*'tanh' \\| 'relu'"),
    ("GRU", {"init": "xavier"}, "init='xavier'.*'default' \\| 'orthogonal' \\| 'identity' \\| 'chrono'"),
    ("LSTM", {"init": "chrono", "t_max": 2}, "t_max"),
    ("GRU", {"mutation": 4, "reset_after": False}, "mutation=4.*None \\| 1 \\| 2 \\| 3"),
]


@pytest.mark.parametrize("name,flags,message", BAD_VALUES, ids=str)
def test_bad_flag_values_name_the_allowed_ones(name, flags, message):
    with pytest.raises(ValueError, match=message):
        getattr(cells, name)(I, H, **flags)


@pytest.mark.parametrize("name,flag", [("LSTM", "reset_after"), ("GRU", "peepholes"), ("RNN", "forget_gate"),
                                       ("GRU", "coupled_gate")])
def test_unknown_flags_raise_type_error_listing_the_flags(name, flag):
    with pytest.raises(TypeError, match=f"no flag '{flag}'; its flags are: .*init, t_max"):
        getattr(cells, name)(I, H, **{flag: True})
    with pytest.raises(TypeError, match=flag):
        cells.count_params(name.lower(), I, H, **{flag: True})


@pytest.mark.parametrize("kwargs,message", [
    ({"input_size": 0}, "input_size=0.*integer >= 1"),
    ({"hidden_size": -1}, "hidden_size=-1"),
    ({"hidden_size": 2.5}, "hidden_size=2.5"),
    ({"num_layers": 0}, "num_layers=0"),
    ({"dropout": 1.5}, "dropout=1.5.*\\[0, 1\\]"),
    ({"bias": "yes"}, "bias='yes'"),
    ({"batch_first": None}, "batch_first=None"),
    ({"bidirectional": 1}, "bidirectional=1.*True \\| False"),
    ({"proj_size": 4}, "proj_size=4 is not valid"),
])
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_bad_constructor_arguments(name, kwargs, message):
    args = {"input_size": I, "hidden_size": H, **kwargs}
    with pytest.raises(ValueError, match=message):
        getattr(cells, name)(**args)


def test_bad_inputs_and_states_are_refused_with_the_expected_shape():
    lstm, gru = cells.LSTM(I, H, 2), cells.GRU(I, H, 2)
    with pytest.raises(ValueError, match="expected input of shape"):
        gru(torch.randn(5, 2, I + 1))
    with pytest.raises(ValueError, match=r"expected hidden state of shape \(2, 2, 4\)"):
        gru(torch.randn(5, 2, I), torch.zeros(1, 2, H))
    with pytest.raises(ValueError, match=r"tuple \(h_0, c_0\)"):
        lstm(torch.randn(5, 2, I), torch.zeros(2, 2, H))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        lstm(torch.randn(5, I), (torch.zeros(2, 1, H), torch.zeros(2, 1, H)))
    packed = pack_padded_sequence(torch.randn(5, 2, I + 1), [5, 3])
    with pytest.raises(ValueError, match=r"expected packed data of shape \(N, 3\), got \(8, 4\)"):
        gru(packed)


def test_cell_errors_are_one_line():
    for name, flags, _ in CONTRADICTIONS:
        with pytest.raises(ValueError) as info:
            getattr(cells, name)(I, H, **flags)
        assert "\n" not in str(info.value)
