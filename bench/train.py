"""Training one run: a cell and a linear readout, Adam with gradient clipping, an evaluation every
`eval_every` steps on the task's fixed validation set (which decides "solved" and an early stop,
if asked), and the test set scored once, at the end."""
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from tqdm import tqdm

from cells import accelerations

from . import backends, measure, probes, tasks


class Model(nn.Module):
    """A recurrent cell (T, B, I) -> (T, B, H) and a linear readout shaped for the task; with
    `embed`, a linear layer (T, B, task input) -> (T, B, I) before the cell (or that layer itself)."""

    def __init__(self, cell: nn.Module, task: tasks.Task, readout: nn.Linear | None = None,
                 embed: bool | nn.Linear | None = None):
        super().__init__()
        self.cell, self.target = cell, task.target
        width = (cell.proj_size or cell.hidden_size) * (2 if cell.bidirectional else 1)  # the output's
        self.readout = readout if readout is not None else nn.Linear(width, task.output_size)
        self.embed = nn.Linear(task.input_size, cell.input_size) if embed is True else embed or None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x (T, B, I); lengths (B,): each example's steps, for a task of variable lengths (not
        'sequence'), whose padded batch the cell reads packed, each example up to its own end."""
        x = x if self.embed is None else self.embed(x)
        if lengths is not None:
            _, state = self.cell(pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False))
            h = state[0] if isinstance(state, tuple) else state  # (L·D, B, H): the last layer's are the last D
            last = torch.cat(list(h[-2:] if self.cell.bidirectional else h[-1:]), -1)
        elif self.target in tasks.PER_STEP:
            return self.readout(self.cell(x)[0])  # (T, B, C)
        else:
            out, _ = self.cell(x)  # (T, B, D·H)
            H = self.cell.proj_size or self.cell.hidden_size  # bidirectional: each direction's state after all steps
            last = torch.cat([out[-1, :, :H], out[0, :, H:]], -1) if self.cell.bidirectional else out[-1]
        y = self.readout(last)  # (B, C)
        return y.squeeze(-1) if self.target == "regression" else y


@dataclass
class Outcome:
    status: str = "ok"  # 'ok' | 'diverged' ('failed' is the caller's: an exception)
    error: str | None = None
    steps: int = 0  # optimizer steps taken
    steps_to_solve: int | None = None
    seconds_to_solve: float | None = None  # training time (evaluations excluded) until solved
    train_seconds: float = 0.0
    train_tokens: int = 0  # input steps x examples trained on
    # the first step alone: it pays what a backend does once per shape (trace, compile, capture)
    first_step_seconds: float | None = None
    first_step_tokens: int = 0
    final: dict = field(default_factory=dict)  # test metrics, scored once at the end
    valid: dict = field(default_factory=dict)  # validation metrics of the last evaluation
    metrics: list = field(default_factory=list)
    profiles: list = field(default_factory=list)
    throughput: list = field(default_factory=list)  # rows of a throughput run (measure.throughput)
    path: str | None = None  # the path our cell took in training (accelerations.ran), or in forward + backward

    @property
    def tokens_per_s(self) -> float | None:
        """Training tokens per second after the first step (None with one step): the steady rate,
        which a 2-minute compile in the first step would otherwise swamp."""
        seconds = self.train_seconds - (self.first_step_seconds or 0.0)
        return (self.train_tokens - self.first_step_tokens) / seconds if self.steps > 1 and seconds > 0 else None


def to_device(batch: tasks.Batch, device, dtype) -> tasks.Batch:
    move = lambda t: None if t is None else t.to(device, dtype if t.is_floating_point() else None)  # noqa: E731
    return tasks.Batch(*(move(t) for t in dataclasses.astuple(batch)))


def head(batch: tasks.Batch, n: int) -> tasks.Batch:
    """The first n examples (the batch axis is 1 for (T, B) tensors, 0 for (B,))."""
    cut = lambda t: None if t is None else (t[:n] if t.dim() == 1 else t[:, :n])  # noqa: E731
    return tasks.Batch(*(cut(t) for t in dataclasses.astuple(batch)))


def train(model: Model, ours: nn.Module, task: tasks.Task, cfg, seed: int, backend: backends.Backend,
          progress: bool = True, log: Callable[[list[dict]], None] | None = None) -> Outcome:
    """cfg is the `train` config. `ours` is our cell, which the probes run with model.cell's
    weights (model.cell is ours itself, a wrapper sharing its parameters, or torch's module).
    `log` gets the metric rows of each evaluation as it ends (a live view: bench.tracking)."""
    device, dtype = backend.device, backend.torch_dtype
    sample, valid, test = task.splits(seed, cfg.n_test)
    valid = to_device(valid, device, dtype)
    probe_batch = head(valid, cfg.probe_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    clip = math.inf if cfg.clip is None else cfg.clip
    result = Outcome()

    def probe_model() -> Model:
        """Our cell with the trained weights and the readout, in eval mode (model is left there
        too; the training step puts it back)."""
        model.eval()
        backends.sync_weights(model.cell, ours)
        return Model(ours, task, model.readout, model.embed)

    def score(batch: tasks.Batch) -> dict:
        model.eval()
        with torch.no_grad(), backend.autocast():
            return tasks.scores(task, model(batch.x, batch.lengths).float(), batch)

    def evaluate(step: int, extra_rows: list) -> dict:
        """Validation metrics and the probes (on validation examples) at `step`."""
        start = len(result.metrics)
        scores = score(valid)
        probed = probe_model()
        with torch.no_grad(), backend.autocast():
            result.metrics += probes.inside(step, probed, probe_batch)
        result.metrics += [probes.row(step, "valid", k, v) for k, v in scores.items()] + extra_rows
        result.valid = scores
        if log:
            log(result.metrics[start:])
        return scores

    def profile(step: int) -> None:  # in float64, whatever the run's dtype and autocast
        result.profiles += probes.gradient_profile(step, probe_model(), task, probe_batch)

    evaluate(0, [])
    profile(0)
    bar = tqdm(total=cfg.steps, disable=not progress or None, leave=False, desc=f"{task.name}")
    for step in range(1, cfg.steps + 1):
        model.train()
        batch = to_device(sample(cfg.batch_size), device, dtype)
        t0 = time.perf_counter()
        with backend.autocast():
            if step == 1:  # which path the cell takes: the dispatch says, once
                out, result.path = accelerations.ran(ours, lambda: model(batch.x, batch.lengths), backend.impl)
            else:
                out = model(batch.x, batch.lengths)
        loss = tasks.losses(task, out.float(), batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        evaluating = step % cfg.eval_every == 0 or step == cfg.steps
        blocks = probes.block_grad_norms(step, backends.weights_of(model.cell, ours), ours.layout,
                                         ours.num_layers, ours.hidden_size, model.readout) if evaluating else []
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), clip)  # the norm before clipping
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            result.status = "diverged"
            result.error = f"step {step}: loss {loss.item()}, gradient norm {grad_norm.item()}"
            break
        opt.step()
        measure.synchronize(device)  # the step's time, not its launch
        seconds = time.perf_counter() - t0
        tokens = int(batch.lengths.sum()) if batch.lengths is not None else batch.x.shape[0] * batch.x.shape[1]
        if step == 1:
            result.first_step_seconds, result.first_step_tokens = seconds, tokens
        result.train_seconds += seconds
        result.steps, result.train_tokens = step, result.train_tokens + tokens
        bar.update()
        if not evaluating:
            continue
        train_rows = [probes.row(step, "train", k, v) for k, v in tasks.scores(task, out.detach().float(), batch).items()]
        train_rows.append(probes.row(step, "train", "grad_norm", grad_norm))
        scores = evaluate(step, train_rows + blocks)
        bar.set_postfix({task.metric: f"{scores[task.metric]:.4g}"})
        solved_now = result.steps_to_solve is None and task.is_solved(scores[task.metric])
        if solved_now:
            result.steps_to_solve, result.seconds_to_solve = step, result.train_seconds
        stop = step == cfg.steps or (solved_now and cfg.stop_when_solved)
        if stop or (cfg.profile_every and step % cfg.profile_every == 0):
            profile(step)
        if stop:
            break
    bar.close()
    if result.status == "ok":  # test, once: nothing above has read it
        result.final = score(to_device(test, device, dtype))
        tested = [probes.row(result.steps, "test", k, v) for k, v in result.final.items()]
        result.metrics += tested
        if log:
            log(tested)
    return result
