"""Long-dependency tasks (docs/tasks-and-results.md). Each is a factory `name(seq_len, ...) -> Task`
named by a YAML in conf/task/; its data come from pure, seeded generators: the same seed gives
the same training stream and the same fixed validation and test sets, whatever else the process
did. Validation decides stopping, "solved" and selection; test is scored once, at the end.

Model outputs, by `Task.target`:
    'regression'  one number from the last step, (B,)           loss MSE
    'last'        class logits from the last step, (B, C)       loss cross-entropy
    'sequence'    class logits at every step, (T, B, C)         loss cross-entropy over the steps;
                  accuracy over the `score` positions, seq_accuracy when all of them are right
    'frames'      a logit per key at every step, (T, B, K)      loss: the negative log-likelihood of
                  the next frame under independent Bernoulli outputs (nats per step), frame_accuracy
Runs are compared on each task's score (`Task.scale`, SCALES): decades of loss below chance, nats
per step below chance for music, or for counting how far beyond its training range a cell counts
right; accuracy is reported beside it.
"""
import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch.nn import functional as F

VERSION = "2"  # of every generator here; recorded with each run. Bump it when one changes.
# 2: a validation set of its own stream; counting tests n up to 4 n_max


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # (T, B, I) float
    y: torch.Tensor  # (B,) float for regression, (B,) long for 'last', (T, B) long for 'sequence',
    #                  (T, B, K) float 0/1 for 'frames'
    score: torch.Tensor | None = None  # (T, B) bool: where a 'sequence' task's accuracy is measured
    mask: torch.Tensor | None = None  # (T, B) bool: the steps that count in the loss (None: all)
    group: torch.Tensor | None = None  # (B,) long: an example's size (counting's n), for longest_right
    lengths: torch.Tensor | None = None  # (B,) long: each example's steps, padded with zeros to T (None: all T)


@dataclass(frozen=True)
class Scale:
    """How a run's metrics become its score: a number that is 0 at the task's chance baseline,
    grows with what the run learned, and has no ceiling inside what a run reaches in practice
    (accuracy stops at 1 and ties every cell that solves). Runs are compared on it; differences
    smaller than `margin` count as comparable, and a run learned its task when its score exceeds it."""
    name: str
    unit: str  # what one unit of the score means, for the report
    margin: float


LOSS_FLOOR = 1e-6  # losses below it score as it: float32 cannot tell them apart reliably
SCALES = {
    # decades of loss below chance: MSE for regression, cross-entropy for classification
    "log_loss": Scale("log_loss", "decades of test loss below chance, log10(chance loss / loss)", math.log10(2)),
    # counting: how far the cell counts beyond its training range, in training ranges
    "longest_right": Scale("longest_right", "n counted right beyond training, in units of n_max", 0.1),
    # music: the test set's likelihood per step gained over chance, as a log ratio; the margin is a
    # likelihood ratio of e^0.1, about 1.1, per step. (A ratio of losses would crowd the cells:
    # chance is about 1.5 times a trained cell's loss here, not decades above it.)
    "nats": Scale("nats", "nats per time step of test negative log-likelihood below chance", 0.1),
}
LOWER_IS_BETTER = ("mse", "nll")  # metrics; every other one is better higher
PER_STEP = ("sequence", "frames")  # targets with an output at every step, read from the steps before it


def score(task: "Task", metrics: dict) -> float | None:
    """The task's score (Task.scale) of its metrics (tasks.scores), None without them."""
    if task.scale == "longest_right":
        value, chance = metrics.get("longest_right"), task.chance["longest_right"]
        return None if value is None else (value - chance) / chance
    if task.scale == "nats":
        return None if metrics.get("nll") is None else task.chance["nll"] - metrics["nll"]
    loss = metrics.get("loss")
    return None if loss is None else math.log10(task.chance["loss"] / max(loss, LOSS_FLOOR))


def best_score(task: "Task") -> float:
    """The highest score the task's scale can give: the loss at LOSS_FLOOR; every n tested right."""
    if task.scale == "longest_right":
        return score(task, {"longest_right": task.test_n_max})
    return score(task, {"loss": 0.0, "nll": 0.0})


class Splits(NamedTuple):
    train: Callable[[int], "Batch"]  # n -> n fresh training examples, a stream
    valid: "Batch"  # fixed: stopping, "solved", selection
    test: "Batch"  # fixed: scored once, at the end of a run


@dataclass(frozen=True)
class Task:
    name: str
    seq_len: int  # the length parameter T (copy's input has T + 20 steps)
    input_size: int
    output_size: int  # 1 for regression, else the number of classes
    target: str  # 'regression' | 'last' | 'sequence' | 'frames'
    metric: str  # the primary test metric: 'mse' | 'accuracy' | 'seq_accuracy' | 'nll'
    chance: dict  # metric -> value of the baseline predictor (see each factory)
    solved: float | None  # threshold on `metric` (<= for LOWER_IS_BETTER, >= otherwise); None: never "solved"
    splits: Callable[[int, int], Splits]  # (seed, n_eval: examples in validation and in test) -> Splits
    steps: int | None = None  # input steps of the longest example, training or test (None: seq_len)
    test_examples: int | None = None  # the fixed sets' size (None: n_eval, as splits is asked)
    scale: str = "log_loss"  # the score runs are compared on: a key of SCALES
    test_n_max: int | None = None  # longest_right: the largest n the test set holds
    varlen: bool = False  # examples of their own lengths (Batch.lengths): the model packs them
    version: str = VERSION

    def is_solved(self, value: float) -> bool:
        if self.solved is None:
            return False
        return value <= self.solved if self.metric in LOWER_IS_BETTER else value >= self.solved


def generators(seed: int) -> tuple[torch.Generator, torch.Generator, torch.Generator]:
    """Independent train, validation and test streams for a seed."""
    return tuple(torch.Generator().manual_seed(3 * seed + k) for k in range(3))


def synthetic(make: Callable[[int, torch.Generator], Batch]):
    """splits() of a task whose examples are all drawn fresh from make(n, generator)."""
    def splits(seed: int, n_eval: int) -> Splits:
        train, valid, test = generators(seed)
        return Splits(lambda n: make(n, train), make(n_eval, valid), make(n_eval, test))
    return splits


def check_length(task: str, seq_len, minimum: int) -> None:
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < minimum:
        raise ValueError(f"task {task}: seq_len={seq_len!r} is not valid; allowed: an integer >= {minimum}")


def one_hot(symbols: torch.Tensor, n: int) -> torch.Tensor:
    return F.one_hot(symbols, n).float()


# ---- losses and scores, shared by every task ------------------------------------------------
def losses(task: Task, out: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per-example loss (B,); a sequence example's is the mean over its `mask`ed steps."""
    if task.target == "regression":
        return (out - batch.y) ** 2
    if task.target == "last":
        return F.cross_entropy(out, batch.y, reduction="none")
    if task.target == "frames":
        nll, mask = frame_nll(out, batch.y), batch.mask.to(out.dtype)  # (T, B)
        return (nll * mask).sum(0) / mask.sum(0)
    ce = F.cross_entropy(out.flatten(0, 1), batch.y.flatten(), reduction="none").view_as(batch.y)  # (T, B)
    mask = torch.ones_like(ce) if batch.mask is None else batch.mask.to(ce.dtype)
    return (ce * mask).sum(0) / mask.sum(0)


@torch.no_grad()
def scores(task: Task, out: torch.Tensor, batch: Batch) -> dict[str, float]:
    """The test metrics of a batch: loss, and mse or accuracy (and seq_accuracy), or for 'frames'
    nll and frame_accuracy."""
    if task.target == "frames":
        return frame_scores(out, batch)
    result = {"loss": losses(task, out, batch).mean().item()}
    if task.target == "regression":
        result["mse"] = result["loss"]
    elif task.target == "last":
        result["accuracy"] = (out.argmax(-1) == batch.y).float().mean().item()
    else:
        right = (out.argmax(-1) == batch.y) | ~batch.score  # (T, B), True off the scored steps
        result["accuracy"] = ((out.argmax(-1) == batch.y) & batch.score).sum().item() / batch.score.sum().item()
        result["seq_accuracy"] = right.all(0).float().mean().item()
        if batch.group is not None:
            result["longest_right"] = longest_right(right.all(0), batch.group)
    return result


def frame_nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log p(frame) (T, B) of frames y (T, B, K) under independent Bernoulli keys with logits out."""
    return F.binary_cross_entropy_with_logits(out, y, reduction="none").sum(-1)


def frame_scores(out: torch.Tensor, batch: Batch) -> dict[str, float]:
    """nll: the negative log-likelihood of the batch's frames per time step, pooled over every
    real step of every piece (a longer piece weighs more, as Boulanger-Lewandowski et al. 2012
    average), in nats; loss, the same; frame_accuracy: Bay et al. (2009)'s TP / (TP + FP + FN)
    over those steps, a key predicted on where its probability exceeds 1/2."""
    nll = (frame_nll(out, batch.y) * batch.mask).sum() / batch.mask.sum()
    mask = batch.mask.unsqueeze(-1)  # (T, B, 1)
    on, truth = (out > 0) & mask, (batch.y > 0.5) & mask
    tp, fp, fn = (on & truth).sum().item(), (on & ~truth).sum().item(), (~on & truth).sum().item()
    return {"loss": nll.item(), "nll": nll.item(), "frame_accuracy": tp / max(tp + fp + fn, 1)}


def longest_right(right: torch.Tensor, group: torch.Tensor) -> float:
    """The largest group value g such that every example of every group from the smallest up to
    g is right (B,) bool, (B,) long; the smallest group minus 1 when an example of it is wrong."""
    sizes = torch.unique(group)  # sorted
    wrong = torch.stack([~right[group == g].all() for g in sizes])
    first_wrong = int(wrong.float().argmax()) if wrong.any() else len(sizes)
    return float(sizes[0] - 1 if first_wrong == 0 else sizes[first_wrong - 1])


# ---- the tasks ---------------------------------------------------------------------------------
def adding(seq_len: int = 100) -> Task:
    """Hochreiter & Schmidhuber's adding problem: x_t = (u_t, m_t), u ~ U[0, 1], one marker in
    each half; target the sum of the two marked u. Chance: predicting 1, the mean, gives the
    variance of a sum of two U[0, 1], MSE 2/12 = 1/6. Solved: MSE <= 0.01."""
    check_length("adding", seq_len, 2)

    def make(n, g):
        u = torch.rand(seq_len, n, generator=g)
        first = torch.randint(0, seq_len // 2, (n,), generator=g)
        second = torch.randint(seq_len // 2, seq_len, (n,), generator=g)
        return _marked(u, first, second)

    return Task("adding", seq_len, 2, 1, "regression", "mse", {"mse": 1 / 6, "loss": 1 / 6}, 0.01, synthetic(make))


def adding_varlen(seq_len: int = 100, spread: float = 0.1) -> Task:
    """The adding problem with each sequence of its own length, drawn uniformly from T to
    T + spread·T, as Hochreiter & Schmidhuber (1997, experiment 4) drew theirs (spread 0.1); the
    markers sit in each half of the example's own steps, as in `adding` (theirs: the first in the
    first ten steps), and the steps after its end are zeros (padding). Chance and solved as for
    adding. The model reads each example up to its own end (Batch.lengths, packed)."""
    check_length("adding_varlen", seq_len, 2)
    if not isinstance(spread, (int, float)) or isinstance(spread, bool) or not 0 <= spread <= 10:
        raise ValueError(f"task adding_varlen: spread={spread!r} is not valid; allowed: a number from 0 to 10")
    longest = seq_len + int(spread * seq_len)

    def make(n, g):
        lengths = torch.randint(seq_len, longest + 1, (n,), generator=g)
        u = torch.rand(longest, n, generator=g) * (torch.arange(longest).unsqueeze(1) < lengths)  # zeros past the end
        half = lengths // 2
        first = (torch.rand(n, generator=g) * half).long()  # uniform in [0, L // 2)
        second = half + (torch.rand(n, generator=g) * (lengths - half)).long()  # uniform in [L // 2, L)
        return dataclasses.replace(_marked(u, first, second), lengths=lengths)

    return Task("adding_varlen", seq_len, 2, 1, "regression", "mse", {"mse": 1 / 6, "loss": 1 / 6}, 0.01,
                synthetic(make), steps=longest, varlen=True)


def _marked(u: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> Batch:
    """Adding examples: numbers u (T, B), a marker at steps first and second (B,) of each."""
    marks = torch.zeros_like(u)
    cols = torch.arange(u.shape[1])
    marks[first, cols] = marks[second, cols] = 1.0
    return Batch(torch.stack([u, marks], -1), u[first, cols] + u[second, cols])


N_SYMBOLS, N_RECALL = 8, 10  # copy tasks: 10 symbols drawn from 8; 0 is blank, 9 the delimiter
BLANK, DELIMITER = 0, N_SYMBOLS + 1


def _copy_task(name: str, seq_len: int, scatter: bool) -> Task:
    """Copy and selective copy: T + 20 steps; the 10 symbols sit at steps 0-9 (copy) or at
    random steps among the first T + 9 (selective); the delimiter is step T + 9 and the symbols
    are to be recalled, in order, over the last 10 steps; every other target is blank.
    Chance: blank wherever it is right and uniform over the 8 symbols at the 10 recall steps:
    cross-entropy 10 ln 8 / (T + 20), recall accuracy 1/8. Solved: recall accuracy >= 0.99."""
    check_length(name, seq_len, 1)
    total, recall = seq_len + N_RECALL * 2, slice(seq_len + N_RECALL, seq_len + 2 * N_RECALL)

    def make(n, g):
        symbols = torch.randint(1, N_SYMBOLS + 1, (N_RECALL, n), generator=g)
        if scatter:  # 10 distinct steps among the first T + 9, in order
            keys = torch.rand(seq_len + N_RECALL - 1, n, generator=g)
            steps = keys.topk(N_RECALL, dim=0).indices.sort(0).values
        else:
            steps = torch.arange(N_RECALL).unsqueeze(1).expand(-1, n)
        inputs = torch.full((total, n), BLANK, dtype=torch.long)
        inputs.scatter_(0, steps, symbols)
        inputs[seq_len + N_RECALL - 1] = DELIMITER
        targets = torch.full((total, n), BLANK, dtype=torch.long)
        targets[recall] = symbols
        score = torch.zeros(total, n, dtype=torch.bool)
        score[recall] = True
        return Batch(one_hot(inputs, N_SYMBOLS + 2), targets, score)

    chance = {"loss": N_RECALL * math.log(N_SYMBOLS) / total, "accuracy": 1 / N_SYMBOLS}
    return Task(name, seq_len, N_SYMBOLS + 2, N_SYMBOLS + 1, "sequence", "accuracy", chance, 0.99,
                synthetic(make), steps=total)


def copy(seq_len: int = 100) -> Task:
    return _copy_task("copy", seq_len, scatter=False)


def selective_copy(seq_len: int = 100) -> Task:
    return _copy_task("selective_copy", seq_len, scatter=True)


copy.__doc__ = selective_copy.__doc__ = _copy_task.__doc__

TO_SYMBOLS = "abcdXYBE"  # temporal order's alphabet: distractors a-d, relevant X and Y, begin, end


def temporal_order(seq_len: int = 100) -> Task:
    """Hochreiter & Schmidhuber 1997, task 6a, with positions scaled to T: B at step 0, E at
    T - 1, X or Y at a step in [0.1T, 0.2T] and another in [0.5T, 0.6T], distractors a-d
    elsewhere; the class (XX, XY, YX, YY) is read at the last step. Chance: 4 balanced classes,
    accuracy 0.25, cross-entropy ln 4. Solved: accuracy >= 0.99."""
    check_length("temporal_order", seq_len, 10)
    windows = [(round(0.1 * seq_len), round(0.2 * seq_len)), (round(0.5 * seq_len), round(0.6 * seq_len))]

    def make(n, g):
        seq = torch.randint(0, 4, (seq_len, n), generator=g)  # distractors a-d
        seq[0], seq[-1] = TO_SYMBOLS.index("B"), TO_SYMBOLS.index("E")
        label = torch.zeros(n, dtype=torch.long)
        for lo, hi in windows:
            step = torch.randint(lo, hi + 1, (n,), generator=g)
            is_y = torch.randint(0, 2, (n,), generator=g)
            seq[step, torch.arange(n)] = TO_SYMBOLS.index("X") + is_y
            label = 2 * label + is_y
        return Batch(one_hot(seq, len(TO_SYMBOLS)), label)

    chance = {"accuracy": 0.25, "loss": math.log(4)}
    return Task("temporal_order", seq_len, len(TO_SYMBOLS), 4, "last", "accuracy", chance, 0.99,
                synthetic(make))


def digits(seq_len: int = 64, permute: bool = False, test_fraction: float = 0.2) -> Task:
    """scikit-learn's 8x8 digits (1797 images, shipped inside the package) read one pixel per
    step (T = 64), scaled to [0, 1], optionally under one fixed permutation of the pixels (the
    same for every seed). Chance: 10 classes of near-equal size, accuracy 0.1 and cross-entropy
    ln 10. No solved threshold: reported as it is. Each seed holds out its own validation and test
    splits, `test_fraction` of the images each."""
    if seq_len != 64:
        raise ValueError(f"task digits: seq_len={seq_len!r} is not valid; allowed: 64 (8x8 pixels, one per step)")
    if not isinstance(permute, bool):
        raise ValueError(f"task digits: permute={permute!r} is not valid; allowed: true | false")
    from sklearn.datasets import load_digits  # imported here: only this task needs it

    data = load_digits()
    pixels = torch.tensor(data.data, dtype=torch.float32) / 16.0  # (1797, 64)
    labels = torch.tensor(data.target, dtype=torch.long)
    if permute:
        pixels = pixels[:, torch.randperm(64, generator=torch.Generator().manual_seed(0))]

    n_held = round(test_fraction * len(labels))
    chance = {"accuracy": 0.1, "loss": math.log(10)}
    return Task("digits", 64, 1, 10, "last", "accuracy", chance, None, held_out(pixels, labels, n_held),
                test_examples=n_held)


def held_out(x: torch.Tensor, y: torch.Tensor, n_valid: int, test: Batch | None = None):
    """splits() of a data set of sequences x (N, T), one value per step, and classes y (N,): each
    seed holds out its own n_valid of them for validation (and as many for test, unless the data
    set brings its own `test`) and draws training examples from the rest, with replacement. The
    held-out sets are whole: n_eval does not apply."""
    def as_batch(rows):
        return Batch(x[rows].T.unsqueeze(-1), y[rows])  # x (T, B, 1)

    def splits(seed: int, n_eval: int) -> Splits:
        train_g, _, held_g = generators(seed)
        order = torch.randperm(len(y), generator=held_g)
        if test is None:
            test_rows, order = order[:n_valid], order[n_valid:]
        valid_rows, train_rows = order[:n_valid], order[n_valid:]
        sample = lambda n: as_batch(train_rows[torch.randint(0, len(train_rows), (n,), generator=train_g)])  # noqa: E731
        return Splits(sample, as_batch(valid_rows), as_batch(test_rows) if test is None else test)

    return splits


COUNT_SYMBOLS = "Sab" + "E"  # start, a, b, end; targets are the next symbol: a, b or E


def counting(seq_len: int = 21) -> Task:
    """a^n b^n next-symbol prediction (Weiss et al. 2018). Input S a^n b^n, target the next
    symbol at every step (a^n b^n E); the input has 2n + 1 steps. Trained on n up to
    n_max = (T - 1) // 2; validated on n in n_max+1 .. 2 n_max and tested on every n in
    n_max+1 .. 4 n_max, beyond the training range. Scored on the steps after each b, whose next
    symbol is determined (b, ..., b, E): that needs a count. seq_accuracy: the whole b-run and
    the E right; longest_right: the largest n up to which every n is right (n_max when n_max + 1
    is not), which runs are compared on (SCALES). Chance: a model that cannot count, the bigram
    rule "b follows b", gets seq_accuracy 0 (it never predicts the E) and longest_right n_max.
    No solved threshold: reported."""
    check_length("counting", seq_len, 3)
    n_max = (seq_len - 1) // 2

    def make(ns: torch.Tensor) -> Batch:
        length, batch = 2 * int(ns.max()) + 1, len(ns)
        t = torch.arange(length).unsqueeze(1)  # (T, 1)
        n = ns.unsqueeze(0)  # (1, B)
        inputs = torch.where(t == 0, 0, torch.where(t <= n, 1, 2))  # S a^n b^n, b past the end too
        targets = torch.where(t < n, 0, torch.where(t < 2 * n, 1, 2))  # a^n b^n E as classes a, b, E
        real = t <= 2 * n  # steps inside the example; padding after it is masked out
        x = one_hot(inputs, len(COUNT_SYMBOLS)) * real.unsqueeze(-1)
        score = (inputs == 2) & real  # after each b the next symbol is determined
        return Batch(x, targets, score, real.expand(length, batch), ns)

    def splits(seed: int, n_eval: int) -> Splits:
        train_g, _, _ = generators(seed)
        beyond = lambda k: make(n_max + 1 + torch.arange(max(n_eval, k)) % k)  # noqa: E731  n_max+1 .. n_max+k, equally often
        return Splits(lambda n: make(torch.randint(1, n_max + 1, (n,), generator=train_g)), beyond(n_max),
                      beyond(3 * n_max))

    return Task("counting", seq_len, len(COUNT_SYMBOLS), 3, "sequence", "seq_accuracy",
                {"seq_accuracy": 0.0, "longest_right": float(n_max)}, None, splits,
                steps=2 * (4 * n_max) + 1, scale="longest_right", test_n_max=4 * n_max)


def jsb(seq_len: int = 200, path: str | None = None, solved_gain: float | None = 2.0) -> Task:
    """Bach's chorales as piano rolls (bench/music.py): music21's, or the JSB Chorales pickle at
    `path`. Next-step prediction of the set of sounding keys: at step t the input is frame t - 1
    (no key at t = 0) and the output a logit per key for frame t, so every frame of a piece is
    predicted. Scored by the negative log-likelihood per step (nats) and frame accuracy. Training
    examples are windows of up to `seq_len` steps of a chorale drawn at random (whole chorales
    where they are shorter); validation and test score whole pieces. Chance: every key on with its
    frequency in the training frames, whatever came before. Solved: a validation NLL `solved_gain`
    nats per step below chance's on validation (2: the next frame e^2, about 7.4 times as likely as
    chance makes it; None: never solved), which the steps to solve are counted against."""
    from . import music  # imported here: only these tasks need it
    if path is None:
        rolls, source = music.chorales()
        return _polyphonic("jsb", seq_len, rolls, f"{VERSION}-music21-{source}-prep{music.PREPARATION}", solved_gain)
    rolls, digest = music.load_file(path)
    return _polyphonic("jsb", seq_len, rolls, f"{VERSION}-file-{digest[:16]}", solved_gain)


def piano_roll(seq_len: int = 200, path: str | None = None, solved_gain: float | None = 2.0) -> Task:
    """Any data set in JSB Chorales' pickle format (Nottingham, MuseData, Piano-midi), at `path`;
    everything else as jsb."""
    if path is None:
        raise ValueError("task piano_roll: task.path is not set; allowed: a pickle of {'train', 'valid', 'test'} "
                         "piano rolls (Boulanger-Lewandowski's format)")
    from . import music
    rolls, digest = music.load_file(path)
    return _polyphonic("piano_roll", seq_len, rolls, f"{VERSION}-file-{digest[:16]}", solved_gain)


def _polyphonic(name: str, seq_len: int, rolls: dict, version: str, solved_gain: float | None) -> Task:
    """A next-frame task over piano rolls {'train', 'valid', 'test'}: lists of (L, K) bool arrays."""
    check_length(name, seq_len, 2)
    if solved_gain is not None and (isinstance(solved_gain, bool) or not isinstance(solved_gain, (int, float))
                                    or not 0 < solved_gain < math.inf):
        raise ValueError(f"task {name}: solved_gain={solved_gain!r} is not valid; allowed: a positive number "
                         "(nats per step below chance) or null (never solved)")
    pieces = {s: [torch.from_numpy(r).float() for r in rolls[s]] for s in rolls}
    keys = pieces["train"][0].shape[1]

    def batch(windows: list[torch.Tensor], firsts: list[bool]) -> Batch:
        """Windows (L_i, K) of pieces, padded to the longest; firsts: whether each starts its
        piece (its first input is then no key; else the window's first frame only feeds step 1)."""
        frames = [w if first else w[1:] for w, first in zip(windows, firsts)]
        length = max(len(f) for f in frames)
        x, y = torch.zeros(length, len(frames), keys), torch.zeros(length, len(frames), keys)
        mask = torch.zeros(length, len(frames), dtype=torch.bool)
        for b, (w, f, first) in enumerate(zip(windows, frames, firsts)):
            y[:len(f), b], mask[:len(f), b] = f, True
            x[1:len(f), b] = f[:-1]
            if not first:
                x[0, b] = w[0]  # the frame before the window
        return Batch(x, y, mask=mask)

    def whole(split: str) -> Batch:
        return batch(pieces[split], [True] * len(pieces[split]))

    train = pieces["train"]

    def sample(n: int, g: torch.Generator) -> Batch:
        chosen = torch.randint(0, len(train), (n,), generator=g).tolist()
        windows, firsts = [], []
        for i in chosen:
            piece = train[i]
            start = int(torch.randint(0, max(len(piece) - seq_len, 0) + 1, (), generator=g))
            windows.append(piece[max(start - 1, 0):start + seq_len])  # with the frame before, where there is one
            firsts.append(start == 0)
        return batch(windows, firsts)

    def splits(seed: int, n_eval: int) -> Splits:
        train_g, _, _ = generators(seed)
        return Splits(lambda n: sample(n, train_g), whole("valid"), whole("test"))  # whole pieces: n_eval does not apply

    chance, on_valid = (chance_scores(train, whole(s)) for s in ("test", "valid"))
    solved = None if solved_gain is None else on_valid["nll"] - solved_gain
    longest = max(min(seq_len, max(len(r) for r in train)), *(len(r) for s in ("valid", "test") for r in pieces[s]))
    return Task(name, seq_len, keys, keys, "frames", "nll", chance, solved, splits, steps=longest,
                test_examples=len(pieces["test"]), scale="nats", version=version)


def chance_scores(train: list[torch.Tensor], batch: Batch) -> dict[str, float]:
    """frame_scores of the predictor that turns each key on with its frequency in the training
    frames (add-one smoothed: a key never played there is not impossible), whatever came before."""
    frames = torch.cat(train)
    p = (frames.sum(0) + 1) / (len(frames) + 2)
    return frame_scores(torch.logit(p).expand_as(batch.y), batch)


def mnist1d(seq_len: int = 40, shuffle: bool = False, valid_fraction: float = 0.2) -> Task:
    """MNIST-1D (Greydanus 2020; the mnist1d package, Apache-2.0, generates it: nothing
    downloads): 10 one-dimensional digit templates, padded, translated, sheared,
    scaled and noised into 40 numbers, read one per step; the class is read at the last step. The
    package's defaults and seed: 4,000 training and 1,000 test sequences, the same on every
    machine; `shuffle=true` is its fixed permutation of the 40 steps, where order no longer helps.
    Each seed holds out its own validation split, `valid_fraction` of the training sequences; the
    test set is the package's, the same for every seed. Chance: 10 classes of near-equal size,
    accuracy 0.1 and cross-entropy ln 10. No solved threshold: reported."""
    if seq_len != 40:
        raise ValueError(f"task mnist1d: seq_len={seq_len!r} is not valid; allowed: 40 (the package's sequence length)")
    if not isinstance(shuffle, bool):
        raise ValueError(f"task mnist1d: shuffle={shuffle!r} is not valid; allowed: true | false")
    try:
        import mnist1d  # noqa: F401
    except ImportError:
        raise ValueError("task mnist1d needs the mnist1d package; allowed: pip install mnist1d") from None
    import importlib.metadata

    x, y, x_test, y_test = _mnist1d_arrays(shuffle)
    test = Batch(x_test.T.unsqueeze(-1), y_test)
    chance = {"accuracy": 0.1, "loss": math.log(10)}
    return Task("mnist1d", 40, 1, 10, "last", "accuracy", chance, None,
                held_out(x, y, round(valid_fraction * len(y)), test), test_examples=len(test.y),
                version=f"{VERSION}-mnist1d-{importlib.metadata.version('mnist1d')}")


@functools.cache
def _mnist1d_arrays(shuffle: bool) -> tuple[torch.Tensor, ...]:
    """The package's data set: x (4000, 40), y (4000,), x_test (1000, 40), y_test (1000,).
    Generated once per process (a sweep's check builds every job's task, and each job its own),
    with Python's and numpy's global generators put back as they were: the package seeds both."""
    import random

    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.shuffle_seq = shuffle
    states = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    return (torch.tensor(data["x"], dtype=torch.float32), torch.tensor(data["y"], dtype=torch.long),
            torch.tensor(data["x_test"], dtype=torch.float32), torch.tensor(data["y_test"], dtype=torch.long))
