"""Fine-tuning (`init_from`): the trained weights, shape and tokenizer of the model, a fresh optimizer and count."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import train_config

from nmt.checkpoint import CheckpointError, load_checkpoint


class FirstWeights(L.Callback):
    """Records the model's weights when training starts."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.weights = {k: v.detach().clone() for k, v in module.model.state_dict().items()}


def test_fine_tuning_starts_from_the_weights_with_their_tokenizer(model_path, spm_cache, tmp_path, capsys) -> None:
    from nmt.train.run import train

    init = load_checkpoint(model_path)
    first = FirstWeights()
    options = [f"init_from={model_path}", "model=small", "data.builtin_train_size=600"]
    options += ["trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.num_threads=1"]
    cfg = train_config(tmp_path / "tuned", spm_cache, options)
    result = train(cfg, callbacks=[first])
    assert "fine-tuning" in capsys.readouterr().err  # progress goes to stderr
    assert set(first.weights) == set(init.state_dict)
    assert all(torch.equal(first.weights[k], init.state_dict[k]) for k in init.state_dict)
    tuned = load_checkpoint(result.model_path)
    assert tuned.tokenizer == init.tokenizer  # the checkpoint's tokenizer, not one trained on the new data
    assert tuned.model_config == init.model_config  # model=small on the command line yields to the checkpoint
    assert tuned.step == 3  # a fresh step count (and schedule), not the checkpoint's
    assert not all(torch.equal(tuned.state_dict[k], init.state_dict[k]) for k in init.state_dict)


def test_fine_tuning_from_a_missing_checkpoint_is_refused_before_any_work(spm_cache, tmp_path) -> None:
    from nmt.train.run import train

    cfg = train_config(tmp_path / "run", spm_cache, [f"init_from={tmp_path / 'missing.pt'}"])
    with pytest.raises(CheckpointError, match="missing.pt does not exist"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
