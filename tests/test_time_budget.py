"""Training to a time budget (`optim.schedule_by=time`): the learning rate, the validations and the weight average
follow the share of `trainer.max_time` spent on the run's clock, a resume continues that clock, and `average_last`
makes `model.pt` the average of the last kept checkpoints.

The runs read a fake clock that moves one second at the start of every training batch, so a 20-second budget is
exactly 20 updates on any machine.
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import train_config
from train_helpers import SHORT, assert_same_weights, metrics, weights

from nmt.average import last_checkpoints
from nmt.checkpoint import load_checkpoint, read_raw
from nmt.cli import average
from nmt.config import AverageConfig, ConfigError, TrainConfig, check
from nmt.config.groups import OptimConfig, TrainerConfig
from nmt.train.budget import TrainingClock, validation_points
from nmt.train.optim import schedule_factor
from nmt.train.run import TrainResult, train
from nmt.train.schedule import linear_by_time

pytestmark = pytest.mark.usefixtures("one_thread")

BUDGET_S = 20
# 20 one-second updates: warmup over the first 5, validations (and kept checkpoints) after updates 5, 10, 15, 20,
# of which model.pt averages the last 3.
# conf/train.yaml's trainer.max_steps=2000 is left as it is: the budget alone ends a run scheduled by time.
TIMED = SHORT + [
    "trainer.num_threads=1",
    "optim.schedule_by=time",
    "optim.schedule=linear",
    "optim.warmup_fraction=0.25",
    f"trainer.max_time=00:00:00:{BUDGET_S:02d}",
    "trainer.val_check_fraction=0.25",
    "model.dropout=0.3",
    "ema_decay=0.5",
    "ema_start_fraction=0.5",
    "keep_last=4",
    "average_last=3",
]


class FakeClock:
    """A clock that reads `now`, which only `Tick` moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tick(L.Callback):
    """Moves `clock` one second at the start of every training batch; records the weights after every update and the
    learning rate the run ends with."""

    def __init__(self, clock: FakeClock, validation_s: float = 0.0) -> None:
        self.clock = clock
        self.validation_s = validation_s  # how long each validation takes on the clock
        self.steps: dict[int, dict[str, torch.Tensor]] = {}
        self.final_lr: float | None = None
        self.last_after_10: dict | None = None  # last.ckpt as a kill right after update 10's validation leaves it

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        self.clock.now += 1.0
        last = Path(trainer.checkpoint_callback.dirpath, "last.ckpt")
        if trainer.global_step == 10 and self.last_after_10 is None and last.is_file():
            self.last_after_10 = read_raw(last)

    def on_validation_start(self, trainer: L.Trainer, *args) -> None:
        if not trainer.sanity_checking:
            self.clock.now += self.validation_s

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
        self.steps[trainer.global_step] = {k: v.detach().clone() for k, v in module.model.state_dict().items()}

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.final_lr = trainer.optimizers[0].param_groups[0]["lr"]


def timed_run(
    run_dir: Path, cache: Path, resume: str | None = None, validation_s: float = 0.0, accumulate: int = 1
) -> tuple[TrainConfig, TrainResult, Tick]:
    cfg = train_config(run_dir, cache, [*TIMED, f"trainer.accumulate_grad_batches={accumulate}"])
    if resume is not None:
        cfg = dataclasses.replace(cfg, resume=resume)
    clock = FakeClock()
    tick = Tick(clock, validation_s)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dirpath has changed.*")  # expected: a new run directory
        result = train(cfg, callbacks=[tick], clock=clock)
    return cfg, result, tick


@pytest.fixture(scope="module")
def timed(tmp_path_factory, spm_cache) -> dict[str, tuple[TrainConfig, TrainResult, Tick]]:
    """A run of the whole budget, and one resumed from its checkpoint after update 10 (10 s) with a new clock."""
    full = timed_run(tmp_path_factory.mktemp("full"), spm_cache)
    midway = Path(full[0].run_dir, "checkpoints", "step000010.ckpt")
    return {"full": full, "resumed": timed_run(tmp_path_factory.mktemp("resumed"), spm_cache, str(midway))}


# --- the schedule at given times ------------------------------------------------------------------------------


def test_the_rate_warms_up_over_its_share_of_the_budget_and_reaches_zero_at_its_end() -> None:
    clock = FakeClock()
    training = TrainingClock(clock)
    training.start()

    def progress() -> float:
        return training.elapsed() / BUDGET_S

    factor = schedule_factor(OptimConfig(schedule="linear", schedule_by="time", warmup_fraction=0.25), 0, progress)
    rates = {}
    for seconds in (0.0, 2.5, 5.0, 12.5, 19.0, 20.0, 21.0):
        clock.now = seconds
        rates[seconds] = factor(12345)  # the step count plays no part
    assert rates == pytest.approx({0.0: 0.0, 2.5: 0.5, 5.0: 1.0, 12.5: 0.5, 19.0: 1 / 15, 20.0: 0.0, 21.0: 0.0})


def test_validations_are_counted_back_from_the_end_of_the_budget() -> None:
    assert validation_points(0.25) == [1.0, 0.75, 0.5, 0.25]
    assert validation_points(0.3) == pytest.approx([1.0, 0.7, 0.4, 0.1])
    assert len(validation_points(0.1)) == 10 and validation_points(1.0) == [1.0]


def test_the_clock_adds_this_process_time_to_the_time_restored() -> None:
    clock = FakeClock()
    training = TrainingClock(clock)
    training.restore(100.0)
    clock.now = 7.0
    assert training.elapsed() == 100.0  # not started: nothing of this process counts yet
    training.start()
    clock.now = 10.0
    assert training.elapsed() == 103.0


# --- a whole run on the fake clock ------------------------------------------------------------------------------


def test_the_budget_alone_ends_the_run_with_the_rate_at_zero(timed) -> None:
    cfg, result, tick = timed["full"]
    assert cfg.trainer.max_steps == 2000 and result.steps == BUDGET_S
    peak = cfg.optim.lr
    lrs = metrics(cfg.run_dir, "lr")  # the rate logged at step s: after s updates, s seconds
    assert sorted(lrs) == list(range(BUDGET_S))
    for step, lr in lrs.items():
        assert lr == pytest.approx(peak * linear_by_time(step / BUDGET_S, 0.25), abs=1e-9)
    assert lrs[5] == pytest.approx(peak) and lrs[19] == pytest.approx(peak / 15)
    assert tick.final_lr == 0.0
    assert read_raw(Path(cfg.run_dir, "checkpoints", "last.ckpt"))["elapsed_s"] == BUDGET_S


def test_validations_fall_at_shares_of_the_budget_the_last_at_its_end(timed) -> None:
    cfg, _, _ = timed["full"]
    assert sorted(metrics(cfg.run_dir, "val/bleu")) == [4, 9, 14, 19]  # rows: the step before the update
    assert [p.name for p in last_checkpoints(cfg.run_dir, 3)] == [
        "step000010.ckpt",
        "step000015.ckpt",
        "step000020.ckpt",
    ]


@pytest.mark.parametrize(
    ("accumulate", "updates", "validated"),
    # 1 batch per update: update 5 at 5 s, its validation to 11 s; update 9 at 15 s passes 3/4, its validation to
    # 21 s; update 10 ends the budget. 2 batches: update 3 at 6 s, to 12 s; update 5 at 16 s, to 22 s; update 6 ends.
    [(1, 10, [4, 8, 9]), (2, 6, [2, 4, 5])],
)
def test_a_validation_longer_than_the_interval_does_not_bring_one_after_every_update(
    tmp_path, spm_cache, accumulate, updates, validated
) -> None:
    """Each validation takes 6 s of a 20 s budget validated every 5 s: the points it overran are skipped (the old
    rule validated after updates 5, 6, 7 and 8, each update passing a point), and the budget's end validates."""
    cfg, result, _ = timed_run(tmp_path, spm_cache, validation_s=6.0, accumulate=accumulate)
    assert result.steps == updates and sorted(metrics(cfg.run_dir, "val/bleu")) == validated


def test_last_ckpt_lists_the_checkpoint_kept_at_the_same_validation(timed) -> None:
    """A run killed right after a validation resumes from last.ckpt, whose list of kept checkpoints must hold the
    one that validation kept, or the resumed run never averages nor rotates it."""
    _, _, tick = timed["full"]
    assert tick.last_after_10 is not None
    states = [s for s in tick.last_after_10["callbacks"].values() if isinstance(s, dict) and s.get("monitor") == "step"]
    assert sorted(Path(p).name for p in states[0]["best_k_models"]) == ["step000005.ckpt", "step000010.ckpt"]


def test_the_weight_average_begins_at_its_share_of_the_budget(timed) -> None:
    cfg, _, tick = timed["full"]
    kept = Path(cfg.run_dir, "checkpoints")
    before = load_checkpoint(kept / "step000005.ckpt").state_dict  # before half the budget: the raw weights
    assert_same_weights(before, tick.steps[5])
    begun = load_checkpoint(kept / "step000010.ckpt").state_dict  # the average begins with update 10's weights
    assert_same_weights(begun, tick.steps[10])
    after = load_checkpoint(kept / "step000015.ckpt").state_dict
    assert not all(torch.equal(after[k], tick.steps[15][k]) for k in after)


def test_model_pt_is_the_average_of_the_last_kept_checkpoints_as_nmt_average_writes_it(timed, tmp_path, capsys) -> None:
    cfg, result, _ = timed["full"]
    kept = last_checkpoints(cfg.run_dir, 3)
    assert result.averaged == [str(p) for p in kept]
    average.run(check(AverageConfig(run=cfg.run_dir, last=3, output=str(tmp_path / "avg.pt"))))
    with pytest.raises(ConfigError, match=r"`output` .*step000015\.ckpt is one of the checkpoints averaged"):
        average.run(check(AverageConfig(run=cfg.run_dir, last=3, output=str(kept[1]))))
    assert_same_weights(load_checkpoint(result.model_path).state_dict, load_checkpoint(tmp_path / "avg.pt").state_dict)
    best = load_checkpoint(result.best_checkpoint).state_dict
    assert not all(torch.equal(best[k], v) for k, v in load_checkpoint(result.model_path).state_dict.items())


def test_model_pt_averages_only_the_checkpoints_this_run_kept(timed, tmp_path, spm_cache) -> None:
    """A directory used before holds later steps of another run: model.pt must not average them."""
    cfg, _, _ = timed["full"]
    stale = tmp_path / "checkpoints"
    stale.mkdir()
    shutil.copy(Path(cfg.run_dir, "checkpoints", "step000005.ckpt"), stale / "step000099.ckpt")
    _, result, _ = timed_run(tmp_path, spm_cache)
    names = [Path(p).name for p in result.averaged]
    assert names == ["step000010.ckpt", "step000015.ckpt", "step000020.ckpt"]
    assert (stale / "step000099.ckpt").is_file()  # left alone, and not averaged


# --- resuming ------------------------------------------------------------------------------------------------------


def test_a_resumed_run_continues_the_clock_of_its_checkpoint(timed) -> None:
    (full_cfg, full, _), (resumed_cfg, resumed, _) = timed["full"], timed["resumed"]
    assert resumed.steps == full.steps == BUDGET_S  # 10 s restored + 10 s of its own: not 10 + 20
    assert read_raw(Path(resumed_cfg.run_dir, "checkpoints", "last.ckpt"))["elapsed_s"] == BUDGET_S
    full_lrs = metrics(full_cfg.run_dir, "lr")
    assert metrics(resumed_cfg.run_dir, "lr") == {s: full_lrs[s] for s in range(10, BUDGET_S)}
    assert sorted(metrics(resumed_cfg.run_dir, "val/bleu")) == [14, 19]


def test_a_resumed_run_ends_with_the_uninterrupted_runs_weights(timed) -> None:
    (full_cfg, _, _), (resumed_cfg, _, _) = timed["full"], timed["resumed"]
    last = Path("checkpoints") / "last.ckpt"
    assert_same_weights(weights(Path(full_cfg.run_dir, last)), weights(Path(resumed_cfg.run_dir, last)))


def test_a_spent_budget_is_refused_on_resume_before_any_work(timed, spm_cache, capsys) -> None:
    cfg, _, _ = timed["full"]
    again = dataclasses.replace(train_config(Path(cfg.run_dir), spm_cache, TIMED), resume="last")
    with pytest.raises(ConfigError, match=r"already trained for 00:00:00:20: max_time counts the whole run"):
        train(again, clock=FakeClock())
    assert "data:" not in capsys.readouterr().err  # refused before data preparation


# --- configuration ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"trainer": TrainerConfig(max_time=None)}, r"`trainer.max_time` must be a budget .* None", id="none"
        ),
        pytest.param({"trainer": TrainerConfig(max_time="00:00:00:00")}, r"budget .* '00:00:00:00'", id="zero"),
        pytest.param({"trainer": TrainerConfig(max_time="2h")}, r"a budget DD:HH:MM:SS .* '2h'", id="no-duration"),
        pytest.param(
            {"ema_decay": 0.9, "ema_start": 1000}, r"`ema_start` counts updates: .*ema_start_fraction", id="ema"
        ),
        pytest.param({"ema_start_fraction": 0.2}, r"`ema_start_fraction` must be .* `ema_decay` > 0", id="no-ema"),
        pytest.param(
            {"early_stopping_patience": 3}, r"`early_stopping_patience` must be 0 .* but is 3", id="early-stopping"
        ),
        pytest.param(
            {"keep_last": 2, "average_last": 3}, r"`average_last` must be in \[0, `keep_last`\] \(2\)", id="keep"
        ),
        pytest.param(
            {"trainer": TrainerConfig(max_time="00:02:00:00", val_check_fraction=0.0)},
            r"`trainer.val_check_fraction` must be in \(0, 1\]",
            id="validations",
        ),
        pytest.param(
            {"optim": OptimConfig(schedule_by="time", warmup_fraction=1.0)},
            r"`optim.warmup_fraction` must be in \[0, 1\)",
            id="warmup",
        ),
        pytest.param(
            {"optim": OptimConfig(schedule_by="time", warmup_fraction=0.0)},
            r"`optim.warmup_fraction` must be > 0 with `optim.schedule=inverse_sqrt`",
            id="inverse-sqrt-without-warmup",
        ),
    ],
)
def test_a_schedule_by_time_refuses_settings_it_cannot_follow(changes, message) -> None:
    budget = TrainConfig(optim=OptimConfig(schedule_by="time"), trainer=TrainerConfig(max_time="00:02:00:00"))
    with pytest.raises(ConfigError, match=message):
        check(dataclasses.replace(budget, **changes))


def test_settings_of_a_schedule_by_time_are_refused_with_steps() -> None:
    with pytest.raises(ConfigError, match=r"`ema_start_fraction` must be .* and `optim.schedule_by=time`"):
        check(TrainConfig(ema_decay=0.999, ema_start_fraction=0.1))
    check(TrainConfig(keep_last=3, average_last=3))  # averaging needs no time budget
    check(TrainConfig(early_stopping_patience=3))  # early stopping needs a schedule by steps
    linear = TrainConfig(optim=OptimConfig(schedule="linear", schedule_by="time"))
    check(dataclasses.replace(linear, trainer=TrainerConfig(max_time="00:02:00:00")))  # no max_steps needed
