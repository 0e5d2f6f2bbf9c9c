"""What a run shows while it trains: a bar that reads the device only when it logs, plain lines off a terminal."""

from __future__ import annotations

import warnings

import lightning as L
import pytest
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from torch.utils.data import DataLoader
from train_helpers import HostReads, make_module, random_batches

from nmt.config import TrainConfig, TrainerConfig
from nmt.train.progress import LogLines, progress_callbacks
from nmt.train.run import build_trainer


class ReadsPerStep(Callback):
    """Host reads of the device (see `HostReads`) between one batch end and the next: everything a step runs."""

    def __init__(self, mode: HostReads) -> None:
        self.mode, self.reads, self._seen = mode, [], 0

    def on_train_batch_end(self, *args) -> None:
        self.reads.append(self.mode.count - self._seen)
        self._seen = self.mode.count


def fit_with(cfg: TrainConfig, n_batches: int, extra: list[Callback]) -> None:
    trainer = build_trainer(cfg, extra)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(no `val_dataloader`|does not have many workers).*")
        batches = DataLoader(random_batches(n_batches, rows=4, length=6), batch_size=None)
        trainer.fit(make_module(max_bad_steps=10), train_dataloaders=batches)


def test_the_progress_bar_reads_the_device_only_on_logging_steps(tmp_path) -> None:
    """Lightning's bar turns every logged metric into a Python number at every batch (a GPU sync per step);
    refreshed every `log_every_n_steps` (3 here) it reads them only where logging syncs anyway."""
    trainer = TrainerConfig(progress_bar=True, log_every_n_steps=3, max_steps=9, val_check_interval=100)
    mode = HostReads()
    counter = ReadsPerStep(mode)
    with mode:
        fit_with(TrainConfig(run_dir=str(tmp_path), trainer=trainer), 9, [counter])
    # reads[i]: from the end of update i to the end of update i + 1, whose logging (at 3, 6, 9) reads the metrics
    quiet = [reads for update, reads in enumerate(counter.reads, start=1) if update % 3 == 2]
    assert quiet == [0, 0, 0], counter.reads
    assert all(counter.reads[update - 1] for update in (3, 6))


@pytest.mark.parametrize(("show", "accumulate"), [(None, 1), (False, 1), (None, 2)])
def test_off_a_terminal_a_run_logs_plain_lines_instead_of_a_bar(tmp_path, capsys, show, accumulate) -> None:
    """Under pytest stderr is no terminal, so the default (None) also gives lines, with no `\\r` updates; one line
    per logged update, however many batches each update sums."""
    (callback,) = progress_callbacks(show, 3)
    assert isinstance(callback, LogLines)
    trainer = TrainerConfig(
        progress_bar=show, log_every_n_steps=3, max_steps=6, val_check_interval=100, accumulate_grad_batches=accumulate
    )
    fit_with(TrainConfig(run_dir=str(tmp_path), trainer=trainer), 6 * accumulate, [])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert [line.split(" | ")[0] for line in lines] == ["step 3/6", "step 6/6"]
    assert all(" | loss " in line and " | lr " in line for line in lines), lines
    assert "\r" not in capsys.readouterr().err


def test_a_bar_is_shown_where_asked_for_refreshed_at_the_logging_interval() -> None:
    (bar,) = progress_callbacks(True, 7)
    assert isinstance(bar, TQDMProgressBar) and bar.refresh_rate == 7
    assert isinstance(
        L.Trainer(callbacks=progress_callbacks(True, 7), logger=False).progress_bar_callback, TQDMProgressBar
    )
