"""Handing freed memory back to the system while training on a CPU (`trainer.trim_every`, `nmt.train.memory`)."""

from __future__ import annotations

import pytest
from conftest import train_config

from nmt.config import ConfigError, TrainConfig, check
from nmt.config.groups import TrainerConfig
from nmt.train import memory
from nmt.train.run import train


class FakeLibc:
    """Counts `malloc_trim` calls."""

    def __init__(self) -> None:
        self.trims = 0

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1


@pytest.mark.parametrize(
    ("every", "accumulate", "trims"),
    [(2, 1, 1 + 3), (5, 1, 1 + 1), (0, 1, 0), (2, 2, 1 + 3)],
    ids=["every-2", "every-5", "never", "every-2-of-2-batch-updates"],
)
def test_freed_memory_goes_back_at_the_start_and_every_n_steps(
    monkeypatch, tmp_path, spm_cache, every, accumulate, trims
):
    """Once per update that reaches the period, also where an update sums several batches."""
    fake = FakeLibc()
    monkeypatch.setattr(memory, "_libc", lambda: fake)
    options = ["trainer.max_steps=6", f"trainer.trim_every={every}", "trainer.num_threads=1", "keep_last=0"]
    train(train_config(tmp_path, spm_cache, [*options, f"trainer.accumulate_grad_batches={accumulate}"]))
    assert fake.trims == trims  # at the start, and after steps 2, 4, 6 (every 2) or 5 (every 5)


def test_a_negative_trim_period_is_refused():
    with pytest.raises(ConfigError, match=r"`trainer.trim_every` must be >= 0 \(0: never\), but is -1"):
        check(TrainConfig(trainer=TrainerConfig(trim_every=-1)))
