"""Every task: shapes, pure seeding, fixed validation and test sets per seed, its structure, and
its chance baseline measured on the baseline predictor against the stated value."""
import functools
import math
import tempfile
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bench import tasks
from test_music import write

MUSIC = {"jsb", "piano_roll"}  # read from a file of pieces here (test_music tests music21's chorales)
FIXED_SETS = {"counting", "mnist1d", *MUSIC}  # a test set the same for every seed

CONF = Path(__file__).resolve().parents[1] / "conf" / "task"
TASK_NAMES = sorted(p.stem for p in CONF.glob("*.yaml"))


def make(name, **overrides):
    return instantiate(OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml"), overrides))


@functools.cache
def pieces() -> str:
    return str(write(Path(tempfile.mkdtemp()) / "pieces.pickle"))


def short(name):
    return make(name, **({} if name in ("digits", "mnist1d") else {"seq_len": 30}), **({"path": pieces()} if name in MUSIC else {}))


def test_every_task_of_the_mission_has_a_yaml():
    assert set(TASK_NAMES) >= {"adding", "copy", "selective_copy", "temporal_order", "digits", "counting"}


@pytest.mark.parametrize("name", TASK_NAMES)
def test_shapes_and_types(name):
    task = short(name)
    sample, valid, test = task.splits(0, 50)
    for batch in (sample(8), valid, test):
        T, B, I = batch.x.shape
        assert I == task.input_size and batch.x.dtype == torch.float32
        if task.target == "regression":
            assert batch.y.shape == (B,) and batch.y.is_floating_point()
        elif task.target == "last":
            assert batch.y.shape == (B,) and batch.y.max() < task.output_size
        elif task.target == "frames":
            assert batch.y.shape == (T, B, task.output_size) and batch.mask.shape == (T, B)
        else:
            assert batch.y.shape == batch.score.shape == (T, B) and batch.y.max() < task.output_size
    assert sample(8).x.shape[1] == 8


@pytest.mark.parametrize("name", TASK_NAMES)
def test_same_seed_same_data_and_fixed_sets_independent_of_training_draws(name):
    task = short(name)
    s1, valid1, test1 = task.splits(3, 40)
    a = [s1(16) for _ in range(3)]
    s2, valid2, test2 = task.splits(3, 40)
    b = [s2(16) for _ in range(3)]
    for u, v in zip(a + [valid1, test1], b + [valid2, test2]):
        assert torch.equal(u.x, v.x) and torch.equal(u.y, v.y)
    *_, test_other_seed = task.splits(4, 40)
    if name not in FIXED_SETS:  # counting's sets are every longer n; music's split is by piece
        assert not torch.equal(test1.x, test_other_seed.x)
        assert not torch.equal(valid1.x, test1.x)  # validation is a stream of its own
    assert not torch.equal(a[0].x, a[1].x)  # the training stream moves on


def test_adding_structure_and_chance():
    task = make("adding", seq_len=50)
    *_, test = task.splits(0, 20000)
    marks = test.x[..., 1]
    assert torch.equal(marks[:25].sum(0), torch.ones(20000)) and torch.equal(marks[25:].sum(0), torch.ones(20000))
    assert torch.allclose((test.x[..., 0] * marks).sum(0), test.y)
    mse = tasks.scores(task, torch.ones(20000), test)["mse"]  # predict 1, the mean
    se = ((test.y - 1) ** 2).std().item() / math.sqrt(20000)
    assert abs(mse - task.chance["mse"]) < 4 * se and task.chance["mse"] == pytest.approx(1 / 6)
    assert task.is_solved(0.009) and not task.is_solved(0.011)


def test_adding_of_variable_lengths_structure_and_chance():
    task = make("adding_varlen", seq_len=40, spread=0.5)
    *_, test = task.splits(0, 20000)
    lengths, marks = test.lengths, test.x[..., 1]
    assert task.varlen and task.steps == test.x.shape[0] == 60
    assert lengths.min() == 40 and lengths.max() == 60 and len(lengths.unique()) == 21  # uniform from T to 1.5 T
    t = torch.arange(60).unsqueeze(1)
    assert (test.x[t >= lengths] == 0).all()  # zeros past each example's end
    first, second = (marks * (t < lengths // 2)).sum(0), (marks * (t >= lengths // 2) * (t < lengths)).sum(0)
    assert torch.equal(first, torch.ones(20000)) and torch.equal(second, torch.ones(20000))  # one in each half
    assert torch.allclose((test.x[..., 0] * marks).sum(0), test.y)
    mse = tasks.scores(task, torch.ones(20000), test)["mse"]  # predict 1, the mean
    se = ((test.y - 1) ** 2).std().item() / math.sqrt(20000)
    assert abs(mse - task.chance["mse"]) < 4 * se and task.chance["mse"] == pytest.approx(1 / 6)
    # the markers reach every step of each half: the first at 0, the second at each example's last step
    assert marks[0].sum() > 0 and (marks[lengths - 1, torch.arange(20000)] == 1).any()


@pytest.mark.parametrize("name", ["copy", "selective_copy"])
def test_copy_structure_and_chance(name):
    T, n = 40, 4000
    task = make(name, seq_len=T)
    *_, test = task.splits(0, n)
    symbols_in = test.x.argmax(-1)  # (T + 20, n)
    assert test.x.shape[0] == T + 20
    assert (symbols_in[T + 9] == tasks.DELIMITER).all()
    recalled = test.y[T + 10:]
    shown = symbols_in[:T + 9]
    for col in range(0, n, 397):  # the recall targets are the shown symbols, in order
        assert torch.equal(shown[:, col][shown[:, col] != tasks.BLANK], recalled[:, col])
    if name == "copy":
        assert torch.equal(shown[:10], recalled)
    assert (test.y[:T + 10] == tasks.BLANK).all() and test.score[T + 10:].all() and not test.score[:T + 10].any()
    # the baseline: blank where blank is right, uniform over the 8 symbols at the 10 recall steps
    logits = torch.full((T + 20, n, 9), -1e9)
    logits[:T + 10, :, tasks.BLANK] = 0
    logits[T + 10:, :, 1:] = 0
    got = tasks.scores(task, logits, test)
    assert got["loss"] == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-6)
    assert got["loss"] == pytest.approx(task.chance["loss"], rel=1e-6)
    assert abs(got["accuracy"] - task.chance["accuracy"]) < 4 * math.sqrt(1 / 8 * 7 / 8 / (10 * n))
    perfect = torch.nn.functional.one_hot(test.y, 9).float()
    assert tasks.scores(task, perfect, test)["accuracy"] == 1.0 and task.is_solved(0.99)


def test_temporal_order_structure_and_chance():
    T, n = 100, 8000
    task = make("temporal_order", seq_len=T)
    *_, test = task.splits(1, n)
    s = test.x.argmax(-1)
    sym = tasks.TO_SYMBOLS
    assert (s[0] == sym.index("B")).all() and (s[-1] == sym.index("E")).all()
    relevant = (s == sym.index("X")) | (s == sym.index("Y"))
    assert (relevant.sum(0) == 2).all()
    assert not relevant[:10].any() and not relevant[21:50].any() and not relevant[61:].any()
    first, second = (torch.where(relevant[w], s[w], 0).max(0).values for w in (slice(10, 21), slice(50, 61)))
    assert torch.equal(test.y, 2 * (first == sym.index("Y")).long() + (second == sym.index("Y")).long())
    acc = tasks.scores(task, torch.zeros(n, 4), test)["accuracy"]  # always class 0
    assert abs(acc - task.chance["accuracy"]) < 4 * math.sqrt(0.25 * 0.75 / n)


@pytest.mark.parametrize("permute", [False, True])
def test_digits_structure_and_chance(permute):
    task = make("digits", permute=permute)
    sample, valid, test = task.splits(0, 0)
    assert test.x.shape == valid.x.shape == (64, 359, 1) and 0 <= test.x.min() and test.x.max() <= 1
    # three disjoint splits of the 1,797 images: no image of validation or test is trained on
    images = lambda b: {tuple(col.tolist()) for col in b.x[:, :, 0].T}  # noqa: E731
    trained = images(sample(5000))
    assert not images(test) & trained and not images(valid) & trained and not images(valid) & images(test)
    acc = max(tasks.scores(task, torch.eye(10)[c].expand(359, 10), test)["accuracy"] for c in range(10))
    assert abs(acc - task.chance["accuracy"]) < 0.04  # the majority class of near-equal classes
    *_, test_other = task.splits(1, 0)
    assert not torch.equal(test.y, test_other.y)  # each seed holds out its own split
    plain = make("digits", permute=False).splits(0, 0).test
    assert torch.equal(plain.y, test.y)
    assert torch.equal(plain.x.sort(0).values, test.x.sort(0).values)  # same pixels, maybe reordered
    assert torch.equal(plain.x, test.x) != permute


@pytest.mark.parametrize("shuffle", [False, True])
def test_mnist1d_structure_and_chance(shuffle):
    import random

    import numpy as np
    random.seed(7)
    np.random.seed(7)
    expected = random.random(), np.random.rand()
    random.seed(7)
    np.random.seed(7)
    tasks._mnist1d_arrays.cache_clear()  # generated here, not read from this process's cache
    task = make("mnist1d", shuffle=shuffle)
    assert (random.random(), np.random.rand()) == expected  # the package seeds them: left as they were
    sample, valid, test = task.splits(0, 0)
    assert test.x.shape == (40, 1000, 1) and valid.x.shape == (40, 800, 1) and task.test_examples == 1000
    seqs = lambda b: {tuple(col.tolist()) for col in b.x[:, :, 0].T}  # noqa: E731
    trained = seqs(sample(8000))
    assert not seqs(valid) & trained and not seqs(test) & trained  # validation and test are never trained on
    acc = max(tasks.scores(task, torch.eye(10)[c].expand(1000, 10), test)["accuracy"] for c in range(10))
    assert abs(acc - task.chance["accuracy"]) < 0.02  # the majority class of near-equal classes
    _, valid_other, test_other = task.splits(1, 0)
    assert torch.equal(test.x, test_other.x) and not torch.equal(valid.y, valid_other.y)
    assert torch.equal(test.x, make("mnist1d", shuffle=shuffle).splits(0, 0).test.x)  # the same data every time
    plain = make("mnist1d", shuffle=False).splits(0, 0).test
    assert torch.equal(plain.y, test.y) and torch.equal(plain.x, test.x) != shuffle
    assert "mnist1d-" in task.version


def test_counting_structure_and_chance():
    task = make("counting", seq_len=21)  # trained on n <= 10, validated on 11..20, tested on 11..40
    sample, valid, test = task.splits(0, 40)
    train = sample(500)
    ns = lambda b: ((b.x.argmax(-1) == 1) & (b.x.sum(-1) > 0)).sum(0)  # noqa: E731
    assert ns(train).min() >= 1 and ns(train).max() == 10 and train.x.shape[0] <= 21
    assert set(ns(valid).tolist()) == set(range(11, 21)) and set(ns(test).tolist()) == set(range(11, 41))
    assert torch.equal(ns(test), test.group) and test.x.shape[0] == task.steps == 81
    # a perfect counter scores 1; the bigram rule "b follows b" (it cannot count) scores 0
    perfect = torch.nn.functional.one_hot(test.y, 3).float()
    assert tasks.scores(task, perfect, test)["seq_accuracy"] == 1.0
    inputs = test.x.argmax(-1)
    bigram = torch.nn.functional.one_hot(torch.where(inputs == 2, 1, 0), 3).float()
    assert tasks.scores(task, bigram, test)["seq_accuracy"] == task.chance["seq_accuracy"] == 0.0
    assert tasks.scores(task, bigram, test)["longest_right"] == task.chance["longest_right"] == 10
    assert tasks.scores(task, perfect, test)["longest_right"] == 40
    assert task.solved is None and not task.is_solved(1.0)
    # the score: n counted right beyond training, in training ranges: 0 for the bigram rule, 3 perfect
    assert tasks.score(task, tasks.scores(task, bigram, test)) == 0.0
    assert tasks.score(task, tasks.scores(task, perfect, test)) == tasks.best_score(task) == 3.0


@pytest.mark.parametrize("name", [n for n in TASK_NAMES if n not in FIXED_SETS])
def test_log_loss_score_is_zero_at_the_chance_loss_and_one_per_decade_below(name):
    task = short(name)
    assert task.scale == "log_loss"
    chance = task.chance["loss"]
    assert tasks.score(task, {"loss": chance}) == pytest.approx(0.0)
    assert tasks.score(task, {"loss": chance / 100}) == pytest.approx(2.0)
    assert tasks.score(task, {"loss": 10 * chance}) == pytest.approx(-1.0)
    # losses below the floor cannot be told apart in float32: they score as the floor
    assert tasks.score(task, {"loss": 0.0}) == tasks.score(task, {"loss": tasks.LOSS_FLOOR / 10}) \
        == tasks.best_score(task) == pytest.approx(math.log10(chance / tasks.LOSS_FLOOR))
    assert tasks.score(task, {}) is None  # a run without test metrics (it diverged or failed)


@pytest.mark.parametrize("name", ["temporal_order", "digits"])
def test_the_chance_loss_of_classification_is_that_of_uniform_logits(name):
    task = short(name)
    _, _, test = task.splits(0, 200)
    uniform = torch.zeros(test.y.shape[0], task.output_size)
    assert tasks.scores(task, uniform, test)["loss"] == pytest.approx(task.chance["loss"], rel=1e-6)


def test_longest_right_counts_from_the_smallest_group_up_to_the_first_wrong_one():
    group = torch.tensor([11, 11, 12, 13, 13, 14])
    right = torch.tensor([True, True, True, True, False, True])
    assert tasks.longest_right(right, group) == 12  # 13 has a wrong example; 14 right does not count
    assert tasks.longest_right(torch.ones(6, dtype=torch.bool), group) == 14
    assert tasks.longest_right(~torch.ones(6, dtype=torch.bool), group) == 10


@pytest.mark.parametrize("name,seq_len,message", [("adding", 1, ">= 2"), ("copy", 0, ">= 1"),
                                                   ("temporal_order", 5, ">= 10"), ("counting", 2, ">= 3"),
                                                   ("digits", 100, "64"), ("adding", 2.5, "integer")])
def test_bad_lengths_are_refused(name, seq_len, message):
    with pytest.raises(Exception, match=message):
        make(name, seq_len=seq_len)
