"""`train(cfg)`: prepare data, build the model, fit with Lightning, export the best checkpoint."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn

from nmt.atomic import atomic_write_bytes
from nmt.checkpoint import check_training_checkpoint, export_checkpoint, metadata, read_raw, save_checkpoint
from nmt.config import TrainConfig
from nmt.data.prepare import PreparedData, prepare_data
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.device import set_threads
from nmt.model import Transformer
from nmt.train.datamodule import TranslationDataModule
from nmt.train.memory import TrimHeap
from nmt.train.module import TranslationModule
from nmt.train.throughput import Throughput


@dataclass
class TrainResult:
    """Where the run left its products."""

    best_checkpoint: str
    best_bleu: float | None
    model_path: str  # slim export of the best checkpoint (weights + metadata)
    steps: int
    throughput: dict[str, float]  # see `Throughput.summary`


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file and renamed (a kill never leaves a torn `last.ckpt`),
    and read back with `weights_only=True` (no pickled code runs on resume)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        raw = read_raw(path)
        check_training_checkpoint(raw, path)  # Lightning reads files only to resume
        return raw


class CheckpointEveryValidation(ModelCheckpoint):
    """Top-k checkpoints by the monitored metric, and `last.ckpt` refreshed at every validation.

    Lightning (2.6) rewrites `last.ckpt` only when a top-k checkpoint is saved, so while
    BLEU plateaus a kill would lose every step since the last improvement.
    """

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if fitting and self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def build_module(cfg: TrainConfig, data: PreparedData) -> TranslationModule:
    """The model wrapped in its LightningModule, with the metadata every checkpoint carries."""
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
        model, tok, cfg.optim, cfg.decode, data.valid_refs, meta, cfg.trainer.max_steps, cfg.val_samples
    )


def build_trainer(cfg: TrainConfig, callbacks: list[Callback]) -> L.Trainer:
    """A Lightning Trainer from `cfg.trainer`, logging and checkpointing under `cfg.run_dir`."""
    t = cfg.trainer
    callbacks = list(callbacks)
    if cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStopping("val/bleu", mode="max", patience=cfg.early_stopping_patience))
    logger: Logger = (
        TensorBoardLogger(cfg.run_dir, name="logs", version="")
        if cfg.logger == "tensorboard"
        else CSVLogger(cfg.run_dir, name="logs", version="")
    )
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=t.precision,
        max_steps=t.max_steps,
        max_epochs=t.max_epochs,
        max_time=t.max_time,
        gradient_clip_val=t.gradient_clip_val or None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=None,  # validate every `val_check_interval` batches, across epochs
        log_every_n_steps=t.log_every_n_steps,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=logger,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # TokenBatchSampler shards by rank itself
        default_root_dir=cfg.run_dir,
        enable_model_summary=False,
        enable_progress_bar=t.progress_bar,
    )


def resolve_resume(resume: str | None, checkpoint_dir: Path) -> str | None:
    """`last` means this run directory's `checkpoints/last.ckpt`; anything else is a path."""
    if resume is None:
        return None
    path = checkpoint_dir / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        hint = " (resume=last looks in this run's directory: set hydra.run.dir to the earlier run)"
        raise FileNotFoundError(f"resume checkpoint {path} does not exist{hint if resume == 'last' else ''}.")
    return str(path)


def save_tokenizer(models: dict[str, bytes], directory: Path) -> None:
    """Write the SentencePiece models (`joint.model` or `src.model` + `tgt.model`) for use outside nmt."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, proto in models.items():
        atomic_write_bytes(directory / f"{name}.model", proto)


def train(cfg: TrainConfig) -> TrainResult:
    """Train a model as `cfg` says; return the best checkpoint and its validation BLEU."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    threads = set_threads(cfg.trainer.num_threads)
    checkpoint_dir = Path(cfg.run_dir) / "checkpoints"
    resume = resolve_resume(cfg.resume, checkpoint_dir)  # a missing checkpoint fails before data preparation
    data = prepare_data(cfg.data, cfg.tokenizer)
    print(f"data: {len(data.train)} training pairs kept ({data.filter_stats}); {len(data.valid)} validation pairs")
    module = build_module(cfg, data)
    print(f"model: {module.model.param_count():,} parameters; {threads} CPU threads; run dir {cfg.run_dir}")
    datamodule = TranslationDataModule(data.train, data.valid, cfg.data.max_tokens, cfg.seed)
    checkpoints = CheckpointEveryValidation(
        dirpath=checkpoint_dir,
        filename="step{step:06d}-bleu{val/bleu:.2f}",
        monitor="val/bleu",
        mode="max",
        save_top_k=cfg.save_top_k,
        save_last=True,
        auto_insert_metric_name=False,
    )
    throughput = Throughput(PAD_ID)
    callbacks: list[Callback] = [checkpoints, throughput]
    if cfg.trainer.accelerator == "cpu":
        callbacks.append(TrimHeap())
    trainer = build_trainer(cfg, callbacks)
    with warnings.catch_warnings():
        # Our datamodule restores the position inside the epoch; Lightning cannot see that and warns.
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    best = checkpoints.best_model_path or str(checkpoint_dir / "last.ckpt")
    model_path = Path(cfg.run_dir) / "model.pt"
    if trainer.is_global_zero and Path(best).is_file():
        export_checkpoint(best, model_path)
        save_tokenizer(data.tokenizer.to_bytes(), Path(cfg.run_dir) / "tokenizer")
    score = checkpoints.best_model_score
    bleu = None if score is None else float(score)
    return TrainResult(best, bleu, str(model_path), trainer.global_step, throughput.summary())
