"""Two processes (DDP over gloo, on CPU) through the real training path, launched by torchrun.

Shows that the ranks read distinct batches that cover each epoch once; that one update on 2 ranks equals one
update on the union of their batches in one process; that a NaN loss on one rank skips the update on both
without a hang; that a resumed 2-rank run continues with the same data order and weights; and that
validation is split across the ranks yet scores the same BLEU and chrF as one process.
"""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from conftest import train_config
from train_helpers import DDP_COMMON, DDP_DROPOUT, launch_two_ranks

from nmt.checkpoint import CheckpointError, read_raw
from nmt.config.groups import TrainerConfig
from nmt.data.batching import collate
from nmt.data.prepare import load_training_data, prepare_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.train.datamodule import TranslationDataModule
from nmt.train.loss import label_smoothed_nll
from nmt.train.optim import build_optimizer
from nmt.train.resume import processes
from nmt.train.run import build_module, train

POISON_STEP = 3  # rank 1's loss is NaN in the 4th update
TWO_RANKS = ["trainer.accelerator=cpu", "trainer.strategy=ddp", "trainer.devices=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, spm_cache):
    """A 12-step 2-rank run without dropout (for comparing with one process), and with dropout a 12-step run and
    the same stopped at step 6 and resumed to 12 in another pair of processes.

    All read one directory written by `prepare_corpus` (as `nmt-prepare` writes it), memory-mapped by both ranks.
    """
    work = tmp_path_factory.mktemp("ddp")
    cfg = train_config(work / "prepare", spm_cache, DDP_COMMON)
    prepare_corpus(cfg.data, cfg.tokenizer, work / "prepared", workers=2, chunk_lines=50)
    common = [*DDP_COMMON, f"data.prepared={work / 'prepared'}", *TWO_RANKS]
    poison = f"poison_step={POISON_STEP}"
    full = launch_two_ranks(work / "full", spm_cache, work / "full_out", [*common, "trainer.max_steps=12", poison])
    dropout = [*common, *DDP_DROPOUT]  # each rank draws its own masks: its random state must survive the resume
    dropout_full = launch_two_ranks(
        work / "dropout", spm_cache, work / "dropout_out", [*dropout, "trainer.max_steps=12"]
    )
    launch_two_ranks(work / "cut", spm_cache, work / "cut_out", [*dropout, "trainer.max_steps=6"])
    resumed = launch_two_ranks(
        work / "cut", spm_cache, work / "resumed_out", [*dropout, "trainer.max_steps=12", "resume=last"]
    )
    return {
        "full": full,
        "dropout_full": dropout_full,
        "resumed": resumed,
        "work": work,
        "cache": spm_cache,
        "prepared": work / "prepared",
    }


def epoch_batches(record: dict, epoch: int) -> list[list[int]]:
    return [indices for e, indices in record["train"] if e == epoch]


def test_ranks_read_distinct_batches_that_cover_the_epoch_once(runs) -> None:
    full = runs["full"]
    first = [epoch_batches(full[rank], 0) for rank in (0, 1)]
    assert len(first[0]) == len(first[1]) > 0  # the ranks step together
    seen = [{i for batch in batches for i in batch} for batches in first]
    assert not seen[0] & seen[1]
    pairs = [i for batches in first for batch in batches for i in batch]
    assert len(pairs) == len(set(pairs))  # no pair twice in the epoch
    longest_batch = max(len(b) for batches in first for b in batches)
    assert len(pairs) >= 120 - longest_batch  # at most the one batch left over by the even split is dropped
    assert epoch_batches(full[0], 1)[: len(first[0])] != first[0][: len(epoch_batches(full[0], 1))]


def test_one_update_on_two_ranks_equals_one_update_on_their_union(runs) -> None:
    full = runs["full"]
    assert all(torch.equal(full[0]["weights"][1][k], full[1]["weights"][1][k]) for k in full[0]["weights"][1])
    cfg = train_config(
        runs["work"] / "single",
        runs["cache"],
        [*DDP_COMMON, f"data.prepared={runs['prepared']}", "trainer.max_steps=12"],
    )
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = load_training_data(cfg.data, cfg.tokenizer)
    model = build_module(cfg, data).model.train()
    optimizer = build_optimizer(model, cfg.optim, cfg.trainer.max_steps)["optimizer"]
    union = full[0]["train"][0][1] + full[1]["train"][0][1]
    batch = collate(*data.train.ids(union), PAD_ID, BOS_ID, EOS_ID)
    loss_sum, _, n_tokens = label_smoothed_nll(model(batch.src, batch.tgt_in), batch.tgt_out, 0.1, PAD_ID)
    (loss_sum / n_tokens).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
    # Adam's first step is about lr * sign(g): where a gradient is zero up to rounding (a key bias, which softmax
    # ignores; a weight of a unit that no token activates) the step follows the sign of that noise, which differs
    # between one process and two. Compare every element whose gradient is clearly not noise.
    signal = {name: p.grad.abs() > 1e-7 for name, p in model.named_parameters()}
    optimizer.step()
    compared = sum(int(mask.sum()) for mask in signal.values())
    assert compared > 0.3 * sum(mask.numel() for mask in signal.values())  # (unseen tokens' embeddings get none)
    for name, value in model.named_parameters():
        ddp = full[0]["weights"][1][name]
        torch.testing.assert_close(ddp[signal[name]], value.detach()[signal[name]], rtol=1e-5, atol=1e-6, msg=name)


def test_a_nan_loss_on_one_rank_skips_the_update_on_both(runs) -> None:
    full = runs["full"]
    for rank in (0, 1):
        weights = full[rank]["weights"]
        before, skipped, after = (weights[s] for s in (POISON_STEP, POISON_STEP + 1, POISON_STEP + 2))
        assert all(torch.equal(before[k], skipped[k]) for k in before), f"rank {rank} updated on a NaN"
        assert not all(torch.equal(skipped[k], after[k]) for k in before), f"rank {rank} stopped training"
        assert all(w.isfinite().all() for w in weights[12].values())
    assert all(torch.equal(full[0]["weights"][12][k], full[1]["weights"][12][k]) for k in full[0]["weights"][12])


def test_a_resumed_two_rank_run_continues_with_the_same_batches_and_weights(runs) -> None:
    """With dropout on, so each rank's own random state must be restored, not rank 0's on both."""
    full, resumed = runs["dropout_full"], runs["resumed"]
    for rank in (0, 1):
        assert resumed[rank]["train"] == full[rank]["train"][6:]
        final_full, final_resumed = full[rank]["weights"][12], resumed[rank]["weights"][12]
        assert all(torch.equal(final_full[k], final_resumed[k]) for k in final_full), f"rank {rank}"


def test_a_two_rank_checkpoint_is_refused_by_one_process_in_one_line(runs, tmp_path) -> None:
    last = runs["work"] / "cut" / "checkpoints" / "last.ckpt"
    overrides = [*DDP_COMMON, *DDP_DROPOUT, f"data.prepared={runs['prepared']}", f"resume={last}"]
    cfg = train_config(tmp_path, runs["cache"], overrides)
    with pytest.raises(CheckpointError, match=r"trained by 2 process\(es\), but this run has 1"):
        train(cfg)


def test_the_processes_of_a_run_count_every_visible_gpu_for_devices_minus_one(monkeypatch) -> None:
    """`trainer=ddp` sets devices=-1 (every GPU): a resume must compare the checkpoint with the real count."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert processes(TrainerConfig(accelerator="gpu", devices=-1, num_nodes=2)) == 8
    assert processes(TrainerConfig(accelerator="gpu", devices=2, num_nodes=3)) == 6
    assert processes(TrainerConfig()) == 1


def test_validation_is_split_across_ranks_and_scores_as_one_process(runs) -> None:
    full = runs["full"]
    first = [full[rank]["valid"] for rank in (0, 1)]
    seen = [{i for batch in batches for i in batch} for batches in first]
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    (ckpt,) = (runs["work"] / "full" / "checkpoints").glob("step000006-*.ckpt")
    with open(runs["work"] / "full" / "logs" / "metrics.csv", newline="") as f:
        logged = next(row for row in csv.DictReader(f) if row["val/chrf"])
    cfg = train_config(
        runs["work"] / "one", runs["cache"], [*DDP_COMMON, f"data.prepared={runs['prepared']}", "trainer.max_steps=12"]
    )
    data = load_training_data(cfg.data, cfg.tokenizer)
    assert len(seen[0] | seen[1]) == len(data.valid)  # every validation pair decoded once
    module = build_module(cfg, data)
    module.model.load_state_dict({k[len("model.") :]: v for k, v in read_raw(ckpt)["state_dict"].items()})
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    datamodule = TranslationDataModule(data.train, data.valid, cfg.data.max_tokens, cfg.seed)
    (scores,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    assert scores["val/chrf"] > 0
    assert scores["val/bleu"] == pytest.approx(float(logged["val/bleu"]), abs=1e-4)
    assert scores["val/chrf"] == pytest.approx(float(logged["val/chrf"]), abs=1e-4)
