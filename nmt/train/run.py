"""`train(cfg)`: prepare data, build the model, fit with Lightning, export the best checkpoint."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.plugins import MixedPrecision
from lightning.pytorch.utilities.exceptions import SIGTERMException

from nmt.atomic import atomic_write_bytes, remove_stale_temporaries
from nmt.average import average_checkpoints
from nmt.checkpoint import (
    export_checkpoint,
    load_checkpoint,
    metadata,
    save_checkpoint,
)
from nmt.config import ConfigError, DataConfig, TrainConfig, TrainerConfig, check
from nmt.config.options import fields_with_role
from nmt.data.prepare import load_training_data
from nmt.data.prepared import PreparedCorpus
from nmt.data.synonyms import SynonymTable, synonym_table
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer
from nmt.device import retain_freed_memory, set_threads, training_precision, warn_if_slow_bf16
from nmt.errors import UserError
from nmt.model import Transformer
from nmt.train.budget import TimeBudget, TrainingClock, describe_budget, max_time_seconds
from nmt.train.checkpointing import AtomicCheckpointIO, CheckpointEveryValidation, ValidateTheLastStep
from nmt.train.datamodule import TranslationDataModule
from nmt.train.ema import DelayedEMA
from nmt.train.logs import ContinuingCSVLogger
from nmt.train.memory import TrimHeap
from nmt.train.module import TranslationModule
from nmt.train.preemption import Preempted, WriteLastOnPreemption
from nmt.train.progress import progress_callbacks
from nmt.train.resume import ResumeState, describe, load_resume_state, resolve_resume
from nmt.train.throughput import Throughput


@dataclass
class TrainResult:
    """Where the run left its products."""

    best_checkpoint: str
    best_bleu: float | None
    model_path: str  # slim export of the best checkpoint (weights + metadata), or the average of `averaged`
    steps: int
    throughput: dict[str, float]  # see `Throughput.summary`
    averaged: list[str] = field(default_factory=list)  # the kept checkpoints model.pt averages (average_last)


def build_module(
    cfg: TrainConfig,
    data: PreparedCorpus,
    clock: TrainingClock | None = None,
    progress: Callable[[], float] | None = None,
) -> TranslationModule:
    """The model wrapped in its LightningModule, with the metadata every checkpoint carries; `clock` and
    `progress` as `TranslationModule` takes them."""
    tok = data.tokenizer
    model = Transformer(cfg.model, tok.src_vocab_size, tok.tgt_vocab_size, PAD_ID)
    meta = metadata(
        cfg.model,
        src_vocab_size=tok.src_vocab_size,
        tgt_vocab_size=tok.tgt_vocab_size,
        special_ids={"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
        tokenizer=tok.to_bytes(),
        src_lang=cfg.data.src_lang,
        tgt_lang=cfg.data.tgt_lang,
        train_config=dataclasses.asdict(cfg),
    )
    return TranslationModule(
        model,
        tok,
        cfg.optim,
        cfg.decode,
        data.valid_refs,
        meta,
        cfg.trainer.max_steps,
        cfg.val_samples,
        compile=cfg.trainer.compile,
        clock=clock,
        progress=progress,
        augment=cfg.augment,
        seed=cfg.seed,
    )


def _synonyms(cfg: TrainConfig, data: PreparedCorpus) -> SynonymTable | None:
    """The table of `data.augment.synonyms` against the training sources (None without a file)."""
    table = synonym_table(cfg.augment, data.tokenizer, (data.train.src[i] for i in range(len(data.train))))
    if table is not None:
        print(f"synonyms: {len(table.words):,} source words of {cfg.augment.synonyms} can be replaced")
    return table


def build_trainer(cfg: TrainConfig, callbacks: list[Callback], resume_step: int | None = None) -> L.Trainer:
    """A Lightning Trainer from `cfg.trainer`, logging and checkpointing under `cfg.run_dir`.

    A resumed run (`resume_step` given) continues its `logs/metrics.csv` from that step. A run scheduled by time
    has no step, epoch or time limit here: its `TimeBudget` callback ends it.
    """
    t = cfg.trainer
    by_time = cfg.optim.schedule_by == "time"
    callbacks = [*callbacks, *progress_callbacks(t.progress_bar, t.log_every_n_steps)]
    if cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStopping("val/bleu", mode="max", patience=cfg.early_stopping_patience))
    logger: Logger = (
        TensorBoardLogger(cfg.run_dir, name="logs", version="")
        if cfg.logger == "tensorboard"
        else ContinuingCSVLogger(cfg.run_dir, resume_step, name="logs", version="")
    )
    device = "cuda" if _on_gpu(t) else "cpu"
    precision = training_precision(t.precision, torch.device(device))
    plugins: list[Any] = [AtomicCheckpointIO()]
    if precision == "16-mixed":  # Lightning's own would start at a loss scale of 2^16 (and use bf16 on CPU)
        plugins.append(
            MixedPrecision("16-mixed", device, torch.amp.GradScaler(device, init_scale=cfg.optim.fp16_init_scale))
        )
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=None if precision == "16-mixed" else precision,
        max_steps=-1 if by_time else t.max_steps,
        max_epochs=-1 if by_time else t.max_epochs,
        max_time=None if by_time else t.max_time,
        gradient_clip_val=t.gradient_clip_val or None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=None,  # validate every `val_check_interval` batches, across epochs
        log_every_n_steps=t.log_every_n_steps,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=logger,
        plugins=plugins,
        use_distributed_sampler=False,  # TokenBatchSampler shards by rank itself
        default_root_dir=cfg.run_dir,
        enable_model_summary=False,
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
    )


def save_tokenizer(models: dict[str, bytes], directory: Path) -> None:
    """Write the SentencePiece models (`joint.model` or `src.model` + `tgt.model`) for use outside nmt."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, proto in models.items():
        atomic_write_bytes(directory / f"{name}.model", proto)


def check_environment(cfg: TrainConfig) -> None:
    """Refuse, before any work, a trainer or logger this machine cannot provide."""
    problems = []
    t = cfg.trainer
    if t.accelerator == "gpu" and not torch.cuda.is_available():
        problems.append(
            "`trainer.accelerator` is gpu, but no CUDA GPU is visible to this PyTorch; use trainer=cpu "
            "(or trainer.accelerator=auto to take a GPU when there is one)."
        )
    elif t.accelerator == "gpu" and t.devices > torch.cuda.device_count():
        problems.append(f"`trainer.devices` is {t.devices}, but only {torch.cuda.device_count()} GPU(s) are visible.")
    if cfg.logger == "tensorboard" and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        problems.append(
            "logger=tensorboard needs TensorBoard: pip install 'nmt-toolkit[tensorboard]', or use logger=csv."
        )
    if problems:
        raise ConfigError("cannot train here:\n  " + "\n  ".join(problems))
    if not _on_gpu(t):
        warn_if_slow_bf16(t.precision, torch.device("cpu"), "trainer.precision")
        if t.precision == "16-mixed":
            print(
                "warning: trainer.precision=16-mixed on a CPU computes fp16 in emulation, slower than float32; "
                "it is for GPUs without bf16 (V100, T4). On a CPU use bf16-mixed (AMX or AVX512-BF16) or 32.",
                file=sys.stderr,
            )


def _on_gpu(t: TrainerConfig) -> bool:
    """Whether the trainer runs on CUDA GPUs."""
    return t.accelerator == "gpu" or (t.accelerator == "auto" and torch.cuda.is_available())


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Progress and Lightning's chatter go to stderr, so stdout carries only results."""
    chatty = logging.getLogger("lightning.pytorch")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # "GPU available: False", the litlogger tip, ...
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            # Our datamodule restores the position inside the epoch; Lightning cannot see that and warns.
            warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch.*")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # Lightning 2.6
            # fp16: an update the GradScaler skips still steps the schedule, as in fairseq; torch warns each time.
            warnings.filterwarnings("ignore", message=r".*lr_scheduler.step\(\)` before `optimizer.step\(\)`.*")
            yield
    finally:
        chatty.setLevel(level)


def train(
    cfg: TrainConfig, callbacks: Sequence[Callback] = (), clock: Callable[[], float] = time.monotonic
) -> TrainResult:
    """Train a model as `cfg` says; return the best checkpoint and its validation BLEU.

    Args:
        cfg: the whole training configuration.
        callbacks: extra Lightning callbacks (after nmt's own: checkpoints, throughput).
        clock: the time read, in seconds, by the training clock that a schedule by time follows.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    check_environment(cfg)
    checkpoint_dir = Path(cfg.run_dir) / "checkpoints"
    resume_path = resolve_resume(cfg.resume, checkpoint_dir)  # fails before data preparation
    if removed := remove_stale_temporaries(checkpoint_dir, None):  # before any rank can write a checkpoint
        print(f"removed {removed} unfinished checkpoint file(s) of a killed run from {checkpoint_dir}", file=sys.stderr)
    init = None if cfg.init_from is None else load_checkpoint(cfg.init_from)
    if init is not None:  # the model to fine-tune decides the shape, also for a resume of the fine-tuning
        cfg = check(dataclasses.replace(cfg, model=init.model_config))
    resume: ResumeState | None = None if resume_path is None else load_resume_state(resume_path, cfg)
    tokenizer, weights = None, None  # a resumed run gets its weights from Lightning, a fine-tuned one here
    if resume is not None:
        tokenizer = resume.tokenizer
    elif init is not None:
        tokenizer, weights = Tokenizer.from_bytes(init.tokenizer), init.state_dict
    with quiet_lightning():
        threads = set_threads(cfg.trainer.num_threads, 1 if _on_gpu(cfg.trainer) else cfg.trainer.devices)
        retain_freed_memory()
        if resume is not None:
            print(describe(resume, cfg.trainer.max_time))
        elif init is not None:
            print(f"fine-tuning {cfg.init_from} (trained {init.step:,} steps): its weights and tokenizer")
        if cfg.optim.schedule_by == "time":
            print(describe_budget(cfg))
        return _fit(cfg, checkpoint_dir, resume, tokenizer, weights, threads, list(callbacks), TrainingClock(clock))


def with_prepared_data(cfg: TrainConfig, data: PreparedCorpus) -> TrainConfig:
    """`cfg` with the corpus and tokenizer options the data was prepared with, so the checkpoint records
    what the model was really trained on (`nmt-evaluate` scores it on that corpus's test split).

    Batching and loading options (role `runtime`) stay the run's own.
    """
    if cfg.data.prepared is None:
        return cfg
    own = {k: getattr(cfg.data, k) for k in fields_with_role(DataConfig, "runtime")}
    tokenizer = data.tokenizer_config or cfg.tokenizer
    return check(dataclasses.replace(cfg, data=dataclasses.replace(data.data, **own), tokenizer=tokenizer))


def _fit(
    cfg: TrainConfig,
    checkpoint_dir: Path,
    resume: ResumeState | None,
    tokenizer: Tokenizer | None,
    weights: dict[str, torch.Tensor] | None,
    threads: int,
    extra: list[Callback],
    clock: TrainingClock,
) -> TrainResult:
    """Prepare the data (with `tokenizer`, a resumed or fine-tuned model's, when given), build the model
    (starting from `weights` when fine-tuning), fit it, and write `model.pt`."""
    data = load_training_data(cfg.data, cfg.tokenizer, tokenizer=tokenizer)
    if cfg.optim.align_weight > 0 and data.train.links is None:
        raise UserError(
            f"`optim.align_weight` > 0, but {data.path} holds no word links: prepare it with data.train_links."
        )
    cfg = with_prepared_data(cfg, data)
    print(f"data: {len(data.train)} training pairs kept ({data.filter_stats}); {len(data.valid)} validation pairs")
    budget = None
    if cfg.optim.schedule_by == "time":
        budget = TimeBudget(clock, max_time_seconds(cfg.trainer.max_time), cfg.trainer.val_check_fraction)
    module = build_module(cfg, data, clock, None if budget is None else budget.progress)
    if weights is not None:
        module.model.load_state_dict(weights)
    print(f"model: {module.model.param_count():,} parameters; {threads} CPU threads; run dir {cfg.run_dir}")
    datamodule = TranslationDataModule(
        data.train,
        data.valid,
        cfg.data.max_tokens,
        cfg.seed,
        cfg.data.num_workers,
        pin_memory=_on_gpu(cfg.trainer),
        max_sentences=cfg.data.max_sentences,
        synonyms=_synonyms(cfg, data),
        synonym_rate=cfg.augment.synonym_rate,
    )
    latest = None
    if cfg.keep_last:  # the latest validations' checkpoints, for averaging (nmt-average run=... last=N)
        latest = ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename="step{step:06d}",  # nmt.average.KEPT_NAME
            monitor="step",
            mode="max",
            save_top_k=cfg.keep_last,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
    checkpoints = CheckpointEveryValidation(
        dirpath=checkpoint_dir,
        filename="step{step:06d}-bleu{val/bleu:.2f}",
        monitor="val/bleu",
        mode="max",
        save_top_k=cfg.save_top_k,
        save_last=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    throughput = Throughput()
    preemption = WriteLastOnPreemption(checkpoints)
    # Lightning runs checkpoint callbacks last, in this order: `latest` first, so that the last.ckpt written
    # after it lists the checkpoint just kept (a resume and nmt-average run= read that list).
    kept = [latest] if latest is not None else []
    callbacks: list[Callback] = [*kept, checkpoints, throughput, ValidateTheLastStep(), preemption, *extra]
    if budget is not None:  # before the EMA, whose start it may decide
        callbacks.insert(0, budget)
    if cfg.ema_decay:  # validates with the average and saves it as each checkpoint's weights, once begun
        start_reached = None if budget is None else functools.partial(budget.reached, cfg.ema_start_fraction)
        callbacks.append(DelayedEMA(cfg.ema_decay, cfg.ema_start, start_reached))
    if not _on_gpu(cfg.trainer) and cfg.trainer.trim_every:
        callbacks.append(TrimHeap(cfg.trainer.trim_every))
    trainer = build_trainer(cfg, callbacks, None if resume is None else resume.step)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=None if resume is None else resume.path)
    except SIGTERMException:
        raise Preempted(preemption.stopped_at, checkpoint_dir / "last.ckpt") from None
    best = checkpoints.best_model_path or str(checkpoint_dir / "last.ckpt")
    model_path = Path(cfg.run_dir) / "model.pt"
    averaged: list[Path] = []
    if trainer.is_global_zero and Path(best).is_file():
        averaged = write_average(kept_by(latest), cfg.average_last, model_path) if cfg.average_last else []
        if not averaged:
            export_checkpoint(best, model_path)
        save_tokenizer(data.tokenizer.to_bytes(), Path(cfg.run_dir) / "tokenizer")
    score = checkpoints.best_model_score
    bleu = None if score is None else float(score)
    steps, speed = trainer.global_step, throughput.summary()
    return TrainResult(best, bleu, str(model_path), steps, speed, [str(p) for p in averaged])


def kept_by(latest: ModelCheckpoint | None) -> list[Path]:
    """The checkpoints `keep_last` kept in this run (its resumes included), oldest first: the callback's own list,
    never other files of the directory (a run resumed from an older checkpoint, or started again in the same
    directory, leaves later steps of the run before it there)."""
    if latest is None:
        return []
    kept = sorted(latest.best_k_models.items(), key=lambda item: float(item[1]))  # monitored: the step
    return [Path(path) for path, _ in kept if Path(path).is_file()]


def write_average(kept: list[Path], n: int, model_path: Path) -> list[Path]:
    """Write the average of the `n` latest of the `kept` checkpoints (oldest first) to `model_path`, say which,
    and return them: fewer when the run kept fewer (a budget too short for `n` validations), none when it kept
    none (then nothing is written). What it did is printed in the run's log."""
    kept = kept[-n:]
    if not kept:
        print("model.pt: the best checkpoint; the run kept no checkpoints of its latest validations to average")
        return []
    save_checkpoint(average_checkpoints(kept), model_path)
    short = f" (only {len(kept)} kept, not the {n} of average_last)" if len(kept) < n else ""
    print(f"model.pt: the average of the last {len(kept)} kept checkpoints{short}: {', '.join(p.name for p in kept)}")
    return kept
