"""Polyphonic music as piano rolls, for the `jsb` and `piano_roll` tasks (docs/tasks-and-results.md).

A piece is a piano roll: (L, 88) bool, one row per time step, a column per piano key (MIDI 21-108)
that sounds at that step. Pieces come from

- music21's corpus of Bach's chorales (Riemenschneider's 371 harmonisations, which ship inside
  the music21 package): each transposed to C major or C minor and sampled once per quarter note,
  as Boulanger-Lewandowski et al. (2012) made JSB Chorales from the same chorales; split by
  chorale into training, validation and test, 60/20/20, the same split for every seed. Parsing
  is slow (docs/tasks-and-results.md), so the prepared rolls are cached on first use
  (`cache_dir()`), keyed by music21's version and PREPARATION;
- or a file in Boulanger-Lewandowski's format: a pickle of {'train', 'valid', 'test'}, each a
  list of pieces, a piece a list of time steps, a step the MIDI numbers (21-108) that sound.
"""
import hashlib
import io
import math
import os
import pickle
from pathlib import Path

import numpy as np

from . import results

KEYS, LOWEST = 88, 21  # the piano's keys: MIDI 21 (A0) to 108 (C8)
SPLITS = ("train", "valid", "test")
PREPARATION = "1"  # of the chorales' rolls made here; bump it when prepare() changes
FRACTIONS = (0.6, 0.2)  # training and validation shares of the chorales; test has the rest


def cache_dir() -> Path:
    """$RNNBENCH_CACHE, else $XDG_CACHE_HOME/rnnbench, else ~/.cache/rnnbench."""
    if os.environ.get("RNNBENCH_CACHE"):
        return Path(os.environ["RNNBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnbench"


def roll(steps: list, name: str) -> np.ndarray:
    """One piece's time steps (each an iterable of MIDI numbers) as an (L, 88) bool roll."""
    out = np.zeros((len(steps), KEYS), dtype=bool)
    for t, notes in enumerate(steps):
        for note in notes:
            if not (isinstance(note, (int, np.integer)) and LOWEST <= note < LOWEST + KEYS):
                raise ValueError(f"{name}, step {t}: {note!r} is not a piano key; allowed: MIDI numbers 21-108")
            out[t, note - LOWEST] = True
    return out


class _OnlyPlainData(pickle.Unpickler):
    """Unpickles lists, tuples, dicts, numbers and strings, nothing that names a class or a
    function: a pickle that does would run code of the file's choosing."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it names {module}.{name}; allowed: lists of MIDI numbers only")


def load_file(path) -> tuple[dict[str, list[np.ndarray]], str]:
    """The pieces of a file in Boulanger-Lewandowski's format, per split, and the file's SHA-256
    (the data's identity, recorded with each run). ValueError names what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"task.path={path} cannot be read ({e.strerror or e}); allowed: a pickle of "
                         f"{{'train', 'valid', 'test'}} piano rolls (Boulanger-Lewandowski's format)") from None
    try:
        pieces = _OnlyPlainData(io.BytesIO(data), encoding="latin1").load()  # the originals are Python 2 pickles
    except Exception as e:  # noqa: BLE001: any unreadable file is the same user error
        raise ValueError(f"task.path={path} is not a pickle of plain lists ({e}); allowed: a pickle of "
                         f"{{'train', 'valid', 'test'}} piano rolls (Boulanger-Lewandowski's format)") from None
    if not isinstance(pieces, dict) or any(not isinstance(pieces.get(s), (list, tuple)) or not pieces[s] for s in SPLITS):
        raise ValueError(f"task.path={path} does not hold the splits; allowed: a dict with non-empty lists "
                         f"'train', 'valid' and 'test' of pieces")
    rolls = {s: [roll(list(p), f"task.path={path}: {s} piece {i}") for i, p in enumerate(pieces[s])] for s in SPLITS}
    if any(len(r) == 0 for s in SPLITS for r in rolls[s]):
        raise ValueError(f"task.path={path} holds a piece without time steps; allowed: pieces of one step or more")
    return rolls, hashlib.sha256(data).hexdigest()


def chorales() -> tuple[dict[str, list[np.ndarray]], str]:
    """Bach's chorales from music21, per split, and music21's version. Read from the cache where
    it holds them, else prepared (slow: docs/tasks-and-results.md) and cached."""
    try:
        import music21
    except ImportError:
        raise ValueError("task=jsb needs the music21 package (Bach's chorales ship inside it); allowed: "
                         "pip install -e '.[music]', or task.path= a JSB Chorales pickle") from None
    path = cached(music21.__version__)
    if not path.exists():
        store(path, prepare())
    with np.load(path) as stored:
        rolls = {s: [stored[k] for k in sorted(stored.files) if k.startswith(f"{s}_")] for s in SPLITS}
    return rolls, music21.__version__


def cached(version: str) -> Path:
    """The cache file of the chorales as music21 `version` gives them."""
    return cache_dir() / f"jsb-music21-{version}-prep{PREPARATION}.npz"


def store(path: Path, rolls: dict[str, list[np.ndarray]]) -> None:
    """Rolls per split into a cache file, written whole: jobs started together may prepare it at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{f"{s}_{i:03d}": r for s in SPLITS for i, r in enumerate(rolls[s])})
    results.write_whole(path, buffer.getvalue())


def prepare(names: list[str] | None = None) -> dict[str, list[np.ndarray]]:
    """The chorales `names` (music21 corpus names; None: Riemenschneider's collection, every one)
    as rolls (chorale_roll); chorales whose rolls are identical kept once; split by a fixed
    shuffle of their names."""
    from music21 import corpus

    named = {}
    for name in sorted(names or corpus.chorales.Iterator(returnType="filename")):
        piece = chorale_roll(corpus.parse(name), name)
        named.setdefault(piece.tobytes() + bytes(str(len(piece)), "ascii"), (name, piece))
    pieces = sorted(named.values())  # by name
    order = np.random.default_rng(0).permutation(len(pieces))
    n_train, n_valid = (round(f * len(pieces)) for f in FRACTIONS)
    cut = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}
    return {s: [pieces[i][1] for i in sorted(cut[s])] for s in SPLITS}


def chorale_roll(score, name: str) -> np.ndarray:
    """A music21 score as a roll: transposed so that its key (music21's analysis) has the tonic C,
    by the smaller interval; one step per quarter note from the score's start, a key on at step k
    when one of its notes sounds at offset k (offset <= k < offset + length)."""
    from music21 import interval

    shift = -score.analyze("key").tonic.pitchClass % 12  # up to C
    score = score.transpose(interval.Interval(shift - 12 if shift > 6 else shift))
    steps = [set() for _ in range(math.ceil(score.highestTime))]
    for note in score.flatten().notes:
        start, end = float(note.offset), float(note.offset + note.quarterLength)
        for k in range(math.ceil(start), math.ceil(end)):
            steps[k].update(p.midi for p in note.pitches)
    return roll(steps, name)
