"""Self-contained checkpoints as plain data: write atomically, read without unpickling code.

A checkpoint is a dict of tensors and primitives. Training writes Lightning's
dict (weights under `state_dict` with a `model.` prefix, plus optimizer and loop
state) with an extra `nmt` entry holding everything translation needs: the
model config, vocabulary sizes and special ids, the SentencePiece models as
bytes, and the training config. `load_checkpoint` needs neither Lightning nor
any file besides the checkpoint.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from nmt.atomic import atomic_open
from nmt.config import DataConfig, ModelConfig
from nmt.errors import UserError

FORMAT_VERSION = 1
_METADATA_KEYS = (
    "format",
    "model_config",
    "src_vocab_size",
    "tgt_vocab_size",
    "special_ids",
    "tokenizer",
    "src_lang",
    "tgt_lang",
    "train_config",
)


class CheckpointError(UserError, ValueError):
    """A file is not a usable nmt checkpoint; the message says which file and why."""


@dataclass(frozen=True, kw_only=True)
class SpecialIds:
    """The ids that frame every sequence, by name, so that no caller can pass them in the wrong order.

    Training fixes them (`nmt.data.tokenizer`: PAD 0, BOS 2, EOS 3) and every checkpoint records them.
    """

    pad: int  # fills batches up to their longest row
    bos: int  # the decoder's first input
    eos: int  # ends every source and every target


@dataclass
class Checkpoint:
    """What translation needs from a checkpoint."""

    model_config: ModelConfig
    state_dict: dict[str, torch.Tensor]  # Transformer weights, no prefix
    src_vocab_size: int
    tgt_vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    tokenizer: dict[str, bytes]  # SentencePiece model protos ("joint", or "src" and "tgt")
    src_lang: str
    tgt_lang: str
    train_config: dict[str, Any]  # the resolved training config, as plain data
    step: int

    @property
    def special_ids(self) -> SpecialIds:
        """`pad_id`, `bos_id` and `eos_id` as one value."""
        return SpecialIds(pad=self.pad_id, bos=self.bos_id, eos=self.eos_id)


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write a checkpoint dict with `torch.save` atomically (see `nmt.atomic.atomic_open`).

    The tensors stream into the temporary file: no in-memory copy of a checkpoint that can be GBs.
    """
    with atomic_open(path, "wb") as f:
        torch.save(checkpoint, f)


def metadata(
    model_config: ModelConfig,
    *,
    src_vocab_size: int,
    tgt_vocab_size: int,
    special_ids: dict[str, int],
    tokenizer: dict[str, bytes],
    src_lang: str,
    tgt_lang: str,
    train_config: dict[str, Any],
) -> dict[str, Any]:
    """The `nmt` entry of a checkpoint: plain data only (loadable with `weights_only=True`)."""
    return {
        "format": FORMAT_VERSION,
        "model_config": asdict(model_config),
        "src_vocab_size": src_vocab_size,
        "tgt_vocab_size": tgt_vocab_size,
        "special_ids": dict(special_ids),
        "tokenizer": dict(tokenizer),
        "src_lang": src_lang,
        "tgt_lang": tgt_lang,
        "train_config": train_config,
    }


def read_raw(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint dict safely: `weights_only=True` refuses any pickled code.

    `mmap=True` maps the tensors instead of reading them (for a quick look at the metadata).
    """
    path = Path(path)
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {reason}.")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch checkpoint (not a zip archive).")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds objects other than tensors and plain data "
            f"(a file crafted to run code on load looks like this). Details: {str(err).splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch file: {err}") from err
    if not isinstance(raw, dict):
        raise CheckpointError(f"checkpoint {path} must hold a dict, but holds {type(raw).__name__} instead.")
    return raw


def _model_config(values: Any, path: Path) -> ModelConfig:
    """Rebuild a `ModelConfig` from stored plain data, refusing unknown keys or wrong types."""
    if not isinstance(values, dict):
        raise CheckpointError(f"checkpoint {path}: `model_config` must be a dict, but is {type(values).__name__}.")
    known = {f.name: f for f in fields(ModelConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise CheckpointError(f"checkpoint {path}: unknown model config keys {unknown}.")
    defaults = ModelConfig()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        wrong_items = expected is list and not all(type(item) is int for item in value)
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool) or wrong_items:
            raise CheckpointError(
                f"checkpoint {path}: `model_config.{key}` must be {expected.__name__}, but is {value!r}."
            )
    return ModelConfig(**values)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by `nmt-train` (or `export`) into a validated `Checkpoint`."""
    return from_raw(read_raw(path), Path(path))


def from_raw(raw: dict[str, Any], path: Path) -> Checkpoint:
    """Validate a loaded checkpoint dict and build the `Checkpoint` it describes."""
    meta = raw.get("nmt")
    if not isinstance(meta, dict) or "state_dict" not in raw:
        raise CheckpointError(f"checkpoint {path} is not an nmt checkpoint (no `nmt` metadata or weights).")
    missing = sorted(set(_METADATA_KEYS) - set(meta))
    if missing:
        raise CheckpointError(f"checkpoint {path}: `nmt` metadata lacks {', '.join(missing)}.")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {meta.get('format')!r}; this nmt reads format {FORMAT_VERSION}."
        )
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in raw["state_dict"].items() if k.startswith(prefix)}
    ids = meta["special_ids"]
    return Checkpoint(
        model_config=_model_config(meta["model_config"], path),
        state_dict=weights,
        src_vocab_size=int(meta["src_vocab_size"]),
        tgt_vocab_size=int(meta["tgt_vocab_size"]),
        pad_id=int(ids["pad"]),
        bos_id=int(ids["bos"]),
        eos_id=int(ids["eos"]),
        tokenizer=dict(meta["tokenizer"]),
        src_lang=str(meta["src_lang"]),
        tgt_lang=str(meta["tgt_lang"]),
        train_config=dict(meta["train_config"]),
        step=int(raw.get("global_step", 0)),
    )


def check_training_checkpoint(raw: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume from an exported model: it has weights but no optimizer or loop state."""
    if "optimizer_states" not in raw or "loops" not in raw:
        raise CheckpointError(
            f"checkpoint {path} is an exported model, not a training checkpoint (it has no optimizer or loop "
            "state); resume from the run's checkpoints/last.ckpt, or resume=last with that run's hydra.run.dir."
        )


def export_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Write a slim copy of a training checkpoint: weights and metadata, no optimizer state."""
    raw = read_raw(src)
    from_raw(raw, Path(src))  # validates before anything is written
    slim = {k: raw[k] for k in ("state_dict", "nmt", "global_step") if k in raw}
    save_checkpoint(slim, dst)


def aligned_layer(ckpt: Checkpoint) -> int | None:
    """The decoder layer a checkpoint was trained to align (guided alignment: `optim.align_layer` with
    `optim.align_weight` > 0), from its training config; None without guided alignment."""
    optim = ckpt.train_config.get("optim", {}) if isinstance(ckpt.train_config, dict) else {}
    layer = optim.get("align_layer") if isinstance(optim, dict) else None
    guided = (
        isinstance(optim, dict) and isinstance(optim.get("align_weight"), int | float) and optim["align_weight"] > 0
    )
    return layer if guided and isinstance(layer, int) else None


def trained_on(ckpt: str | Path | list[str]) -> DataConfig:
    """The data config a checkpoint (or an ensemble's first) was trained with, so that it is scored on its own
    test set by default.

    Raises:
        CheckpointError: `ckpt` is not a usable checkpoint, or its training config holds no usable data section.
    """
    if isinstance(ckpt, list):
        ckpt = ckpt[0]
    train_config = load_checkpoint(ckpt).train_config
    try:
        return DataConfig(**train_config["data"])
    except (KeyError, TypeError) as err:  # an older or foreign training config
        raise CheckpointError(
            f"checkpoint {ckpt} does not record its training data; choose one with data=NAME."
        ) from err
