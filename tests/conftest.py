"""Shared fixtures. Real MNIST comes from ``../shared/data/mnist`` beside the repository.

MNIST is read (and checksummed) once per session: ``mnist`` holds the full splits, ``mnist_small``
small slices of them for short trainings. ``$CVAE_CACHE`` points at a session folder, so the FID
domain classifier is trained once per session and nothing is written to ``~/.cache``. Torch runs
one thread (``OMP_NUM_THREADS=1`` for subprocesses) unless a test asks for more.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

import cvae
from cvae.data import DataSplits

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = SHARED_DATA / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"real MNIST not found at {path} (CI provides ../shared/data/mnist)")
    return path


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path) -> DataSplits:
    """The full MNIST splits (54k train / 6k val / 10k test), as `cvae train` loads them."""
    return cvae.load_data("mnist", mnist_dir)


@pytest.fixture(scope="session")
def mnist_small(mnist: DataSplits) -> DataSplits:
    """The first 2048 train, 256 val and 500 test images of ``mnist``."""
    return DataSplits(
        "mnist",
        mnist.train.subset(torch.arange(2048)),
        mnist.val.subset(torch.arange(256)),
        mnist.test.subset(torch.arange(500)),
    )


@pytest.fixture(scope="session", autouse=True)
def _session_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A session cache folder, and one torch thread here and in subprocesses: the tests' models
    are small, and two threads per process oversubscribe a busy 2-core machine."""
    env = {"CVAE_CACHE": str(tmp_path_factory.mktemp("cvae-cache")), "OMP_NUM_THREADS": "1"}
    old_env = {key: os.environ.get(key) for key in env}
    old_threads = torch.get_num_threads()
    os.environ.update(env)
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):  # numpy / scipy
        yield
    torch.set_num_threads(old_threads)
    for key, value in old_env.items():
        if value is None:
            del os.environ[key]
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _seed_and_threads() -> Iterator[None]:
    """Seed torch; restore its thread count (in-process `--threads 1` runs change it)."""
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt, as in a terminal, also where the test runner
    ignores SIGINT (CI runs `.ci/run` as a background job, and children inherit that)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
