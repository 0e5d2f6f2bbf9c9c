"""`TranslationModule` under a real Lightning Trainer: updates with non-finite gradients are skipped, then stop."""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from nmt.config import DecodeConfig, ModelConfig, OptimConfig
from nmt.data.batching import collate
from nmt.model import Transformer
from nmt.train.module import NonFiniteLossError, TranslationModule
from nmt.train.optim import parameter_groups

PAD, BOS, EOS, V = 0, 1, 2, 20


def make_module(max_bad_steps: int, dropout: float = 0.1) -> TranslationModule:
    torch.manual_seed(0)
    shape = ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=32, dropout=dropout)
    model = Transformer(shape, V, V, PAD)
    optim = OptimConfig(max_bad_steps=max_bad_steps, warmup_steps=2)
    # No tokenizer, references or metadata: they serve validation, which these runs do not reach.
    return TranslationModule(model, None, optim, DecodeConfig(beam_size=1), [], {}, max_steps=100)


def poison(module: TranslationModule, monkeypatch: pytest.MonkeyPatch, is_bad) -> None:
    """Make the model's forward return NaN logits on the calls (counted from 1) for which `is_bad(call)`."""
    forward, calls = module.model.forward, []

    def patched(src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        logits = forward(src, tgt_in)
        return logits * float("nan") if is_bad(len(calls)) else logits  # NaN, still part of the graph

    monkeypatch.setattr(module.model, "forward", patched)


def fit(module: TranslationModule, n_batches: int) -> None:
    batches = [collate([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]], PAD, BOS, EOS) for _ in range(n_batches)]
    fit_batches(module, batches, max_epochs=1, gradient_clip_val=1.0)


def fit_batches(module: TranslationModule, batches: list, **trainer_options) -> None:
    """Train on `batches` under a bare CPU Trainer (no logger, checkpoints, validation)."""
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_options,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(no `val_dataloader`|does not have many workers).*")
        trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))


def weights(module: TranslationModule) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.model.state_dict().items()}


def test_non_finite_steps_are_skipped_and_leave_weights_untouched(monkeypatch) -> None:
    module = make_module(max_bad_steps=10)
    poison(module, monkeypatch, lambda call: True)
    before = weights(module)
    fit(module, n_batches=4)
    assert module.bad_steps == 4
    after = weights(module)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_finite_step_resets_the_count_of_bad_steps(monkeypatch) -> None:
    module = make_module(max_bad_steps=2)
    poison(module, monkeypatch, lambda call: call % 2 == 1)  # bad, good, bad, good, ...: never 2 in a row
    before = weights(module)
    fit(module, n_batches=6)
    assert module.bad_steps == 0
    after = weights(module)
    assert not all(torch.equal(before[k], after[k]) for k in before)  # the good steps trained
    assert all(w.isfinite().all() for w in after.values())


def test_too_many_consecutive_non_finite_losses_stop_training(monkeypatch) -> None:
    module = make_module(max_bad_steps=3)
    poison(module, monkeypatch, lambda call: call >= 2)  # one good step, then NaN for good
    with pytest.raises(
        NonFiniteLossError, match=r"3 consecutive updates with non-finite gradients at step \d+; .*optim\.lr"
    ):
        fit(module, n_batches=10)
    assert module.bad_steps == 3


def gradients_of_one_update(batches: list, accumulate: int) -> dict[str, torch.Tensor]:
    """The gradients of the single update `batches` make (no clipping), as the optimizer saw them."""
    module = make_module(max_bad_steps=10, dropout=0.0)
    fit_batches(module, batches, max_steps=1, accumulate_grad_batches=accumulate)
    return {name: p.grad.clone() for name, p in module.model.named_parameters() if p.grad is not None}


def test_accumulated_batches_weigh_by_tokens_like_one_batch_holding_both() -> None:
    """A 2-token and a 7-token target accumulated into one update give the gradient of one batch of both:
    every target token weighs the same (a mean per micro-batch would weigh the short one's tokens 3.5x)."""
    short = ([[5, 6]], [[7]])
    long = ([[5, 6, 7, 8]], [[9, 10, 11, 12, 13, 14]])
    accumulated = gradients_of_one_update([collate(*short, PAD, BOS, EOS), collate(*long, PAD, BOS, EOS)], 2)
    union = collate(short[0] + long[0], short[1] + long[1], PAD, BOS, EOS)
    together = gradients_of_one_update([union], 1)
    assert accumulated.keys() == together.keys()
    for name in together:
        torch.testing.assert_close(accumulated[name], together[name], rtol=1e-4, atol=1e-7, msg=name)


def test_weight_decay_applies_to_weight_matrices_only() -> None:
    model = make_module(max_bad_steps=1).model
    decay, spared = parameter_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and spared["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert len(decay["params"]) + len(spared["params"]) == len(names)  # each parameter once (tied ones too)
    assert decayed and all(p.ndim == 2 for p in decay["params"])
    assert not any("embed" in name or "norm" in name or name.endswith("bias") for name in decayed), decayed
