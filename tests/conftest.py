"""Shared fixtures: a tiny random caption checkpoint and small generated photos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from core.checkpoint import save_checkpoint
from core.model import CaptionModel, ModelConfig
from core.vocab import SPECIALS, Vocab
from tests.imagegen import textured_image

DATA = Path(__file__).resolve().parent / "data"

# torchvision comes only with the CUDA build of torch (the "cuda" extra; it decodes JPEGs on an
# NVIDIA GPU): on the CPU build the tests of that decoding and the comparisons with torchvision
# skip.
requires_torchvision = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is None,
    reason="torchvision is not installed: it comes only with the CUDA build of torch "
    "(the 'cuda' extra), for decoding JPEGs on an NVIDIA GPU",
)

# Tiny models run fastest on one thread, and tests then leave the other core to whatever else runs.
torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        choices=("cpu", "cuda", "mps"),
        help="run every Captioner the tests make on this device (default cpu); "
        "tests/benchmarks/gpu_check.py passes cuda",
    )


def pytest_configure(config: pytest.Config) -> None:
    device = config.getoption("--device")
    if device == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda: this machine has no CUDA device")
    if device == "mps" and not torch.backends.mps.is_available():
        raise pytest.UsageError("--device mps: this machine has no MPS device")


@pytest.fixture(autouse=True)
def _captioners_on_test_device(request: pytest.FixtureRequest, monkeypatch) -> None:
    """Under --device cuda (or mps) a Captioner asked for "cpu" or "auto" runs there instead:
    the tests ask for "cpu" so that they pass on any machine."""
    device = request.config.getoption("--device")
    if device == "cpu":
        return
    import core.inference

    real = core.inference.pick_device
    monkeypatch.setattr(
        core.inference,
        "pick_device",
        lambda requested="auto": real(device if requested in ("cpu", "auto") else requested),
    )


@pytest.fixture(autouse=True, scope="session")
def _private_log_file(tmp_path_factory) -> None:
    """The command line's log file (core.logfile) in a temporary folder, never the user's."""
    import os

    os.environ["PHOTOSCRIBE_LOG"] = str(tmp_path_factory.mktemp("log") / "photoscribe-cli.log")


@pytest.fixture(autouse=True)
def _private_library_index(tmp_path_factory, monkeypatch) -> None:
    """No test may ever write to the user's real library index."""
    monkeypatch.setenv("PHOTOSCRIBE_INDEX", str(tmp_path_factory.mktemp("index") / "library.db"))


TINY_WORDS = "a dog cat man woman runs sits on the in beach grass red ball water street".split()


def tiny_config(vocab: Vocab, **kw) -> ModelConfig:
    base = dict(
        vocab_size=len(vocab),
        d_model=32,
        n_heads=2,
        n_encoder_layers=1,
        n_decoder_layers=2,
        d_ff=64,
        dropout=0.0,
        pad_id=vocab.pad_id,
    )
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture(scope="session")
def tiny_vocab() -> Vocab:
    return Vocab(SPECIALS + tuple(TINY_WORDS))


@pytest.fixture(scope="session")
def tiny_model(tiny_vocab: Vocab) -> CaptionModel:
    torch.manual_seed(0)
    return CaptionModel(tiny_config(tiny_vocab)).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model: CaptionModel, tiny_vocab: Vocab) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, tiny_model, tiny_vocab, {"data": "random weights for tests"})
    return path


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Three small JPEG photos."""
    for i in range(3):
        textured_image(320, 240, seed=i).save(tmp_path / f"photo{i}.jpg", quality=90)
    return tmp_path


@pytest.fixture
def faulty_readers(monkeypatch):
    """The process's image readers replaced by ones that crash on files named segfault*,
    abort* and hang* (tests/reader_faults.py); a reader counts as hung after 3 s."""
    import core.isolation

    pool = core.isolation.ReaderPool(timeout_s=3.0, setup="tests.reader_faults:install")
    monkeypatch.setattr(core.isolation, "_POOL", pool)
    yield pool
    pool.close()


@pytest.fixture
def readers_in_process(monkeypatch) -> None:
    """The image readers' work done in the test's own process (as on Windows), so that a test
    can monkeypatch code that normally runs in a reader process (core.isolation)."""
    import core.isolation

    monkeypatch.setattr(core.isolation, "CAN_ISOLATE", False)
