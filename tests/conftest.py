"""Shared fixtures: the real corpora in `shared/data` next to the repository, and one tiny trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
from nmt.config import TrainConfig

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Steps for the session's tiny model: enough to translate the built-in corpus well
# (validation BLEU ~85 at 600 steps, measured), cheap enough for CI (~40 s on 2 cores).
TINY_STEPS = 600


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`shared/data` (Multi30k, Tatoeba en-zh), which CI and the README expect beside the repository."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"no local corpora at {SHARED_DATA}: clone the project with `shared/` beside it.")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spm_cache(tmp_path_factory) -> Path:
    """One SentencePiece cache per test session: a model trained twice on the same text is loaded."""
    return tmp_path_factory.mktemp("spm-cache")


def train_config(run_dir: Path, cache_dir: Path, overrides: list[str] = ()) -> TrainConfig:
    """The real `nmt-train` config (conf/train.yaml) with test overrides, converted as the CLI does."""
    register_schemas()
    base = [f"run_dir={run_dir}", f"data.cache_dir={cache_dir}", "trainer.progress_bar=false", "val_samples=0"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return to_dataclass(compose(config_name="train", overrides=base + list(overrides)), TrainConfig)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, spm_cache):
    """The tiny preset trained on the built-in corpus through the real training path, once per session.

    Returns the `TrainResult` (its `model_path` is a self-contained checkpoint) and the config.
    """
    from nmt.train.run import train

    run_dir = tmp_path_factory.mktemp("tiny-run")
    cfg = train_config(run_dir, spm_cache, [f"trainer.max_steps={TINY_STEPS}", "trainer.val_check_interval=300"])
    return train(cfg), cfg


@pytest.fixture(scope="session")
def model_path(tiny_run) -> Path:
    """The tiny run's exported checkpoint (`model.pt`)."""
    return Path(tiny_run[0].model_path)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for modules that decode tiny models: on a busy machine extra threads only spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
