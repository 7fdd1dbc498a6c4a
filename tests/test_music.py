"""The polyphonic music tasks (bench/music.py, tasks.jsb and tasks.piano_roll): the pickle
loader on small files written here, the next-frame batches, the scores against hand counts, the
chance baseline, and music21's chorales where music21 is installed."""
import math
import pickle

import numpy as np
import pytest
import torch

from bench import music, tasks
from conftest import FEW_CHORALES as FEW

# three pieces per split in Boulanger-Lewandowski's format: time steps of MIDI numbers
PIECES = {
    "train": [[(60, 64, 67), (60, 64, 67), (62, 65, 69), ()], [(48,), (52, 55)], [(60,), (62,), (64,), (65,), (67,)]],
    "valid": [[(60, 64), (62,)], [(21,), (108,), (60,)], [(67,), (65,), (64,)]],
    "test": [[(60, 64, 67), (59, 62, 67), (60, 64, 67)], [(55,)], [(60,), (60,)]],
}


def write(path, data=PIECES, protocol=2):
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


@pytest.fixture
def small(tmp_path):
    return write(tmp_path / "small.pickle")


def test_the_loader_reads_each_split_as_rolls_of_the_88_keys(small):
    rolls, digest = music.load_file(small)
    assert [len(rolls[s]) for s in music.SPLITS] == [3, 3, 3] and len(digest) == 64
    first = rolls["train"][0]
    assert first.shape == (4, 88) and first.dtype == bool
    assert np.flatnonzero(first[0]).tolist() == [60 - 21, 64 - 21, 67 - 21] and not first[3].any()
    assert rolls["valid"][1][0, 0] and rolls["valid"][1][1, 87]  # the lowest and the highest key


@pytest.mark.parametrize("data,problem", [
    ({"train": [[(60,)]], "valid": [[(60,)]]}, "does not hold the splits"),
    ({**PIECES, "test": [[(20,)]]}, "20 is not a piano key"),
    ({**PIECES, "test": [[(60.5,)]]}, "60.5 is not a piano key"),
    ({**PIECES, "test": [[]]}, "a piece without time steps"),
    (np.zeros(3), "is not a pickle of plain lists"),  # names numpy's classes: refused, nothing of it is run
])
def test_a_bad_file_is_refused_in_one_line(tmp_path, data, problem):
    path = write(tmp_path / "bad.pickle", data)
    with pytest.raises(ValueError, match=problem) as e:
        music.load_file(path)
    assert "\n" not in str(e.value) and "task.path=" in str(e.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot be read"):
        music.load_file(tmp_path / "nothing.pickle")


def test_next_frame_batches_feed_the_previous_frame_and_mask_the_padding(small):
    task = tasks.jsb(path=str(small))
    assert (task.input_size, task.output_size, task.target, task.metric, task.scale) == (88, 88, "frames", "nll", "nats")
    _, valid, test = task.splits(0, 10)
    assert test.x.shape == (3, 3, 88) and test.y.shape == (3, 3, 88) and test.mask.sum(0).tolist() == [3, 1, 2]
    rolls = music.load_file(small)[0]["test"]
    first = torch.from_numpy(rolls[0]).float()
    assert torch.equal(test.y[:, 0], first) and not test.x[0].any()  # no key before a piece starts
    assert torch.equal(test.x[1:, 0], first[:-1])  # step t reads frame t - 1
    assert not test.y[1:, 1].any() and not test.mask[1:, 1].any()  # the one-step piece: padding, masked
    assert task.steps == 5 and task.test_examples == 3


def test_training_windows_of_seq_len_steps_start_from_the_frame_before(small):
    task = tasks.jsb(seq_len=2, path=str(small))
    piece = torch.from_numpy(music.load_file(small)[0]["train"][2]).float()  # 5 steps: cut into windows of 2
    sample, _, _ = task.splits(0, 10)
    seen = set()
    for _ in range(50):
        batch = sample(16)
        assert batch.x.shape[0] <= 2 and batch.mask.sum(0).max() <= 2
        for b in range(16):
            n = int(batch.mask[:, b].sum())
            y, x = batch.y[:n, b], batch.x[:n, b]
            if n == 2 and y.sum(-1).eq(1).all():  # a window of the scale
                start = next(k for k in range(4) if torch.equal(piece[k:k + 2], y))
                assert torch.equal(x[0], piece[start - 1] if start else torch.zeros(88)) and torch.equal(x[1], y[0])
                seen.add(start)
    assert seen == {0, 1, 2, 3}  # every window of the piece is drawn


def test_frame_scores_against_hand_counts():
    y = torch.tensor([[[1.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]])  # (T=2, B=1, K=3)
    out = torch.tensor([[[2.0, -1.0, -3.0]], [[0.0, 5.0, 1.0]]])
    batch = tasks.Batch(torch.zeros(2, 1, 3), y, mask=torch.tensor([[True], [True]]))
    sig = torch.sigmoid
    nll = -(math.log(sig(torch.tensor(2.0))) + math.log(1 - sig(torch.tensor(-1.0))) + math.log(sig(torch.tensor(-3.0)))
            + math.log(0.5) + math.log(sig(torch.tensor(5.0))) + math.log(1 - sig(torch.tensor(1.0)))) / 2
    got = tasks.frame_scores(out, batch)
    assert got["nll"] == pytest.approx(nll) and got["loss"] == got["nll"]
    # on: (1,0,0), (0,1,1) against truth (1,0,1), (0,1,0): TP 2, FP 1, FN 1
    assert got["frame_accuracy"] == pytest.approx(2 / 4)
    masked = tasks.frame_scores(out, tasks.Batch(batch.x, y, mask=torch.tensor([[True], [False]])))
    assert masked["frame_accuracy"] == pytest.approx(1 / 2)  # the second step does not count


def test_nll_is_pooled_over_steps_so_a_longer_piece_weighs_more(small):
    task = tasks.jsb(path=str(small))
    _, _, test = task.splits(0, 10)
    out = torch.randn(test.y.shape, generator=torch.Generator().manual_seed(0))
    per_step = torch.nn.functional.binary_cross_entropy_with_logits(out, test.y, reduction="none").sum(-1)
    assert tasks.scores(task, out, test)["nll"] == pytest.approx((per_step * test.mask).sum().item() / 6, rel=1e-6)
    assert tasks.losses(task, out, test).shape == (3,)  # training: each piece's mean per step


def test_chance_is_the_key_frequency_predictor_and_scores_zero(small):
    task = tasks.jsb(path=str(small))
    _, valid, test = task.splits(0, 10)
    frames = torch.cat([torch.from_numpy(r).float() for r in music.load_file(small)[0]["train"]])
    p = (frames.sum(0) + 1) / (len(frames) + 2)  # 11 training frames
    assert p[60 - 21] == pytest.approx(4 / 13)
    base = torch.logit(p).expand_as(test.y)
    assert tasks.scores(task, base, test)["nll"] == pytest.approx(task.chance["nll"])
    assert tasks.score(task, {"nll": task.chance["nll"]}) == pytest.approx(0.0)
    assert tasks.score(task, {"nll": task.chance["nll"] - 1.5}) == pytest.approx(1.5)  # nats gained
    # solved: 2 nats per step below chance's NLL on validation
    on_valid = tasks.scores(task, torch.logit(p).expand_as(valid.y), valid)["nll"]
    assert task.solved == pytest.approx(on_valid - 2.0) and task.is_solved(on_valid - 2.5) and not task.is_solved(on_valid)
    assert tasks.jsb(path=str(small), solved_gain=None).solved is None


def test_the_file_names_the_data_in_the_task_version(small, tmp_path):
    other = write(tmp_path / "other.pickle", {**PIECES, "test": [[(60,)]]})
    assert tasks.jsb(path=str(small)).version != tasks.jsb(path=str(other)).version
    assert tasks.piano_roll(path=str(small)).name == "piano_roll"
    with pytest.raises(ValueError, match="task.path is not set"):
        tasks.piano_roll()
    with pytest.raises(ValueError, match="solved_gain"):
        tasks.jsb(path=str(small), solved_gain=-1)


def test_a_cell_that_reads_the_previous_frame_beats_chance(small):
    """The task is learnable through its inputs: a readout of x_t alone (a 'cell' that is the
    identity) learns, on pieces that repeat their frames, more than the key frequencies."""
    task = tasks.jsb(path=str(small))
    sample, _, test = task.splits(0, 10)
    readout = torch.nn.Linear(88, 88)
    opt = torch.optim.Adam(readout.parameters(), lr=0.05)
    for _ in range(300):
        batch = sample(32)
        loss = tasks.losses(task, readout(batch.x), batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert tasks.score(task, tasks.scores(task, readout(test.x).detach(), test)) > 0




def test_chorales_from_music21_transposed_to_c_at_one_step_per_quarter():
    pytest.importorskip("music21", reason="the music extra is not installed")
    from music21 import corpus

    name = "bach/bwv269"  # in G major, 4/4 with a pickup
    score = corpus.parse(name)
    piece = music.chorale_roll(score, name)
    assert len(piece) == math.ceil(score.highestTime)
    assert piece.sum(1).max() <= 4 and piece.sum(1).mean() > 3  # four voices
    pcs = np.bincount((np.flatnonzero(piece.any(0)) + 21) % 12, minlength=12)
    assert pcs[0] and not pcs[1] and not pcs[3]  # C major: C sounds, C# and D# never do
    rolls = music.prepare(FEW)
    assert [len(rolls[s]) for s in music.SPLITS] == [3, 1, 1]


def test_chorales_are_prepared_once_then_read_from_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("music21", reason="the music extra is not installed")
    monkeypatch.setenv("RNNBENCH_CACHE", str(tmp_path))
    real, calls = music.prepare, []
    monkeypatch.setattr(music, "prepare", lambda: calls.append(1) or real(FEW))
    first, version = music.chorales()
    again, _ = music.chorales()
    assert calls == [1] and all(np.array_equal(a, b) for s in music.SPLITS for a, b in zip(first[s], again[s]))
    (cached,) = tmp_path.glob("*.npz")
    assert version in cached.name and f"prep{music.PREPARATION}" in cached.name
    task = tasks.jsb(seq_len=30)
    assert task.name == "jsb" and version in task.version and task.test_examples == 1


def test_rnnbench_trains_on_a_piano_roll_file_and_refuses_a_bidirectional_cell(cli, small):
    code, out, err = cli("task=jsb", f"task.path={small}", "cell=gru")
    assert code == 0, err
    assert "gru on jsb" in out and "test nll" in out and "(nats)" in out
    from bench.results import load_tables
    runs = load_tables(cli.results)["runs"]
    assert runs.metric.item() == "nll" and runs.scale.item() == "nats" and runs.status.item() == "ok"
    code, _, err = cli("task=jsb", f"task.path={small}", "cell.bidirectional=true")
    assert code == 2 and "read the steps after it" in err
