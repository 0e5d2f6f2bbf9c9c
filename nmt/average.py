"""Checkpoint averaging: the element-wise mean of several checkpoints' weights, as one self-contained model.

Averaging the last checkpoints of a run smooths the noise of its final updates and is worth some
BLEU for free (Vaswani et al. 2017 averaged the last 5 or 20; fairseq's `average_checkpoints.py`,
OpenNMT's `average_models`). Only checkpoints of one model shape and one tokenizer can be averaged;
anything else is refused naming the checkpoint that differs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nmt.checkpoint import Checkpoint, CheckpointError, from_raw, read_raw

KEPT_NAME = re.compile(r"step(\d+)\.ckpt")  # the checkpoints `keep_last` keeps: step000400.ckpt (`step{step:06d}`)


def kept_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoints of the latest validations a run kept with `keep_last`, oldest first: those its `keep_last`
    callback listed in the run's `last.ckpt` (written after the checkpoint each validation keeps), and the one of
    `last.ckpt`'s own step (listed by runs before that order), never other files of the directory."""
    directory = Path(run_dir) / "checkpoints"
    last = directory / "last.ckpt"
    if not last.is_file():
        return []
    raw = read_raw(last, mmap=True)
    states = [s for s in raw.get("callbacks", {}).values() if isinstance(s, dict) and s.get("monitor") == "step"]
    if not states:  # the run kept none
        return []
    names = {Path(path).name for path in states[0].get("best_k_models", {})}
    names.add(f"step{int(raw.get('global_step', 0)):06d}.ckpt")
    kept = ((int(m.group(1)), directory / name) for name in names if (m := KEPT_NAME.fullmatch(name)))
    return [path for _, path in sorted(kept) if path.is_file()]


def last_checkpoints(run_dir: str | Path, n: int) -> list[Path]:
    """The `n` latest checkpoints a run kept with `keep_last`, oldest first.

    Raises:
        CheckpointError: the run kept fewer than `n`.
    """
    kept = kept_checkpoints(run_dir)
    if len(kept) < n:
        raise CheckpointError(
            f"{Path(run_dir) / 'checkpoints'} holds {len(kept)} checkpoints of the latest validations, not the {n} "
            "asked for; train with keep_last=N to keep them, or name the checkpoints with ckpts=[...]."
        )
    return kept[-n:]


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Any]:
    """A slim checkpoint (weights, metadata, step) whose weights are the mean of `paths`' weights.

    Sums are taken in float64 and cast back, so the mean does not depend on the order of the paths
    beyond rounding. The metadata (tokenizer, configs) is the first checkpoint's; the step the last's.

    Raises:
        CheckpointError: fewer than one path, or a checkpoint unusable or unlike the first (names it).
    """
    if not paths:
        raise CheckpointError("no checkpoints to average: give at least one.")
    first_path = Path(paths[0])
    first_raw = read_raw(first_path, mmap=True)  # mapped: the optimizer state of training checkpoints is never read
    first = from_raw(first_raw, first_path)
    sums = {name: tensor.to(torch.float64) for name, tensor in first.state_dict.items()}
    step = first.step
    for path in map(Path, paths[1:]):
        other = from_raw(read_raw(path, mmap=True), path)
        _check_alike(first, first_path, other, path)
        for name, tensor in other.state_dict.items():
            sums[name] += tensor.to(torch.float64)
        step = other.step
    weights = {f"model.{name}": (total / len(paths)).to(first.state_dict[name].dtype) for name, total in sums.items()}
    return {"state_dict": weights, "nmt": first_raw["nmt"], "global_step": step}


def _check_alike(first: Checkpoint, first_path: Path, other: Checkpoint, path: Path) -> None:
    """Refuse `other` unless it has `first`'s model config, vocabularies, tokenizer and weight shapes."""
    differences = [
        f"{key} {getattr(other, key)!r} (not {getattr(first, key)!r})"
        for key in ("model_config", "src_vocab_size", "tgt_vocab_size", "src_lang", "tgt_lang")
        if getattr(other, key) != getattr(first, key)
    ]
    if other.tokenizer != first.tokenizer:
        differences.append("another tokenizer (its token ids mean other subwords)")
    if set(other.state_dict) != set(first.state_dict):
        differences.append("other weight names")
    else:
        differences += [
            f"weight {name} of shape {tuple(tensor.shape)} (not {tuple(first.state_dict[name].shape)})"
            for name, tensor in other.state_dict.items()
            if tensor.shape != first.state_dict[name].shape
        ]
    if differences:
        raise CheckpointError(f"cannot average {path} with {first_path}: it has {'; '.join(differences)}.")
