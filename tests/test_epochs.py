"""Across epoch boundaries: every epoch has its own batch order, a seed fixes them all, and a run resumed in
the middle of its third epoch, with or without loader workers, ends with the uninterrupted run's weights, bit for
bit (CPU, dropout on)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import RecordBatches, run_epochs

from nmt.checkpoint import read_raw

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, spm_cache) -> dict[str, tuple[Path, RecordBatches]]:
    """Two uninterrupted 50-step runs with one seed, and one resumed from the first in its third epoch."""
    out = {}
    for name in ("full", "again"):
        run_dir = tmp_path_factory.mktemp(name)
        out[name] = run_dir, run_epochs(run_dir, spm_cache)
    full_dir, full = out["full"]
    per_epoch = len(full.epochs()[0])
    step = next(s for s in range(5, 50, 5) if s // per_epoch == 2 and s % per_epoch)  # inside epoch 2
    (midway,) = (full_dir / "checkpoints").glob(f"step{step:06d}-*.ckpt")
    # A checkpoint written after the last batch of an epoch: the resumed run never iterates that epoch again.
    boundary = next(k * per_epoch for k in (1, 2, 3) if k * per_epoch % 5 == 0)
    (at_boundary,) = (full_dir / "checkpoints").glob(f"step{boundary:06d}-*.ckpt")
    resumes = {"resumed": (midway, 0), "resumed_workers": (midway, 2), "resumed_at_boundary": (at_boundary, 0)}
    for name, (checkpoint, workers) in resumes.items():  # workers prefetch as soon as Lightning iterates
        resumed_dir = tmp_path_factory.mktemp(name)
        out[name] = (
            resumed_dir,
            run_epochs(resumed_dir, spm_cache, [f"data.num_workers={workers}"], resume=str(checkpoint)),
        )
    out["resumed_from"] = {"resumed": step, "resumed_workers": step, "resumed_at_boundary": boundary}
    return out


def test_every_epoch_has_its_own_batch_order_over_the_same_pairs(runs) -> None:
    epochs = runs["full"][1].epochs()
    assert len(epochs) >= 4
    complete = [epochs[e] for e in sorted(epochs)[:-1]]  # the last epoch is cut by max_steps
    assert len({tuple(order) for order in complete}) == len(complete), "an epoch replayed another's order"
    pairs = [sorted(i for batch in order for i in batch) for order in complete]
    assert all(p == pairs[0] for p in pairs) and len(pairs[0]) == len(set(pairs[0]))


def test_the_same_seed_gives_the_same_batches_in_every_epoch(runs) -> None:
    assert runs["full"][1].batches == runs["again"][1].batches


RESUMED = ["resumed", "resumed_workers", "resumed_at_boundary"]
RESUMED_IDS = ["0-workers", "2-workers", "from-an-epoch-end"]


@pytest.mark.parametrize("resumed", RESUMED, ids=RESUMED_IDS)
def test_a_run_resumed_in_its_third_epoch_trains_on_the_same_batches(runs, resumed) -> None:
    step = runs["resumed_from"][resumed]
    assert runs[resumed][1].batches == runs["full"][1].batches[step:]


@pytest.mark.parametrize("resumed", RESUMED, ids=RESUMED_IDS)
def test_a_run_resumed_in_its_third_epoch_ends_with_the_same_weights(runs, resumed) -> None:
    last = Path("checkpoints") / "last.ckpt"
    full = read_raw(runs["full"][0] / last)
    resumed = read_raw(runs[resumed][0] / last)
    assert full["global_step"] == resumed["global_step"] == 50
    different = [k for k in full["state_dict"] if not full["state_dict"][k].equal(resumed["state_dict"][k])]
    assert not different, f"tensors differ: {different}"


@pytest.mark.parametrize("first_steps", [10, 12], ids=["ends-at-a-validation", "ends-between-validations"])
def test_a_resumed_run_appends_to_the_log_of_the_run_it_continues(runs, tmp_path, spm_cache, first_steps) -> None:
    """Resuming in the same run directory keeps every row logged before the checkpoint, then continues; a
    first run that ends between validations validates its last step too (one more validation row)."""
    first = tmp_path / "run"
    run_epochs(first, spm_cache, [f"trainer.max_steps={first_steps}"])
    before = (first / "logs" / "metrics.csv").read_text().splitlines()
    run_epochs(first, spm_cache, resume="last")
    after = (first / "logs" / "metrics.csv").read_text().splitlines()
    assert after[: len(before)] == before
    full_rows = (runs["full"][0] / "logs" / "metrics.csv").read_text().splitlines()
    steps = [row.split(",")[_column(after[0], "step")] for row in after[1:]]
    full_steps = [row.split(",")[_column(full_rows[0], "step")] for row in full_rows[1:]]
    if first_steps % 5:  # drop the first run's extra validation row (rows hold the step before the update)
        last = str(first_steps - 1)
        assert steps.count(last) == full_steps.count(last) + 1
        steps.pop(steps.index(last, steps.index(last) + 1))
    assert steps == full_steps  # the whole history, in order, no step twice
    elapsed = [float(row.split(",")[_column(after[0], "val/elapsed_s")] or "nan") for row in after[1:]]
    clock = [t for t in elapsed if t == t]  # validation rows only
    assert clock == sorted(clock)  # the resumed run continues the run's clock, for BLEU-vs-time plots


def _column(header: str, name: str) -> int:
    return header.split(",").index(name)
