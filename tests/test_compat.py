"""Each private PyTorch or Lightning API nmt uses (`nmt.compat`, `nmt.train.compat`) still does what nmt needs of
it in the installed versions: an upgrade that changes one fails here, by name."""

from __future__ import annotations

import warnings

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.nn import functional as F
from torch.utils.data import DataLoader
from train_helpers import make_module, random_batches

from nmt import compat
from nmt.train import compat as lightning_compat
from nmt.train.ema import DelayedEMA


def test_foreach_norm_and_mul_are_per_tensor_norms_and_an_in_place_product() -> None:
    tensors = [torch.randn(3, 4), torch.randn(5)]
    norms = compat.foreach_norm(tensors)
    assert all(torch.allclose(n, t.norm()) for n, t in zip(norms, tensors, strict=True))
    copies = [t.clone() for t in tensors]
    compat.foreach_mul_(copies, torch.tensor(2.5))
    assert all(torch.equal(c, t * 2.5) for c, t in zip(copies, tensors, strict=True))


def test_a_fused_optimizer_skips_the_step_the_device_marks_and_a_plain_one_is_left_alone() -> None:
    for fused, skip in ((True, 1.0), (True, 0.0), (False, 1.0)):
        weight = torch.nn.Parameter(torch.ones(4))
        optimizer = torch.optim.AdamW([weight], lr=0.1, fused=fused, foreach=not fused)
        weight.grad = torch.ones(4)
        handled = compat.skip_update_on_device(optimizer, torch.tensor(skip))
        optimizer.step()
        assert handled == fused
        assert torch.equal(weight.detach(), torch.ones(4)) == (fused and skip == 1.0)


def test_onednn_linear_is_f_linear() -> None:
    x, weight, bias = torch.randn(7, 16), torch.randn(8, 16), torch.randn(8)
    torch.testing.assert_close(compat.onednn_linear(x, weight, bias), F.linear(x, weight, bias))
    torch.testing.assert_close(compat.onednn_linear(x, weight, None), F.linear(x, weight))


class Probe(L.Callback):
    """Reads the Lightning internals at the end of update 3 of a 5-batch epoch."""

    def __init__(self, checkpoint: ModelCheckpoint, ema: DelayedEMA) -> None:
        self.checkpoint, self.ema, self.seen = checkpoint, ema, {}

    def on_train_batch_end(self, trainer: L.Trainer, *_: object) -> None:
        if trainer.global_step == 3:
            self.seen["done"] = lightning_compat.batches_done(trainer)
            self.seen["run"] = lightning_compat.batches_done_in_run(trainer)
            self.seen["ema"] = lightning_compat.average_begun(self.ema)
            lightning_compat.save_last_checkpoint(self.checkpoint, trainer)
            self.seen["saved"] = lightning_compat.last_saved_step(self.checkpoint)


def test_the_lightning_internals_nmt_reads_and_calls(tmp_path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    ema = DelayedEMA(0.5, start=2)
    probe = Probe(checkpoint, ema)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(save_top_k|checkpoint).*")
        callbacks = [checkpoint, ema, probe]
        trainer = L.Trainer(logger=False, enable_progress_bar=False, max_epochs=1, callbacks=callbacks)
        trainer.fit(make_module(3), DataLoader(random_batches(5, 2, 4), batch_size=None))
    # completed counts the batches before this one (Lightning increments it after on_train_batch_end)
    assert probe.seen == {"done": 2, "run": 3, "ema": True, "saved": 3}
    assert (tmp_path / "last.ckpt").is_file()
    writer = lightning_compat.CSVExperimentWriter(str(tmp_path / "logs"))
    assert writer.metrics_file_path.endswith("metrics.csv") and callable(writer._check_log_dir_exists)
