"""`TranslationModule` under a real Lightning Trainer: updates with non-finite gradients are skipped, then stop;
a training step reads nothing back from the device; a compiled forward trains as the eager one."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins import MixedPrecision
from torch.utils.data import DataLoader
from train_helpers import BOS, EOS, PAD, HostReads, make_module, random_batches

from nmt.config import OptimConfig, TrainConfig, TrainerConfig
from nmt.data.batching import collate
from nmt.train.module import NonFiniteLossError, TokenizerMismatchError, TranslationModule
from nmt.train.optim import parameter_groups
from nmt.train.run import build_trainer


def poison(module: TranslationModule, monkeypatch: pytest.MonkeyPatch, is_bad) -> list[int]:
    """Make the model's forward return NaN logits on the calls (counted from 1) for which `is_bad(call)`;
    returns the list that gets one entry per call."""
    forward, calls = module.model.forward, []

    def patched(src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        logits = forward(src, tgt_in)
        return logits * float("nan") if is_bad(len(calls)) else logits  # NaN, still part of the graph

    monkeypatch.setattr(module.model, "forward", patched)
    return calls


def fit(module: TranslationModule, n_batches: int, **trainer_options) -> None:
    batches = [collate([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]], PAD, BOS, EOS) for _ in range(n_batches)]
    fit_batches(module, batches, max_epochs=1, gradient_clip_val=1.0, **trainer_options)


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
        fit(module, n_batches=10, log_every_n_steps=1)  # skips are checked after every update
    assert module.bad_steps == 3


@pytest.mark.parametrize(("log_every", "calls_made", "bad"), [(5, 5, 4), (50, 10, 9)])
def test_consecutive_skips_stop_training_at_the_next_check(monkeypatch, log_every, calls_made, bad) -> None:
    """Skips are read on the host every `log_every_n_steps` updates and at the end of training: the third
    NaN update in a row (update 4) stops the run at update 5, or at the end when no check comes before."""
    module = make_module(max_bad_steps=3)
    calls = poison(module, monkeypatch, lambda call: call >= 2)
    with pytest.raises(NonFiniteLossError, match=f"{bad} consecutive updates with non-finite gradients"):
        fit(module, n_batches=10, log_every_n_steps=log_every)
    assert len(calls) == calls_made
    assert module.bad_steps == bad


class Snapshots(Callback):
    """The weights and the Adam state after every training batch."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []
        self.adam: list[list[dict[str, torch.Tensor]]] = []

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *_) -> None:
        self.weights.append(weights(module))
        state = trainer.optimizers[0].state
        self.adam.append([{k: v.clone() for k, v in state[p].items()} for p in module.model.parameters()])


def same_adam_state(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return all(
        sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa) for sa, sb in zip(a, b, strict=True)
    )


def test_fused_optimizer_skips_a_nan_update_on_the_device_leaving_weights_and_adam_state(monkeypatch) -> None:
    """Update 2 has NaN gradients: the fused AdamW leaves the weights, exp_avg, exp_avg_sq and step as update 1
    left them (the step count is taken back); update 3 is finite and changes them all."""
    module = make_module(max_bad_steps=10)
    poison(module, monkeypatch, lambda call: call == 2)
    snapshots = Snapshots()
    fit(module, n_batches=3, callbacks=[snapshots])
    assert module.trainer.optimizers[0].defaults["fused"]
    (w1, w2, w3), (s1, s2, s3) = snapshots.weights, snapshots.adam
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert same_adam_state(s1, s2) and all(s["step"] == 1 for s in s2)
    assert all(not torch.equal(w2[k], w3[k]) for k in w2)
    assert all(s["step"] == 2 and not torch.equal(s["exp_avg"], t["exp_avg"]) for s, t in zip(s3, s2, strict=True))


def test_training_steps_read_the_device_only_to_check_skips(monkeypatch) -> None:
    """Across `training_step` and `configure_gradient_clipping`, an update reads nothing back from the device,
    except every `log_every_n_steps`-th (3rd here), which checks the skip counters. The first update is left
    out: Lightning makes the state of each logged metric from Python numbers there, once."""
    module = make_module(max_bad_steps=10)
    reads: list[int] = []

    def counted(method, new_update: bool):
        def run(*args, **kwargs):
            with HostReads() as mode:
                result = method(*args, **kwargs)
            if new_update:
                reads.append(0)
            reads[-1] += mode.count
            return result

        return run

    monkeypatch.setattr(module, "training_step", counted(module.training_step, True))
    monkeypatch.setattr(module, "configure_gradient_clipping", counted(module.configure_gradient_clipping, False))
    fit(module, n_batches=7, log_every_n_steps=3)
    assert [n > 0 for n in reads[1:]] == [False, True, False, False, True, False], reads


class Losses(Callback):
    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, *_) -> None:
        self.losses.append(outputs["loss"].detach().clone())


def test_compiled_forward_trains_as_the_eager_one_and_keeps_the_state_dict_keys() -> None:
    """Three updates on batches of three shapes: the same losses as eager, the later ones after updates through
    the compiled backward. B and T vary but are never 1, and S != T, all of which dynamo would specialise on
    (recompiling): the test pays one compilation, about a minute on 2 CPU cores with a cold inductor cache."""
    pairs = [
        ([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14, 15]]),
        ([[5, 6]] * 3, [[7]] * 3),
        ([[5, 6, 7, 8]] * 4, [[9] * 6] * 4),
    ]
    results = {}
    for compiled in (False, True):
        module, losses = make_module(max_bad_steps=10, dropout=0.0, compile=compiled), Losses()
        fit_batches(module, [collate(*p, PAD, BOS, EOS) for p in pairs], max_epochs=1, callbacks=[losses])
        results[compiled] = module, torch.stack(losses.losses)
    (eager, eager_losses), (compiled, compiled_losses) = results[False], results[True]
    assert type(compiled._teacher_forcing).__name__ == "OptimizedModule"
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=0, atol=1e-5)


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


def fp16(init_scale: float) -> MixedPrecision:
    """16-mixed on the CPU (Lightning itself would substitute bf16 there), with a GradScaler from `init_scale`."""
    return MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu", init_scale=init_scale))


def test_fp16_updates_the_scaler_skips_while_its_scale_settles_are_no_bad_steps() -> None:
    """Lightning's GradScaler starts at 2^16, where the gradients of a summed loss overflow fp16: the scaler skips
    those updates and halves its scale, which is how it finds its scale. More of them than `max_bad_steps` must
    not stop the run, and from a sane scale (nmt's default, 128) no update overflows at all."""
    module, precision = make_module(max_bad_steps=3), fp16(2.0**16)
    fit_batches(
        module, random_batches(12), max_epochs=1, gradient_clip_val=1.0, log_every_n_steps=1, plugins=[precision]
    )
    assert precision.scaler.get_scale() <= 2.0**16 / 2**4  # at least 4 updates overflowed and were skipped
    module, precision = make_module(max_bad_steps=3), fp16(OptimConfig().fp16_init_scale)
    before = weights(module)
    fit_batches(module, random_batches(1), max_epochs=1, gradient_clip_val=1.0, plugins=[precision])
    assert precision.scaler.get_scale() == OptimConfig().fp16_init_scale
    assert all(not torch.equal(before[k], v) for k, v in weights(module).items() if "norm" not in k)


def test_fp16_stops_once_the_loss_scale_falls_below_its_minimum(monkeypatch) -> None:
    """A loss that is NaN whatever the scale makes the scaler halve it at every update; below
    `optim.fp16_min_scale` the run ends with a message naming the option (fairseq's --min-loss-scale)."""
    module = make_module(max_bad_steps=3, fp16_min_scale=16.0)
    poison(module, monkeypatch, lambda call: True)
    with pytest.raises(NonFiniteLossError, match=r"loss scale fell to 8, below optim.fp16_min_scale \(16\)"):
        fit(module, n_batches=8, log_every_n_steps=1, plugins=[fp16(128.0)])


def test_the_trainer_runs_16_mixed_with_the_configured_initial_scale(tmp_path) -> None:
    """`trainer.precision=16-mixed` is fp16 with nmt's scaler, also on the CPU (Lightning would switch to bf16)."""
    cfg = TrainConfig(run_dir=str(tmp_path), trainer=TrainerConfig(precision="16-mixed", progress_bar=False))
    trainer = build_trainer(cfg, [])
    assert trainer.precision == "16-mixed"
    assert trainer.precision_plugin.scaler.get_scale() == cfg.optim.fp16_init_scale == 128.0


def test_ranks_with_different_tokenizers_are_refused_before_training(monkeypatch) -> None:
    module = make_module(max_bad_steps=3)
    module.tokenizer = SimpleNamespace(fingerprint="a" * 64)
    monkeypatch.setattr("nmt.train.module.gather_objects", lambda local: [local, "b" * 64])  # rank 1's differs
    trainer = SimpleNamespace(world_size=2)
    monkeypatch.setattr(TranslationModule, "trainer", property(lambda self: trainer))
    with pytest.raises(TokenizerMismatchError, match="rank 0: aaaaaaaaaaaa, rank 1: bbbbbbbbbbbb"):
        module.on_fit_start()
    monkeypatch.setattr("nmt.train.module.gather_objects", lambda local: [local, local])
    module.on_fit_start()  # the same tokenizer everywhere: no complaint
