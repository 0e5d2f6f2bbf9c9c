"""Training end to end through `nmt.train.run.train`: quality, checkpoints, resuming, determinism, schedule."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import warnings
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from conftest import TINY_STEPS, train_config
from sacrebleu.metrics import BLEU
from train_helpers import SHORT, assert_same_weights, metrics, weights

from nmt.checkpoint import CheckpointError, load_checkpoint, read_raw
from nmt.config import TrainConfig
from nmt.data.batching import collate
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer
from nmt.device import set_threads
from nmt.model import Transformer
from nmt.train.loss import label_smoothed_nll
from nmt.train.resume import resolve_resume
from nmt.train.run import TrainResult, train
from nmt.train.schedule import inverse_sqrt, linear_warmup_decay


def logged_steps(run_dir: str | Path) -> list[int]:
    with open(Path(run_dir) / "logs" / "metrics.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def validation_loss(model: Transformer, src: list[list[int]], tgt: list[list[int]], smoothing: float) -> float:
    """Label-smoothed loss per target token over a whole split, as `validation_step` logs it."""
    model.eval()
    loss_sum, n_tokens = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(src), 100):
            batch = collate(src[i : i + 100], tgt[i : i + 100], PAD_ID, BOS_ID, EOS_ID)
            logits = model(batch.src, batch.tgt_in)  # [B, T, V]
            loss, _, n = label_smoothed_nll(logits, batch.tgt_out, smoothing, PAD_ID)
            loss_sum, n_tokens = loss_sum + loss.item(), n_tokens + n
    return loss_sum / n_tokens


# --- the tiny preset trained for TINY_STEPS steps (shared session fixture) ---------------------------------


def test_tiny_run_translates_far_better_than_copying_the_source(tiny_run) -> None:
    result, cfg = tiny_run
    valid = get_corpus(cfg.data, cfg.data.valid)
    copy_bleu = BLEU().corpus_score(valid.src, [valid.tgt]).score
    assert copy_bleu < 5
    # Measured: validation BLEU ~85 after 600 steps; 50 leaves room for other CPUs and library versions.
    assert result.best_bleu is not None and result.best_bleu > 50
    assert result.best_bleu == pytest.approx(max(metrics(cfg.run_dir, "val/bleu").values()))
    assert result.steps == TINY_STEPS
    run = Path(cfg.run_dir)
    for product in ("checkpoints/last.ckpt", "model.pt", "tokenizer/joint.model", "logs/metrics.csv"):
        assert (run / product).is_file(), product
    assert Path(result.model_path) == run / "model.pt"
    assert read_raw(run / "checkpoints" / "last.ckpt")["global_step"] == TINY_STEPS


def test_exported_model_restores_the_best_weights_and_validation_loss(tiny_run) -> None:
    result, cfg = tiny_run
    exported = load_checkpoint(result.model_path)
    best = read_raw(result.best_checkpoint)
    trained = {k.removeprefix("model."): v for k, v in best["state_dict"].items()}
    assert_same_weights(exported.state_dict, trained)
    assert exported.step == best["global_step"]

    def build(state: dict[str, torch.Tensor]) -> Transformer:
        model = Transformer(exported.model_config, exported.src_vocab_size, exported.tgt_vocab_size, exported.pad_id)
        model.load_state_dict(state)
        return model

    # Encode the validation split with the checkpoint's own tokenizer, cut as preparing the corpus cuts it.
    tokenizer, text = Tokenizer.from_bytes(exported.tokenizer), get_corpus(cfg.data, cfg.data.valid)
    cut = cfg.data.max_len
    src, tgt = tokenizer.encode_src(text.src), tokenizer.encode_tgt(text.tgt)
    valid = [ids[:cut] for ids in src], [ids[:cut] for ids in tgt]
    loss = validation_loss(build(trained), *valid, cfg.optim.label_smoothing)
    assert validation_loss(build(exported.state_dict), *valid, cfg.optim.label_smoothing) == loss
    # Lightning logs a validation under the step of the last training batch before it (global_step - 1).
    logged = metrics(cfg.run_dir, "val/loss")[best["global_step"] - 1]
    assert loss == pytest.approx(logged, rel=1e-5)


def test_checkpoint_is_plain_data_with_everything_translation_needs(tiny_run) -> None:
    _, cfg = tiny_run
    run = Path(cfg.run_dir)
    raw = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    meta = raw["nmt"]
    assert meta["model_config"] == dataclasses.asdict(cfg.model)
    assert meta["special_ids"] == {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}
    assert meta["train_config"] == dataclasses.asdict(cfg)
    assert (meta["src_lang"], meta["tgt_lang"]) == ("en", "de")
    joint = meta["tokenizer"]["joint"]
    assert joint == (run / "tokenizer" / "joint.model").read_bytes()
    sp = spm.SentencePieceProcessor(model_proto=joint)
    # The built-in corpus has fewer distinct pieces than the requested vocabulary, which is an upper bound.
    assert sp.get_piece_size() == meta["src_vocab_size"] == meta["tgt_vocab_size"] <= cfg.tokenizer.vocab_size
    slim = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    assert set(slim) == {"state_dict", "nmt", "global_step"}  # no optimizer state in the export


# --- resuming ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "validated"), [(5, [2, 4, 5]), (4, [2, 4])])
def test_the_last_step_is_validated_once_also_between_intervals(tmp_path, spm_cache, steps, validated) -> None:
    cfg = train_config(tmp_path, spm_cache, SHORT + [f"trainer.max_steps={steps}", "trainer.val_check_interval=2"])
    assert train(cfg).steps == steps
    assert sorted(metrics(cfg.run_dir, "val/bleu")) == [s - 1 for s in validated]  # rows: the step before the update
    assert read_raw(Path(cfg.run_dir) / "checkpoints" / "last.ckpt")["global_step"] == steps


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, spm_cache) -> tuple[TrainConfig, TrainResult, TrainConfig, TrainResult]:
    """An uninterrupted 20-step run, and a run resumed from its step-10 checkpoint up to step 20.

    Dropout is on: the checkpoint carries the torch RNG state, so the resumed run draws the same dropout
    masks. Equal weights then prove that weights, optimizer moments, schedule, step count, data order and
    RNG all continue exactly. The linear schedule also depends on max_steps.
    """
    overrides = SHORT + ["trainer.max_steps=20", "trainer.val_check_interval=10", "model.dropout=0.3"]
    overrides.append("optim.schedule=linear")
    full_cfg = train_config(tmp_path_factory.mktemp("full"), spm_cache, overrides)
    full = train(full_cfg)
    (midway,) = Path(full_cfg.run_dir, "checkpoints").glob("step000010-*.ckpt")
    resumed_cfg = dataclasses.replace(
        train_config(tmp_path_factory.mktemp("resumed"), spm_cache, overrides), resume=str(midway)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dirpath has changed.*")  # expected: a new run directory
        return full_cfg, full, resumed_cfg, train(resumed_cfg)


def test_resumed_run_continues_from_the_checkpoint_step(resumed) -> None:
    _, full, resumed_cfg, result = resumed
    assert full.steps == result.steps == 20
    steps = logged_steps(resumed_cfg.run_dir)
    assert min(steps) == 10 and max(steps) == 19  # rows hold the step index before each update
    assert read_raw(Path(resumed_cfg.run_dir) / "checkpoints" / "last.ckpt")["global_step"] == 20


def test_resumed_run_ends_with_the_uninterrupted_runs_weights(resumed) -> None:
    full_cfg, _, resumed_cfg, _ = resumed
    last = Path("checkpoints") / "last.ckpt"
    assert_same_weights(weights(Path(full_cfg.run_dir, last)), weights(Path(resumed_cfg.run_dir, last)))
    full_losses = metrics(full_cfg.run_dir, "train/loss")
    assert metrics(resumed_cfg.run_dir, "train/loss") == {s: full_losses[s] for s in range(10, 20)}


def test_resume_last_without_a_checkpoint_names_the_missing_file(tmp_path, spm_cache) -> None:
    cfg = train_config(tmp_path, spm_cache, SHORT + ["trainer.max_steps=2", "resume=last"])
    with pytest.raises(CheckpointError, match=r"checkpoints/last\.ckpt does not exist.*hydra\.run\.dir"):
        train(cfg)


def test_a_fresh_run_into_a_directory_holding_a_run_is_refused(short_run, capsys) -> None:
    """Training again into a run's directory without `resume` would overwrite its checkpoints, or (Lightning's
    renaming) leave `resume=last` and `nmt-average run=` reading the earlier run's: refused, the files untouched."""
    last = Path(short_run.run_dir, "checkpoints", "last.ckpt")
    before = last.read_bytes()
    refused = r"checkpoints/last\.ckpt exists: .* resume=last \(or resume=auto\), or train into another"
    with pytest.raises(CheckpointError, match=refused):
        train(dataclasses.replace(short_run, trainer=dataclasses.replace(short_run.trainer, max_steps=8)))
    assert last.read_bytes() == before and "data:" not in capsys.readouterr().err  # refused before preparing data


def test_resume_auto_continues_the_run_there_is_and_starts_one_where_there_is_none(tmp_path) -> None:
    """The one command of a job a cluster requeues: fresh at the first start, resumed at every later one."""
    checkpoints = tmp_path / "checkpoints"
    assert resolve_resume("auto", checkpoints) is None
    checkpoints.mkdir()
    (checkpoints / "last.ckpt").write_bytes(b"a run")
    assert resolve_resume("auto", checkpoints) == str(checkpoints / "last.ckpt")
    assert resolve_resume("last", checkpoints) == str(checkpoints / "last.ckpt")
    with pytest.raises(CheckpointError, match=r"holds a run already. Continue it with resume=last \(or resume=auto\)"):
        resolve_resume(None, checkpoints)


# --- determinism and the learning rate -------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, spm_cache) -> dict[str, TrainConfig]:
    """15-step runs (dropout on): two with seed 1, one with seed 2."""
    runs = {}
    for name, seed in (("first", 1), ("again", 1), ("other", 2)):
        overrides = SHORT + ["trainer.max_steps=15", "trainer.val_check_interval=15", f"seed={seed}"]
        runs[name] = train_config(tmp_path_factory.mktemp(name), spm_cache, overrides)
        train(runs[name])
    return runs


def test_same_seed_gives_the_same_losses_and_weights(seeded) -> None:
    first, again = seeded["first"], seeded["again"]
    losses = metrics(first.run_dir, "train/loss")
    assert sorted(losses) == list(range(15))
    assert metrics(again.run_dir, "train/loss") == losses
    last = Path("checkpoints") / "last.ckpt"
    assert_same_weights(weights(Path(first.run_dir, last)), weights(Path(again.run_dir, last)))


def test_another_seed_gives_other_losses(seeded) -> None:
    losses, other = metrics(seeded["first"].run_dir, "train/loss"), metrics(seeded["other"].run_dir, "train/loss")
    assert losses.keys() == other.keys()
    assert all(losses[s] != other[s] for s in losses)


def test_logged_learning_rate_follows_the_schedule(seeded, resumed) -> None:
    """The rate logged at step s (s updates done) is peak * factor(s): LambdaLR evaluates the factor at the
    number of completed steps, so update k (from 1) uses factor(k - 1); inverse_sqrt clamps 0 to 1."""
    cfg = seeded["first"]
    warmup, peak = cfg.optim.warmup_steps, cfg.optim.lr
    lrs = metrics(cfg.run_dir, "lr")
    assert sorted(lrs) == list(range(15))
    for step, lr in lrs.items():
        assert lr == pytest.approx(peak * inverse_sqrt(step, warmup), rel=1e-6)
    assert lrs[warmup // 2] == pytest.approx(peak / 2)
    assert lrs[warmup] == pytest.approx(peak)
    assert lrs[2 * warmup - 2] == pytest.approx(peak * math.sqrt(warmup / (2 * warmup - 2)))

    full_cfg, _, resumed_cfg, _ = resumed
    total = full_cfg.trainer.max_steps
    for run in (full_cfg, resumed_cfg):
        for step, lr in metrics(run.run_dir, "lr").items():
            assert lr == pytest.approx(peak * linear_warmup_decay(step, warmup, total), rel=1e-6)
    assert metrics(full_cfg.run_dir, "lr")[total - 1] == pytest.approx(peak / (total - warmup))


# --- threads ------------------------------------------------------------------------------------------------


def test_num_threads_is_honoured_without_sched_getaffinity(monkeypatch) -> None:
    if (os.cpu_count() or 1) == 1:
        pytest.skip("one CPU: every thread count gives 1")
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1
    finally:
        torch.set_num_threads(before)


# --- resuming: what is read from the checkpoint before any work ----------------------------------------------


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, spm_cache) -> TrainConfig:
    """A 4-step run with a time budget (so Lightning's Timer state is in its checkpoints)."""
    cfg = train_config(
        tmp_path_factory.mktemp("short"),
        spm_cache,
        SHORT + ["trainer.max_steps=4", "trainer.val_check_interval=4", "trainer.max_time=00:01:00:00"],
    )
    train(cfg)
    return cfg


def test_resume_takes_the_tokenizer_from_the_checkpoint_not_from_a_new_training(short_run, tmp_path) -> None:
    """With an empty tokenizer cache a resume must not train SentencePiece again (its sampling is not seeded
    on large corpora, so a retrained model could differ): the checkpoint's tokenizer is used."""
    cold = tmp_path / "cold-cache"
    overrides = SHORT + ["trainer.max_steps=6", "trainer.val_check_interval=6", "trainer.max_time=00:01:00:00"]
    cfg = train_config(Path(short_run.run_dir), cold, [*overrides, "resume=last"])
    result = train(cfg)
    assert result.steps == 6
    assert not list((cold / "spm").rglob("*.model"))  # no SentencePiece model was trained into the cache
    (prepared,) = [p for p in (cold / "prepared").iterdir() if p.is_dir()]  # prepared with the checkpoint's tokenizer
    assert (prepared / "tokenizer" / "joint.model").read_bytes() == result_tokenizer(short_run)


def result_tokenizer(run: TrainConfig) -> bytes:
    """The joint SentencePiece model a run saved in its directory."""
    return (Path(run.run_dir) / "tokenizer" / "joint.model").read_bytes()


def test_resume_with_other_tokenizer_settings_is_refused_naming_them(short_run, spm_cache) -> None:
    overrides = SHORT + ["tokenizer.vocab_size=299", "trainer.max_steps=8", "resume=last"]
    cfg = train_config(Path(short_run.run_dir), spm_cache, overrides)
    with pytest.raises(
        CheckpointError, match=r"different tokenizer.*tokenizer\.vocab_size \(checkpoint 300, config 299\)"
    ):
        train(cfg)


def test_resume_with_a_spent_time_budget_says_so_before_any_work(short_run, spm_cache, capsys) -> None:
    from nmt.config import ConfigError

    overrides = SHORT + ["trainer.max_steps=40", "trainer.max_time=00:00:00:00", "resume=last"]
    cfg = train_config(Path(short_run.run_dir), spm_cache, overrides)
    with pytest.raises(ConfigError, match=r"already trained for 00:00:00:\d\d: max_time counts the whole run"):
        train(cfg)
    assert "data:" not in capsys.readouterr().err  # refused before data preparation


def test_tensorboard_logger_writes_event_files(tmp_path, spm_cache) -> None:
    cfg = train_config(
        tmp_path, spm_cache, SHORT + ["trainer.max_steps=2", "trainer.val_check_interval=2", "logger=tensorboard"]
    )
    train(cfg)
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))


def test_tensorboard_logger_without_tensorboard_names_the_extra(tmp_path, spm_cache, monkeypatch) -> None:
    from importlib import util

    from nmt.config import ConfigError

    find_spec = util.find_spec
    monkeypatch.setattr(
        util, "find_spec", lambda name, *a: None if "tensorboard" in name.lower() else find_spec(name, *a)
    )
    cfg = train_config(tmp_path, spm_cache, SHORT + ["trainer.max_steps=2", "logger=tensorboard"])
    with pytest.raises(ConfigError, match=r"pip install 'nmt-toolkit\[tensorboard\]'"):
        train(cfg)


def test_validation_scores_sentences_without_any_allowed_hypothesis_as_empty(tmp_path, spm_cache) -> None:
    """Blocking repeated 1-grams with a minimum length above the vocabulary leaves no finite hypothesis for
    any validation sentence: validation must score empty lines (it used to crash on `nbest[0]`)."""
    blocked = ["decode.no_repeat_ngram=1", "decode.min_len=400", "decode.max_len_a=0", "decode.max_len_b=405"]
    cfg = train_config(tmp_path, spm_cache, SHORT + ["trainer.max_steps=2", "trainer.val_check_interval=2", *blocked])
    assert train(cfg).best_bleu == 0.0
