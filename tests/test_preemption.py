"""Preemption: SIGTERM or SIGUSR1 (SLURM's warning) mid-run writes `last.ckpt` at the step it stopped, and a run
resumed from it ends with the weights of a run never stopped, bit for bit (CPU, dropout on)."""

from __future__ import annotations

import dataclasses
import os
import signal
import warnings
from pathlib import Path

import lightning as L
import pytest
from conftest import train_config

from nmt.checkpoint import read_raw
from nmt.cli import train as train_command
from nmt.train.preemption import PREEMPTED_EXIT_CODE, Preempted
from nmt.train.run import train

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = [
    "data.builtin_train_size=300",
    "data.max_tokens=400",
    "data.max_len=40",
    "tokenizer.vocab_size=300",
    "trainer.num_threads=1",
    "trainer.max_steps=16",
    "trainer.val_check_interval=10",
    "optim.warmup_steps=4",
    "model.dropout=0.3",
    "decode.max_len_a=0",
    "decode.max_len_b=1",
]
STOP_AT = 7  # between validations: the checkpoint is the one the signal made


class SignalAt(L.Callback):
    """Send `signum` to this process when update `step` is done, as a scheduler would."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step

    def on_train_batch_end(self, trainer: L.Trainer, *_: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def fit(run_dir: Path, cache: Path, callbacks=(), resume: str | None = None) -> None:
    cfg = train_config(run_dir, cache, RUN)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dirpath has changed.*")
        train(dataclasses.replace(cfg, resume=resume), callbacks=list(callbacks))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, spm_cache) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    fit(run_dir, spm_cache)
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_signal_writes_the_step_it_stopped_at_and_the_run_resumes_from_it(
    uninterrupted, tmp_path, spm_cache, signum
) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(Preempted, match=f"at step {STOP_AT}; .*last.ckpt holds it: continue with resume=last"):
        fit(tmp_path, spm_cache, [SignalAt(signum, STOP_AT)])
    assert signal.getsignal(signum) == before  # the handlers are put back
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert read_raw(last)["global_step"] == STOP_AT
    stale = last.with_name(".last.ckpt.4194303-k1lled00.tmp")  # a write killed before its rename (no such PID)
    stale.write_bytes(b"half a checkpoint")
    fit(tmp_path, spm_cache, resume="last")
    assert not stale.exists()  # the resumed run cleared it before writing its own
    full, resumed = read_raw(uninterrupted), read_raw(last)
    assert full["global_step"] == resumed["global_step"] == 16
    different = [k for k in full["state_dict"] if not full["state_dict"][k].equal(resumed["state_dict"][k])]
    assert not different, f"tensors differ: {different}"


def test_nmt_train_exits_with_the_code_of_a_process_ended_by_sigterm(monkeypatch, tmp_path, capsys) -> None:
    def stopped(cfg):
        raise Preempted(5, tmp_path / "last.ckpt")

    monkeypatch.setattr(train_command, "train", stopped)
    with pytest.raises(SystemExit) as exit_:
        train_command.run(train_config(tmp_path, tmp_path, RUN))
    assert exit_.value.code == PREEMPTED_EXIT_CODE == 143
    assert "stopped by a signal at step 5" in capsys.readouterr().err


class SignalInValidation(L.Callback):
    """Send SIGTERM during the first batch of the validation after update `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_validation_batch_end(self, trainer: L.Trainer, *_: object) -> None:
        if trainer.global_step == self.step and not trainer.sanity_checking:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_during_validation_keeps_the_raw_weights_and_the_average_apart(tmp_path, spm_cache) -> None:
    """With an EMA of the weights, validation runs on the average swapped into the model: a checkpoint written
    when a signal stops it there must still hold the average as its weights and the raw weights as the state to
    train from, so that the resumed run ends as a run never stopped."""
    ema = ["ema_decay=0.5"]
    cfg = train_config(tmp_path / "full", spm_cache, [*RUN, *ema])
    train(cfg)
    stopped = train_config(tmp_path / "stopped", spm_cache, [*RUN, *ema])
    with pytest.raises(Preempted, match="at step 10"):
        train(stopped, callbacks=[SignalInValidation(10)])
    train(dataclasses.replace(stopped, resume="last"))
    full, resumed = (read_raw(Path(c.run_dir, "checkpoints", "last.ckpt")) for c in (cfg, stopped))
    assert full["global_step"] == resumed["global_step"] == 16
    for key in ("state_dict", "current_model_state"):  # the average, and the raw weights
        different = [k for k in full[key] if not full[key][k].equal(resumed[key][k])]
        assert not different, f"{key}: tensors differ: {different}"
