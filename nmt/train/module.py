"""The LightningModule: a thin shell that adds loss, optimisation and validation BLEU to a `Transformer`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch

from nmt.compat import foreach_mul_, foreach_norm, skip_update_on_device
from nmt.config import AugmentConfig, DecodeConfig, OptimConfig
from nmt.data.augment import switchout
from nmt.data.batching import Batch
from nmt.data.tokenizer import Tokenizer
from nmt.decode.search import beam_search, greedy_search
from nmt.errors import UserError
from nmt.evaluate.metrics import score
from nmt.model import Transformer
from nmt.train.budget import TrainingClock
from nmt.train.loss import alignment_nll, label_smoothed_nll
from nmt.train.optim import build_optimizer


class NonFiniteLossError(UserError, RuntimeError):
    """Training produced too many consecutive updates with non-finite gradients."""


class TokenizerMismatchError(UserError, RuntimeError):
    """The ranks of a distributed run would train with different tokenizers."""


class TranslationModule(L.LightningModule):
    """Trains `model` with label-smoothed cross-entropy; validates with loss, BLEU and chrF.

    Args:
        model: the network (plain PyTorch).
        tokenizer: decodes validation hypotheses back to text for BLEU.
        optim: optimizer, schedule and loss settings.
        decode: search settings for validation BLEU (greedy when beam_size is 1).
        valid_refs: detokenized validation references, indexed like the validation set.
        metadata: the checkpoint's `nmt` entry (see `nmt.checkpoint.metadata`).
        max_steps: total optimizer steps (for the linear schedule by steps).
        val_samples: sample translations printed at each validation.
        compile: run the teacher-forcing forward of training and validation through
            `torch.compile(model, dynamic=True)`: it is most of the step's work, and batches vary in B and T,
            so static shapes would recompile for most new batch shapes. Beam search uses the plain model,
            and the compiled wrapper is no submodule, so `state_dict` keys and checkpoints stay the same.
        clock: the run's training clock, which checkpoints save and a resume restores (a new one if None).
        progress: the share of the time budget spent, which the learning rate follows with
            `optim.schedule_by=time` (`nmt.train.budget.TimeBudget.progress`).
        augment: augmentation of the training batches (`nmt.data.augment`), drawn from `seed` and the epoch
            (synonyms are put in by the data module, before the batch reaches the device).
    """

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        optim: OptimConfig,
        decode: DecodeConfig,
        valid_refs: list[str],
        metadata: dict[str, Any],
        max_steps: int,
        val_samples: int = 3,
        compile: bool = False,
        clock: TrainingClock | None = None,
        progress: Callable[[], float] | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.augment, self.seed = augment or AugmentConfig(), seed
        self.model = model
        self.tokenizer = tokenizer
        self.optim = optim
        self.decode = decode
        self.valid_refs = valid_refs
        self.metadata = metadata
        self.max_steps = max_steps
        self.val_samples = val_samples
        # object.__setattr__: not registered as a submodule (the same weights would appear twice in state_dict).
        object.__setattr__(self, "_teacher_forcing", torch.compile(model, dynamic=True) if compile else model)
        # Updates skipped for non-finite gradients, device tensors after the first update (read on the host only
        # by `_check_skips`): consecutive ones, and all of them since the last check.
        self._consecutive_skips: torch.Tensor | int = 0
        self._skips_since_check: torch.Tensor | int = 0
        self._update_tokens = 0  # target tokens of the micro-batches of the current update, on this rank
        self._hyps: dict[int, str] = {}
        self.clock = clock or TrainingClock()  # wall seconds of training, across resumes
        self._validation_start = 0.0  # the clock when the current validation began
        self.progress = progress

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """The summed loss of this micro-batch; `configure_gradient_clipping` divides the gradients by the
        token count of every micro-batch of the update on every rank (fairseq's normalisation), so long
        and short batches, accumulated batches and ranks all weigh by their tokens.

        Nothing here reads a device value on the host (a sync that stalls the GPU queue): the token count
        comes from the batch, and a non-finite loss is logged as it is."""
        if self.augment.switchout > 0:
            sizes = (self.tokenizer.src_vocab_size, self.tokenizer.tgt_vocab_size)
            batch = switchout(batch, self.augment.switchout, self.seed, self.current_epoch, sizes)
        if self.optim.align_weight > 0:  # guided alignment: one layer's cross-attention against the word links
            logits, attn = self._teacher_forcing(batch.src, batch.tgt_in, True, self.optim.align_layer)
        else:
            logits, attn = self._teacher_forcing(batch.src, batch.tgt_in), None  # [B, T, V]
        loss_sum, nll_sum, _ = label_smoothed_nll(logits, batch.tgt_out, self.optim.label_smoothing, self.model.pad_id)
        if attn is not None and batch.align is not None:
            align_sum = alignment_nll(attn, batch.align)
            self.log("train/align", align_sum / batch.tgt_tokens, batch_size=batch.src.size(0))
            loss_sum = loss_sum + self.optim.align_weight * align_sum
        self._update_tokens += batch.tgt_tokens
        self._log_train(loss_sum / batch.tgt_tokens, nll_sum / batch.tgt_tokens, batch)
        # A non-finite loss is still returned: every rank must run backward (DDP all-reduces inside it),
        # and the NaN gradients it gives make every rank skip this update together.
        return loss_sum

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Normalise the gradients by the update's tokens, skip the update if any is non-finite, and clip them,
        with one norm and one multiply over the gradients (Lightning calls this before every optimizer step).

        Lightning divided the loss by `accumulate_grad_batches` and DDP averaged over ranks, so the
        gradients hold sum / (A * W); multiplying by A * W / (tokens of all micro-batches on all ranks)
        gives the per-token gradient of the whole update. Gradients are identical on all ranks after the
        all-reduce, so all ranks take the same decision. Clipping is by the total norm (`gradient_clip_val`).

        Under fp16 (`16-mixed`) the GradScaler has unscaled the gradients already; it skips an update that
        overflowed and halves its scale, which is how it finds its scale, so such updates are no bad steps:
        a scale that falls below `optim.fp16_min_scale` ends the run instead (fairseq's `--min-loss-scale`).
        """
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        # torch.full fills on the device; torch.tensor would copy from the host, which waits for the GPU.
        tokens = self.trainer.strategy.reduce(
            torch.full((), float(self._update_tokens), device=self.device), reduce_op="sum"
        )
        self._update_tokens = 0
        scale = self.trainer.accumulate_grad_batches * self.trainer.world_size / tokens.clamp(min=1.0)
        norm = torch.linalg.vector_norm(torch.stack(foreach_norm(grads))) * scale  # of the scaled gradients
        scaler = self._loss_scaler
        if scaler is not None:
            if self._is_check_step():
                self._check_loss_scale(scaler)
        elif self._skip_if_non_finite(optimizer, norm):
            return
        if gradient_clip_val:  # as torch.nn.utils.clip_grad_norm_
            scale = scale * (gradient_clip_val / (norm + 1e-6)).clamp(max=1.0)
        foreach_mul_(grads, scale)  # NaN if the norm is: harmless, the update is skipped

    @property
    def _loss_scaler(self) -> torch.amp.GradScaler | None:
        """The fp16 GradScaler of the trainer's precision plugin, if there is one."""
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def _is_check_step(self) -> bool:
        """Whether this update is one whose counters are read on the host (Lightning syncs to log then anyway)."""
        return (self.global_step + 1) % max(self.trainer.log_every_n_steps, 1) == 0

    def _check_loss_scale(self, scaler: torch.amp.GradScaler) -> None:
        """Stop when the fp16 loss scale has fallen below `optim.fp16_min_scale` (reads the device)."""
        loss_scale = scaler.get_scale()
        if loss_scale < self.optim.fp16_min_scale:
            raise NonFiniteLossError(
                f"the fp16 loss scale fell to {loss_scale:g}, below optim.fp16_min_scale "
                f"({self.optim.fp16_min_scale:g}), by step {self.global_step}: the gradients overflow at any scale; "
                "lower optim.lr, raise optim.warmup_steps, or train with trainer.precision=bf16-mixed or 32."
            )

    def _skip_if_non_finite(self, optimizer: torch.optim.Optimizer, norm: torch.Tensor) -> bool:
        """Have `optimizer` skip this update if `norm` is non-finite (a NaN or inf in any gradient makes it so).

        A fused optimizer skips on the device (see `nmt.compat.skip_update_on_device`), so no host sync
        decides it; the skips are counted on the device and checked every `log_every_n_steps` updates, when
        Lightning syncs to log anyway. Other optimizers are decided on the host and skip by dropping the
        gradients: then this returns True, and there is nothing left to clip.
        """
        found_inf = (~norm.isfinite()).float()  # []: 1.0 skip, 0.0 update
        self._count_skip(found_inf)
        if skip_update_on_device(getattr(optimizer, "optimizer", optimizer), found_inf):  # unwrap LightningOptimizer
            if self._is_check_step():
                self._check_skips()
            return False
        if not found_inf.item():  # a host sync
            return False
        optimizer.zero_grad(set_to_none=True)  # torch optimizers skip parameters without a gradient
        self._check_skips()
        return True

    def _count_skip(self, found_inf: torch.Tensor) -> None:
        """Add this update (`found_inf` 1.0: skipped, 0.0: made) to the skip counters, on the device."""
        self._consecutive_skips = (self._consecutive_skips + found_inf) * found_inf  # a finite update resets it
        self._skips_since_check = self._skips_since_check + found_inf

    @property
    def bad_steps(self) -> int:
        """Consecutive updates skipped for non-finite gradients, up to the last one (reads the device)."""
        return int(self._consecutive_skips)

    def _check_skips(self) -> None:
        """Warn about the updates skipped since the last check; stop after `max_bad_steps` in a row."""
        bad, skipped = self.bad_steps, int(self._skips_since_check)
        self._skips_since_check = 0
        if bad >= self.optim.max_bad_steps:
            raise NonFiniteLossError(
                f"{bad} consecutive updates with non-finite gradients at step {self.global_step}; "
                "lower optim.lr, raise optim.warmup_steps, or use precision=32."
            )
        if skipped:
            self.print(f"warning: {skipped} update(s) skipped for non-finite gradients by step {self.global_step}.")

    def _log_train(self, loss: torch.Tensor, nll: torch.Tensor, batch: Batch) -> None:
        """Log loss per token, perplexity and learning rate (tokens/s: see `nmt.train.throughput`)."""
        self.log("train/loss", loss, batch_size=batch.src.size(0))
        self.log("train/ppl", torch.exp(nll.clamp(max=50.0)), batch_size=batch.src.size(0))
        lr = self.optimizers().param_groups[0]["lr"]
        # A float would be copied to the device by `log` (a sync); torch.full fills it there.
        self.log("lr", torch.full((), lr, device=self.device), batch_size=1)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self._teacher_forcing(batch.src, batch.tgt_in)  # [B, T, V]
        loss_sum, nll_sum, _ = label_smoothed_nll(logits, batch.tgt_out, self.optim.label_smoothing, self.model.pad_id)
        n_tokens = batch.tgt_tokens
        self.log("val/loss", loss_sum / n_tokens, batch_size=n_tokens, sync_dist=True)
        self.log("val/nll", nll_sum / n_tokens, batch_size=n_tokens, sync_dist=True)
        src_pad_mask = batch.src.eq(self.model.pad_id)
        search = greedy_search if self.decode.beam_size == 1 else beam_search
        result = search(self.model, batch.src, src_pad_mask, self.decode, self._bos, self._eos)
        for index, nbest in zip(batch.index.tolist(), result.tokens, strict=True):
            # Every hypothesis of a sentence can end at -inf (min_len and n-gram blocking together): no text.
            self._hyps[index] = self.tokenizer.decode_tgt(nbest[0]) if nbest else ""

    def on_fit_start(self) -> None:
        """Refuse to train when the ranks hold different tokenizers (each node prepared its own corpus, say):
        their token ids would mean different pieces, and DDP would average gradients across them."""
        if self.trainer.world_size == 1:
            return
        fingerprints = gather_objects(self.tokenizer.fingerprint)
        if len(set(fingerprints)) > 1:
            ranks = ", ".join(f"rank {rank}: {fp[:12]}" for rank, fp in enumerate(fingerprints))
            raise TokenizerMismatchError(
                f"the ranks of this run hold different tokenizers ({ranks}); prepare the corpus once with "
                "nmt-prepare on a shared file system and train every rank on it with data.prepared=DIR."
            )

    def on_train_start(self) -> None:
        self.clock.start()

    def on_train_end(self) -> None:
        self._check_skips()  # the updates since the last periodic check

    def on_validation_epoch_start(self) -> None:
        self._hyps = {}
        self._validation_start = self.clock.elapsed()

    def on_validation_epoch_end(self) -> None:
        """Score the decoded validation set with sacreBLEU (detokenized text, signature logged).

        Each rank decoded its share; the hypotheses are gathered, so every rank logs the same BLEU.
        """
        self._hyps = gather_dicts(self._hyps)
        if len(self._hyps) != len(self.valid_refs):  # sanity-check run decodes only a few batches
            return
        hyps = [self._hyps[i] for i in range(len(self.valid_refs))]
        bleu, chrf = score(hyps, [self.valid_refs], metrics=("bleu", "chrf"), tgt_lang=self._tgt_lang)
        self.log("val/bleu", bleu.value, prog_bar=True, batch_size=1, sync_dist=True)  # equal on all ranks
        self.log("val/chrf", chrf.value, batch_size=1, sync_dist=True)
        elapsed = self.clock.elapsed()
        self.log("val/elapsed_s", elapsed, batch_size=1, sync_dist=True)  # for BLEU-vs-time plots
        # The validation's own share of the time (loss, search, scoring), which a time budget counts too.
        self.log("val/seconds", elapsed - self._validation_start, batch_size=1, sync_dist=True)
        self.print(f"\nstep {self.global_step}: valid BLEU {bleu.value:.2f} chrF {chrf.value:.2f} ({bleu.signature})")
        for i in range(min(self.val_samples, len(hyps))):
            self.print(f"  ref: {self.valid_refs[i]}\n  hyp: {hyps[i]}")

    @property
    def _bos(self) -> int:
        return self.metadata["special_ids"]["bos"]

    @property
    def _eos(self) -> int:
        return self.metadata["special_ids"]["eos"]

    @property
    def _tgt_lang(self) -> str:
        return self.metadata["tgt_lang"]

    def configure_optimizers(self) -> dict[str, Any]:
        """The optimizer, fused unless a GradScaler (16-mixed) is in charge: it would not unscale the
        gradients of a fused optimizer before `configure_gradient_clipping`, and clipping needs them unscaled."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        allow_fused = scaler is None
        return build_optimizer(self.model, self.optim, self.max_steps, allow_fused, progress=self.progress)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nmt"] = self.metadata
        checkpoint["elapsed_s"] = self.clock.elapsed()
        # Lightning does not save random states; dropout draws from them, so a resumed run needs them to continue
        # exactly as an uninterrupted one would: every rank's own (rank 0 writes the file; this runs on all).
        checkpoint["rng"] = gather_objects(self._rng_state())

    def _rng_state(self) -> dict[str, torch.Tensor]:
        """This process's generators: the CPU one and, on a GPU, that GPU's (not every visible one's)."""
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.clock.restore(float(checkpoint.get("elapsed_s", 0.0)))
        states = checkpoint.get("rng", {})
        # One state per rank; older checkpoints hold rank 0's only. `nmt.train.resume` refuses another world size.
        rng = states[self.global_rank] if isinstance(states, list) else states
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        # Lightning loads the checkpoint before it moves the module to its device: restore to the device it trains on.
        device = self.trainer.strategy.root_device
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)


def gather_objects(local: Any) -> list[Any]:
    """Every rank's `local`, in rank order (`[local]` when not distributed)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [local]
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, local)
    return parts


def gather_dicts(local: dict[int, str]) -> dict[int, str]:
    """The union of every rank's dict (the dict itself when not distributed)."""
    return {k: v for part in gather_objects(local) for k, v in part.items()}
