"""The LightningModule: a thin shell that adds loss, optimisation and validation BLEU to a `Transformer`."""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import lightning as L
import torch

from nmt.checkpoint import check_resumable
from nmt.config import DecodeConfig, OptimConfig
from nmt.data.batching import Batch
from nmt.data.tokenizer import Tokenizer
from nmt.decode.search import beam_search, greedy_search
from nmt.evaluate.metrics import score
from nmt.model import Transformer
from nmt.train.loss import label_smoothed_nll
from nmt.train.schedule import inverse_sqrt, linear_warmup_decay


class NonFiniteLossError(RuntimeError):
    """Training produced too many consecutive non-finite losses."""


class TranslationModule(L.LightningModule):
    """Trains `model` with label-smoothed cross-entropy; validates with loss, BLEU and chrF.

    Args:
        model: the network (plain PyTorch).
        tokenizer: decodes validation hypotheses back to text for BLEU.
        optim: optimizer, schedule and loss settings.
        decode: search settings for validation BLEU (greedy when beam_size is 1).
        valid_refs: detokenized validation references, indexed like the validation set.
        metadata: the checkpoint's `nmt` entry (see `nmt.checkpoint.metadata`).
        max_steps: total optimizer steps (for the linear schedule).
        val_samples: sample translations printed at each validation.
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
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.optim = optim
        self.decode = decode
        self.valid_refs = valid_refs
        self.metadata = metadata
        self.max_steps = max_steps
        self.val_samples = val_samples
        self.bad_steps = 0
        self._hyps: dict[int, str] = {}
        self._train_start = time.perf_counter()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        logits = self.model(batch.src, batch.tgt_in)  # [B, T, V]
        loss_sum, nll_sum, n_tokens = label_smoothed_nll(
            logits, batch.tgt_out, self.optim.label_smoothing, self.model.pad_id
        )
        loss = loss_sum / n_tokens
        if not torch.isfinite(loss):
            return self._skip_non_finite(loss)
        self.bad_steps = 0
        self._log_train(loss, nll_sum / n_tokens, batch)
        return loss

    def _skip_non_finite(self, loss: torch.Tensor) -> None:
        """Skip this step (Lightning skips when training_step returns None); stop after too many."""
        self.bad_steps += 1
        if self.bad_steps >= self.optim.max_bad_steps:
            raise NonFiniteLossError(
                f"{self.bad_steps} consecutive non-finite losses (last: {loss.item()}) at step "
                f"{self.global_step}; lower optim.lr, raise optim.warmup_steps, or use precision=32."
            )
        self.print(f"warning: non-finite loss {loss.item()} at step {self.global_step}; step skipped.")
        return None

    def _log_train(self, loss: torch.Tensor, nll: torch.Tensor, batch: Batch) -> None:
        """Log loss per token, perplexity and learning rate (tokens/s: see `nmt.train.throughput`)."""
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.src.size(0))
        self.log("train/ppl", math.exp(min(nll.item(), 50.0)), batch_size=batch.src.size(0))
        self.log("lr", self.optimizers().param_groups[0]["lr"], prog_bar=True, batch_size=1)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self.model(batch.src, batch.tgt_in)
        loss_sum, nll_sum, n_tokens = label_smoothed_nll(
            logits, batch.tgt_out, self.optim.label_smoothing, self.model.pad_id
        )
        self.log("val/loss", loss_sum / n_tokens, batch_size=n_tokens, reduce_fx="mean")
        self.log("val/nll", nll_sum / n_tokens, batch_size=n_tokens)
        src_pad_mask = batch.src.eq(self.model.pad_id)
        search = greedy_search if self.decode.beam_size == 1 else beam_search
        result = search(self.model, batch.src, src_pad_mask, self.decode, self._bos, self._eos)
        for index, nbest in zip(batch.index.tolist(), result.tokens, strict=True):
            self._hyps[index] = self.tokenizer.decode_tgt(nbest[0])

    def on_train_start(self) -> None:
        self._train_start = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        self._hyps = {}

    def on_validation_epoch_end(self) -> None:
        """Score the decoded validation set with sacreBLEU (detokenized text, signature logged)."""
        if len(self._hyps) != len(self.valid_refs):  # sanity-check run decodes only a few batches
            return
        hyps = [self._hyps[i] for i in range(len(self.valid_refs))]
        bleu, chrf = score(hyps, [self.valid_refs], metrics=("bleu", "chrf"), tgt_lang=self._tgt_lang)
        self.log("val/bleu", bleu.value, prog_bar=True, batch_size=1)
        self.log("val/chrf", chrf.value, batch_size=1)
        self.log("val/elapsed_s", time.perf_counter() - self._train_start, batch_size=1)  # for BLEU-vs-time plots
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
        cfg = self.optim
        optimizer_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = optimizer_class(
            self.model.parameters(),
            lr=cfg.lr,
            betas=tuple(cfg.betas),
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
        )
        if cfg.schedule == "inverse_sqrt":
            factor = functools.partial(inverse_sqrt, warmup=cfg.warmup_steps)
        else:
            factor = functools.partial(linear_warmup_decay, warmup=cfg.warmup_steps, total=self.max_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nmt"] = self.metadata
        # Lightning does not save the global RNG; dropout draws from it, so a resumed run needs it to
        # continue exactly as an uninterrupted one would.
        checkpoint["rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning calls this before it loads any weights: refuse another tokenizer, model or an export here,
        # on the dict it already read, with a message instead of a shape error deep in `load_state_dict`.
        check_resumable(checkpoint, self.trainer.ckpt_path, self.tokenizer.to_bytes(), self.model.cfg)
        rng = checkpoint.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
