import pytest
import torch

from hardware import accelerator
from shrunk import cli  # noqa: F401 (the rnnbench command as a fixture, for every test module)


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
