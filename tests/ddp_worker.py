"""One rank of a 2-process DDP training run on CPU (gloo), started by `torch.distributed.run` from
`launch_two_ranks` (train_helpers.py).

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py RUN_DIR CACHE OUT [OVERRIDES...]

Trains through `nmt.train.run.train` (Lightning's DDP strategy, which finds torchrun's environment) and
writes `OUT/rank{R}.pt`: the pair indices of each training and validation batch this rank read, and the
model weights after every update. `poison_step=N` in the overrides makes rank 1's loss NaN at update N.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning as L
import torch
from conftest import train_config
from lightning.pytorch.callbacks import Callback

from nmt.data.batching import Batch
from nmt.train.run import train


class Record(Callback):
    """Batches read and weights after each update, on this rank; optionally a NaN loss on rank 1."""

    def __init__(self, poison_step: int | None) -> None:
        self.poison_step = poison_step
        self.train_batches: list[tuple[int, list[int]]] = []  # (epoch, pair indices)
        self.val_batches: list[list[int]] = []
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self._poisoned = False

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.model.register_forward_hook(lambda _m, _i, out: out * float("nan") if self._poisoned else out)

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Batch, _: int) -> None:
        self.train_batches.append((trainer.current_epoch, batch.index.tolist()))
        self._poisoned = trainer.global_rank == 1 and trainer.global_step == self.poison_step

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *_: object) -> None:
        self._poisoned = False
        self.weights[trainer.global_step] = {k: v.detach().clone() for k, v in module.model.state_dict().items()}

    def on_validation_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Batch, *_: object):
        if not trainer.sanity_checking:
            self.val_batches.append(batch.index.tolist())


def main() -> None:
    run_dir, cache, out, *overrides = sys.argv[1:]
    poison = [o for o in overrides if o.startswith("poison_step=")]
    overrides = [o for o in overrides if o not in poison]
    cfg = train_config(Path(run_dir), Path(cache), overrides)
    recorder = Record(int(poison[0].split("=")[1]) if poison else None)
    train(cfg, callbacks=[recorder])
    rank = int(os.environ["RANK"])
    record = {"train": recorder.train_batches, "valid": recorder.val_batches, "weights": recorder.weights}
    torch.save(record, Path(out) / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
