"""What a resumed run takes from its checkpoint before any work: the tokenizer, the step, the time used.

Checked up front, so a resume that cannot continue says why before data preparation: a checkpoint
trained on other data, tokenizer settings or model, batching options that would deal its epoch's batches in
another order, or a time budget (`trainer.max_time`) already spent. What the order depends on in the data itself
(the training pairs left after filtering) is checked once the data is loaded (`TranslationDataModule`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nmt.checkpoint import CheckpointError, check_training_checkpoint, from_raw, read_raw
from nmt.config import ConfigError, DataConfig, ModelConfig, TokenizerConfig, TrainConfig
from nmt.config.groups import TrainerConfig
from nmt.config.options import fields_with_role
from nmt.data.tokenizer import Tokenizer
from nmt.train.budget import max_time_seconds


@dataclass
class ResumeState:
    """The parts of a training checkpoint a resumed run needs before Lightning reads the rest."""

    path: str
    step: int
    tokenizer: Tokenizer  # the checkpoint's own: never retrained (SentencePiece sampling is not seeded)
    train_seconds: float | None  # training time of the whole run so far; None when it was not timed


def resolve_resume(resume: str | None, checkpoint_dir: Path) -> str | None:
    """`last` means this run directory's `checkpoints/last.ckpt`, `auto` that file where it exists (else a fresh
    run: the one command of a job that a cluster may requeue); anything else is a path. None (a fresh run) is
    refused where the directory holds a run already: its checkpoints would be overwritten, or renamed by Lightning
    (`last-v1.ckpt`) so that `resume=last` and `nmt-average run=` read the earlier run's."""
    last = checkpoint_dir / "last.ckpt"
    if resume == "auto":
        return str(last) if last.is_file() else None
    if resume is None:
        if last.is_file():
            raise CheckpointError(
                f"{last} exists: this run directory holds a run already. Continue it with resume=last (or "
                "resume=auto), or train into another directory (hydra.run.dir=...)."
            )
        return None
    path = last if resume == "last" else Path(resume)
    if not path.is_file():
        hint = " (resume=last looks in this run's directory: set hydra.run.dir to the earlier run)"
        raise CheckpointError(f"resume checkpoint {path} does not exist{hint if resume == 'last' else ''}.")
    return str(path)


def load_resume_state(path: str, cfg: TrainConfig) -> ResumeState:
    """Read the checkpoint's metadata (tensors memory-mapped, not read) and refuse a resume that cannot work."""
    raw = read_raw(path, mmap=True)
    check_training_checkpoint(raw, path)
    ckpt = from_raw(raw, Path(path))
    if cfg.data.prepared is None:  # a prepared directory is checked against the checkpoint's tokenizer itself
        check_same_tokenizer_inputs(ckpt.train_config, cfg, path)
    check_same_model(ckpt.model_config, cfg.model, path)
    check_same_world_size(raw, processes(cfg.trainer), path)
    check_same_batch_order(raw.get("TranslationDataModule", {}), batching_options(cfg), path)
    seconds = _train_seconds(raw, by_time=cfg.optim.schedule_by == "time")
    state = ResumeState(path, ckpt.step, Tokenizer.from_bytes(ckpt.tokenizer), seconds)
    check_time_budget(state, cfg.trainer.max_time)
    return state


def check_same_tokenizer_inputs(stored: dict[str, Any], cfg: TrainConfig, path: str) -> None:
    """Refuse when this run's data or tokenizer settings would build another tokenizer than the checkpoint's:
    the fields with role `tokenizer` (the data keys that decide its training text; where the files lie may
    change)."""
    now = {"data": dataclasses.asdict(cfg.data), "tokenizer": dataclasses.asdict(cfg.tokenizer)}
    keys = [("data", k) for k in fields_with_role(DataConfig, "tokenizer")]
    keys += [("tokenizer", k) for k in fields_with_role(TokenizerConfig, "tokenizer")]
    changed = [
        f"{group}.{key} (checkpoint {stored[group].get(key)!r}, config {now[group][key]!r})"
        for group, key in keys
        if stored.get(group, {}).get(key, now[group][key]) != now[group][key]  # a key newer than the checkpoint: as now
    ]
    if changed:
        raise CheckpointError(
            f"checkpoint {path} was trained with a different tokenizer than this run's config describes: "
            f"{'; '.join(changed)}. Resume with the original run's settings, or start a new run."
        )


def check_same_model(stored: ModelConfig, model: ModelConfig, path: str) -> None:
    """Refuse another model shape or variant, naming each field that differs (not a shape error deep in
    `load_state_dict`)."""
    changed = [
        f"{f.name} (checkpoint {getattr(stored, f.name)!r}, config {getattr(model, f.name)!r})"
        for f in dataclasses.fields(ModelConfig)
        if getattr(stored, f.name) != getattr(model, f.name)
    ]
    if changed:
        raise CheckpointError(f"checkpoint {path} has a different model: {'; '.join(changed)}.")


def processes(trainer: TrainerConfig) -> int:
    """The processes a run starts: devices per node (-1: every visible GPU, as Lightning reads it) times nodes."""
    devices = torch.cuda.device_count() if trainer.devices == -1 else trainer.devices
    return devices * trainer.num_nodes


def check_same_world_size(raw: dict[str, Any], world_size: int, path: str) -> None:
    """Refuse to resume on another number of processes: the batches of an epoch are dealt out across the ranks,
    so the position inside the epoch, and each rank's random state, mean nothing on another count."""
    saved = raw.get("TranslationDataModule", {}).get("world_size")  # checkpoints before it was recorded: unchecked
    if saved is not None and saved != world_size:
        raise CheckpointError(
            f"checkpoint {path} was trained by {saved} process(es), but this run has {world_size} "
            "(trainer.devices x trainer.num_nodes): resume with the same number, or start a new run from its "
            f"weights with init_from={path}."
        )


# What the batch order of an epoch depends on besides the world size, as `TranslationDataModule.state_dict`
# records it, and the name a message gives each.
BATCH_ORDER_KEYS = {
    "seed": "seed",
    "max_tokens": "data.max_tokens",
    "max_sentences": "data.max_sentences",
    "train_pairs": "training pairs left after data.max_len and data.max_ratio",
    "train_lengths": "digest of the training pairs' lengths",
}


def batching_options(cfg: TrainConfig) -> dict[str, Any]:
    """The options of `cfg` that the batch order depends on, under the keys of `BATCH_ORDER_KEYS`."""
    return {"seed": cfg.seed, "max_tokens": cfg.data.max_tokens, "max_sentences": cfg.data.max_sentences or 0}


def check_same_batch_order(saved: dict[str, Any], now: dict[str, Any], path: str) -> None:
    """Refuse to resume when this run would cut or order the batches of an epoch otherwise than the checkpoint's
    run: skipping the batches it had done would then drop or repeat pairs. Names each key of `BATCH_ORDER_KEYS`
    that differs, with both values; a key missing from either side (a checkpoint older than it) is not checked."""
    changed = [
        f"{name} (checkpoint {saved[key]!r}, this run {now[key]!r})"
        for key, name in BATCH_ORDER_KEYS.items()
        if key in saved and key in now and saved[key] != now[key]
    ]
    if changed:
        raise CheckpointError(
            f"checkpoint {path} cannot continue its epoch in this run, which would cut or order the batches "
            f"otherwise: {'; '.join(changed)}. Resume with the original run's settings and data, or start a new run "
            f"from its weights with init_from={path}."
        )


def _train_seconds(raw: dict[str, Any], by_time: bool) -> float | None:
    """Training seconds that the run's clock saved (`by_time`: the one a schedule by time follows), else those of
    Lightning's `Timer` (present when the run had `max_time`)."""
    if by_time:
        return float(raw.get("elapsed_s", 0.0))
    timer = raw.get("callbacks", {}).get("Timer")
    if not isinstance(timer, dict):
        return None
    return float(timer.get("time_elapsed", {}).get("train", 0.0))


def check_time_budget(state: ResumeState, max_time: str | None) -> None:
    """Refuse to resume a run whose `max_time` (which counts the whole run, across resumes) is spent."""
    if max_time is None or state.train_seconds is None:
        return
    budget = max_time_seconds(max_time)
    if state.train_seconds >= budget:
        raise ConfigError(
            f"`trainer.max_time` is {max_time}, but the run in {state.path} has already trained for "
            f"{_clock(state.train_seconds)}: max_time counts the whole run, across resumes, so nothing is "
            "left. Raise trainer.max_time above that, or set trainer.max_time=null."
        )


def describe(state: ResumeState, max_time: str | None) -> str:
    """One line saying where the run continues and how much of its time budget is left."""
    line = f"resume: from step {state.step} ({state.path})"
    if state.train_seconds is not None:
        line += f", trained {_clock(state.train_seconds)} so far"
        if max_time is not None:
            left = max_time_seconds(max_time) - state.train_seconds
            line += f"; max_time {max_time} counts the whole run: {_clock(left)} left"
    elif max_time is not None:
        line += f"; the checkpoint's run was not timed, so max_time {max_time} counts from this resume"
    return line


def _clock(seconds: float) -> str:
    """`DD:HH:MM:SS`, the format of `trainer.max_time`."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"
