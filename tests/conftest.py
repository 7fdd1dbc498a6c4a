import pytest
import torch

from hardware import accelerator
from shrunk import cli  # noqa: F401 (the rnnbench command as a fixture, for every test module)

FEW_CHORALES = ["bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6", "bach/bwv267"]


def pytest_collection_modifyitems(config, items):
    if accelerator() is None:
        skip = pytest.mark.skip(reason="no CUDA or MPS device on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _float_mode():
    """A run sets its CPU threads' float mode (backend.flush_denormal) for the rest of its process:
    each test gets back the mode it started with."""
    from cells import native

    flushing = native.flushes_denormals()
    yield
    native.flush_denormal(flushing)


@pytest.fixture(scope="session", autouse=True)
def _few_chorales(tmp_path_factory):
    """task=jsb reads its chorales from a cache of this session holding five of them (music21
    parses the 371 in about a minute; test_music tests that preparation on these five)."""
    import importlib.metadata
    import os

    from bench import music

    folder, before = tmp_path_factory.mktemp("cache"), os.environ.get("RNNBENCH_CACHE")
    os.environ["RNNBENCH_CACHE"] = str(folder)  # subprocesses (launchers, the installed command) too
    try:
        music.store(music.cached(importlib.metadata.version("music21")), music.prepare(FEW_CHORALES))
    except importlib.metadata.PackageNotFoundError:
        pass  # the music extra is not installed: task=jsb is refused, and its tests skip
    yield
    if before is None:
        del os.environ["RNNBENCH_CACHE"]
    else:
        os.environ["RNNBENCH_CACHE"] = before


@pytest.fixture(scope="session")
def small_results(tmp_path_factory):
    """The claims experiment shrunk (seeds 0 and 1, a few steps, tiny sizes), run in this process
    through the same code as the CLI: a results directory with every table the report reads."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from bench import run

    root = tmp_path_factory.mktemp("claims")
    shrink = ["train.steps=6", "train.eval_every=3", "train.n_test=16", "train.probe_size=4", "train.profile_every=3",
              "cell.hidden_size=6", "throughput.batch_size=2", "throughput.repeats=2", "throughput.warmup=0",
              "progress=false", f"results_dir={root}"]
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for job in run.jobs(["experiment=claims"], multirun=True)[0]:
            if "seed=2" in job:
                continue
            choices = compose("config", overrides=[*job, *shrink], return_hydra_config=True).hydra.runtime.choices
            run.execute(compose("config", overrides=[*job, *shrink]), dict(choices))
    return root
