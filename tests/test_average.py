"""Checkpoint averaging: the element-wise mean, a model that translates like any other, clear refusals.

Uses the session's tiny model (`model_path`); odd checkpoints are perturbed or reshaped copies of it.
"""

from __future__ import annotations

import shutil

import lightning as L
import pytest
import torch
from conftest import perturbed_checkpoint, retokenized_checkpoint, train_config, untrained_checkpoint

from nmt.average import average_checkpoints, last_checkpoints
from nmt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nmt.cli import average
from nmt.config import AverageConfig, ConfigError, DataConfig, DecodeConfig, check
from nmt.data.sources import get_corpus
from nmt.decode.translator import Translator

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_average_is_the_element_wise_mean_of_the_weights(model_path, tmp_path) -> None:
    paths = [
        model_path,
        perturbed_checkpoint(model_path, tmp_path / "b.pt", 1),
        perturbed_checkpoint(model_path, tmp_path / "c.pt", 2),
    ]
    save_checkpoint(average_checkpoints(paths), tmp_path / "avg.pt")
    averaged = load_checkpoint(tmp_path / "avg.pt")
    members = [load_checkpoint(p).state_dict for p in paths]
    assert set(averaged.state_dict) == set(members[0])
    for name, weight in averaged.state_dict.items():
        expected = (members[0][name].double() + members[1][name].double() + members[2][name].double()) / 3
        assert weight.dtype == members[0][name].dtype
        assert torch.allclose(weight.double(), expected, atol=1e-6), name
    assert averaged.tokenizer == load_checkpoint(model_path).tokenizer


def test_a_model_averaged_with_itself_translates_as_it_does(model_path, tmp_path) -> None:
    save_checkpoint(average_checkpoints([model_path, model_path]), tmp_path / "self.pt")
    lines = get_corpus(DataConfig(), "test").src[:40]
    beam = DecodeConfig(beam_size=4)
    ours = Translator.from_checkpoint(model_path, beam, device="cpu").translate(lines)
    averaged = Translator.from_checkpoint(tmp_path / "self.pt", beam, device="cpu").translate(lines)
    assert [t.best for t in averaged] == [t.best for t in ours]


@pytest.mark.parametrize(
    ("odd", "message"),
    [(untrained_checkpoint, r"model_config ModelConfig\(.*d_model=16"), (retokenized_checkpoint, "another tokenizer")],
    ids=["other-shape", "other-tokenizer"],
)
def test_unlike_checkpoints_are_refused_naming_the_odd_one(model_path, tmp_path, odd, message) -> None:
    other = odd(model_path, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=rf"cannot average {other} with {model_path}: it has .*{message}"):
        average_checkpoints([model_path, other])


def test_a_run_keeps_its_latest_checkpoints_and_nmt_average_takes_the_last_n(spm_cache, tmp_path, capsys) -> None:
    from nmt.train.run import train

    run_dir = tmp_path / "run"
    options = ["trainer.max_steps=6", "trainer.val_check_interval=2", "keep_last=2", "trainer.num_threads=1"]
    train(train_config(run_dir, spm_cache, options))
    kept = last_checkpoints(run_dir, 2)
    assert [p.name for p in kept] == ["step000004.ckpt", "step000006.ckpt"]  # step 2's was dropped
    for stale in ("step000099.ckpt", "step000005.ckpt"):  # another run's, in a directory used before
        shutil.copy(kept[0], run_dir / "checkpoints" / stale)
    assert last_checkpoints(run_dir, 2) == kept
    assert not (run_dir / "checkpoints" / "step000002.ckpt").exists()
    with pytest.raises(CheckpointError, match=r"holds 2 checkpoints of the latest validations, not the 3 asked"):
        last_checkpoints(run_dir, 3)
    average.run(check(AverageConfig(run=str(run_dir), last=2, output=str(tmp_path / "avg.pt"))))
    assert "the mean of 2 checkpoints" in capsys.readouterr().out
    averaged = load_checkpoint(tmp_path / "avg.pt")
    assert averaged.step == 6
    (translation,) = Translator.from_checkpoint(tmp_path / "avg.pt", DecodeConfig(beam_size=1)).translate(["i see."])
    assert isinstance(translation.best, str)


def test_the_command_needs_either_checkpoints_or_a_run() -> None:
    for cfg in (AverageConfig(output="x.pt"), AverageConfig(ckpts=["a.pt"], run="r", output="x.pt")):
        with pytest.raises(ConfigError, match="give either `ckpts`"):
            check(cfg)


class StepWeights(L.Callback):
    """Records the model's weights after every update."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
        self.steps.append({k: v.detach().clone() for k, v in module.model.state_dict().items()})


def test_an_ema_of_the_weights_is_what_the_run_validates_and_exports(spm_cache, tmp_path) -> None:
    from nmt.train.run import train

    steps = StepWeights()
    options = ["trainer.max_steps=4", "trainer.val_check_interval=4", "ema_decay=0.5", "trainer.num_threads=1"]
    result = train(train_config(tmp_path / "ema", spm_cache, options), callbacks=[steps])
    assert len(steps.steps) == 4
    expected = steps.steps[0]  # the average starts as the first update's weights
    for weights in steps.steps[1:]:
        expected = {k: 0.5 * expected[k] + 0.5 * weights[k] for k in weights}
    exported = load_checkpoint(result.model_path).state_dict
    assert all(torch.allclose(exported[k], expected[k], atol=1e-6) for k in expected)
    assert not all(torch.equal(exported[k], steps.steps[-1][k]) for k in expected)  # not the last weights


def test_an_ema_begun_later_starts_from_that_updates_weights_and_validates_raw_weights_before(
    spm_cache, tmp_path
) -> None:
    from nmt.train.run import train

    steps = StepWeights()
    options = ["trainer.max_steps=4", "trainer.val_check_interval=2", "ema_decay=0.5", "ema_start=3", "keep_last=2"]
    result = train(train_config(tmp_path / "ema", spm_cache, [*options, "trainer.num_threads=1"]), callbacks=[steps])
    assert len(steps.steps) == 4
    checkpoints = tmp_path / "ema" / "checkpoints"
    before = load_checkpoint(checkpoints / "step000002.ckpt").state_dict  # validated before the average began
    assert all(torch.equal(before[k], steps.steps[1][k]) for k in before)  # the raw weights, not the initial ones
    expected = {k: 0.5 * steps.steps[2][k] + 0.5 * steps.steps[3][k] for k in before}  # begun at update 3
    final = load_checkpoint(checkpoints / "last.ckpt").state_dict
    assert all(torch.allclose(final[k], expected[k], atol=1e-6) for k in expected)
    assert not all(torch.equal(final[k], steps.steps[-1][k]) for k in expected)
    assert result.steps == 4


def test_ema_start_needs_an_ema() -> None:
    from nmt.config import TrainConfig

    with pytest.raises(ConfigError, match="`ema_start` must be >= 0, and set only with `ema_decay`"):
        check(TrainConfig(ema_start=100))
    check(TrainConfig(ema_start=100, ema_decay=0.999))


def test_a_finished_ema_run_keeps_its_raw_weights_to_continue_from(spm_cache, tmp_path) -> None:
    """The `last.ckpt` a run writes when it ends (after a validation between scheduled ones, as here at step 3)
    holds the average as its weights and the raw weights, which the optimizer's moments belong to, as the state a
    resumed run continues from."""
    from nmt.checkpoint import read_raw
    from nmt.train.run import train

    steps = StepWeights()
    options = ["trainer.max_steps=3", "trainer.val_check_interval=2", "ema_decay=0.5", "trainer.num_threads=1"]
    train(train_config(tmp_path / "ema", spm_cache, options), callbacks=[steps])
    last = read_raw(tmp_path / "ema" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 3
    raw = {k.removeprefix("model."): v for k, v in last["current_model_state"].items()}
    average = {k.removeprefix("model."): v for k, v in last["state_dict"].items()}
    assert all(torch.equal(raw[k], steps.steps[-1][k]) for k in steps.steps[-1])
    expected = {k: 0.5 * (0.5 * steps.steps[0][k] + 0.5 * steps.steps[1][k]) + 0.5 * steps.steps[2][k] for k in raw}
    assert all(torch.allclose(average[k], expected[k], atol=1e-6) for k in expected)
