"""Shared fixtures: the real corpora in `shared/data` next to the repository, and one tiny trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nmt.checkpoint import load_checkpoint, metadata, read_raw, save_checkpoint
from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
from nmt.config import ModelConfig, TrainConfig
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.model import Transformer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Steps for the session's tiny model: enough to translate the built-in corpus well
# (validation BLEU ~85 at 600 steps, measured), cheap enough for CI (~40 s on 2 cores).
TINY_STEPS = 600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the GPU tier where it cannot run: `gpu` tests without a CUDA GPU, `multigpu` ones with fewer than 2."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    needs = {
        "gpu": (1, "needs a CUDA GPU; none is visible to this PyTorch"),
        "multigpu": (2, f"needs 2 CUDA GPUs; {gpus} visible to this PyTorch"),
    }
    for item in items:
        for marker, (least, reason) in needs.items():
            if gpus < least and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


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
    # Two threads whatever the load: with 0 (one per free core) a busy machine trains another model (float sums).
    steps = [f"trainer.max_steps={TINY_STEPS}", "trainer.val_check_interval=300", "trainer.num_threads=2"]
    cfg = train_config(run_dir, spm_cache, steps)
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


def perturbed_checkpoint(model_path: Path, path: Path, seed: int, scale: float = 1.0) -> Path:
    """A copy of a checkpoint with every floating weight moved by seeded noise of this scale."""
    raw = read_raw(model_path)
    generator = torch.Generator().manual_seed(seed)
    raw["state_dict"] = {
        k: v + scale * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
        for k, v in raw["state_dict"].items()
    }
    save_checkpoint(raw, path)
    return path


def untrained_checkpoint(model_path: Path, path: Path, attention: str = "scaled_dot", weights: str = "softmax") -> Path:
    """A valid checkpoint of a tiny untrained network (d_model 16) with the tokenizer of `model_path`."""
    cfg = ModelConfig(
        d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=32, attention=attention, attention_weights=weights
    )
    ckpt = load_checkpoint(model_path)
    model = Transformer(cfg, ckpt.src_vocab_size, ckpt.tgt_vocab_size, PAD_ID)
    meta = metadata(
        cfg,
        src_vocab_size=ckpt.src_vocab_size,
        tgt_vocab_size=ckpt.tgt_vocab_size,
        special_ids={"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
        tokenizer=ckpt.tokenizer,
        src_lang="en",
        tgt_lang="de",
        train_config={},
    )
    save_checkpoint({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "nmt": meta}, path)
    return path


def retokenized_checkpoint(model_path: Path, path: Path) -> Path:
    """A copy of a checkpoint with another tokenizer model beside its weights."""
    raw = read_raw(model_path)
    raw["nmt"]["tokenizer"] = {name: proto + b"\x00" for name, proto in raw["nmt"]["tokenizer"].items()}
    save_checkpoint(raw, path)
    return path
