"""The GPU tier: tests that need a CUDA device, which the CPU suite cannot cover.

Every test here is marked `gpu` (a test needing several devices adds `multigpu`); `tests/conftest.py` skips
them, saying why, where no CUDA GPU is visible, so CI and CPU machines pass over this file. On a machine with
a GPU run the tier alone with `python -m pytest -m gpu` (`-m multigpu` for the tests needing several).

Add tests under the section of their subject (or a new section), taking what they need from
`tests/conftest.py`, e.g. the tiny model trained on the built-in corpus (`model_path`, trained on CPU once
per session), and keep to the suite's habit: properties (agreement with float32, lines kept), not golden
numbers.
"""

from __future__ import annotations

import dataclasses

import lightning as L
import pytest
import torch
from conftest import train_config
from train_helpers import DDP_COMMON, DDP_DROPOUT, launch_two_ranks, run_epochs

from nmt.config import DataConfig, DecodeConfig
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID
from nmt.decode.translator import Translation, Translator

pytestmark = pytest.mark.gpu

BEAM = DecodeConfig(beam_size=5)


@pytest.fixture(scope="module")
def lines() -> list[str]:
    """The built-in test set's sources."""
    return get_corpus(DataConfig(), "test").src


@pytest.fixture(scope="module")
def float32(model_path, lines) -> list[Translation]:
    """Float32 beam-search translations on CUDA: what every other precision is measured against."""
    return Translator.from_checkpoint(model_path, BEAM, device="cuda").translate(lines)


def agreement(ours: list[Translation], reference: list[Translation]) -> tuple[float, float]:
    """The share of lines whose best hypothesis is the reference's, and the largest score gap among those."""
    pairs = zip(ours, reference, strict=True)
    same = [(o.scores[0], r.scores[0]) for o, r in pairs if o.texts[:1] == r.texts[:1] and o.scores and r.scores]
    gap = max((abs(o - r) for o, r in same), default=0.0)
    return len(same) / len(reference), gap


# ---- reduced-precision decoding: nmt/decode/precision.py, nmt/ctranslate2/engine.py ----

# Least share of lines translated as float32 does, and largest score gap (normalised log-prob) on those lines.
# bfloat16 keeps 8 bits of mantissa, float16 11. The tiny model's copies on CPU, beam 5 over the 500 lines:
# bf16 99.0% of lines, gap 0.025; fp16 100%, 0.002; int8 98.2%, 0.06. GPU kernels round otherwise: some room.
AGREEMENT = {"bf16": (0.9, 0.1), "fp16": (0.95, 0.02), "int8": (0.85, 0.2)}


# ---- continuous batching: nmt/decode/continuous.py ----


@pytest.mark.parametrize("precision", ["32", "fp16"])
def test_sentences_joining_a_running_search_on_cuda_get_the_batch_search_translation(model_path, lines, precision):
    """Joining sentences get the batch search's translation; those that ask for their attention get it on the host
    (the server reads it on its event loop)."""
    decode = dataclasses.replace(BEAM, precision=precision)
    translator = Translator.from_checkpoint(model_path, decode, device="cuda")
    ids = translator.tokenizer.encode_src(lines[:60])
    offline = translator.engine.translate_ids(ids, decode)
    search = translator.engine.continuous(decode, -1)
    found, attention, start = {}, {}, 0
    while start < len(ids) or search.sentences:  # one to three sentences join before each step
        count = 1 + start % 3
        tags = list(range(start, start + count))
        search.add(ids[start : start + count], tags, [tag % 3 == 0 for tag in tags])
        start += count
        for tag, nbest, attn in search.step():
            found[tag], attention[tag] = nbest, attn
    assert all((attention[i] is None) == (i % 3 != 0) for i in range(len(ids)))
    for i, attn in attention.items():
        shapes = [(len(hyp) + 1, len(ids[i]) + 1) for hyp in found[i][0]]
        assert attn is None or ([a.shape for a in attn] == shapes and all(a.device.type == "cpu" for a in attn))
    same = sum(found[i][0][:1] == offline[i][0][:1] for i in range(len(ids)))
    # float32: CUDA divides by a Python number as a product with its reciprocal, by a tensor as a quotient (the
    # batch search's normaliser is a number, this search's a tensor): one rounding step may flip a near-tie.
    assert same >= (59 if precision == "32" else 54), f"{same} of 60 best translations equal the batch search's"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_decoding_agrees_with_float32(model_path, lines, float32, precision):
    """bf16 and fp16 weights translate most lines as float32 does, scoring them nearly the same: the softmaxes
    run in float32, and nothing overflows float16's range."""
    decode = dataclasses.replace(BEAM, precision=precision)
    translations = Translator.from_checkpoint(model_path, decode, device="cuda").translate(lines)
    same, gap = agreement(translations, float32)
    print(f"{precision}: {same:.1%} of lines as float32, scores within {gap:.4f}")
    least, most = AGREEMENT[precision]
    assert same >= least and gap <= most


def test_fp16_searches_with_a_float16_copy_and_float32_log_probs(model_path):
    """precision=fp16 decodes with float16 weights, leaves the float32 model as it was, and scores in float32."""
    from nmt.decode.precision import model_for

    model = Translator.from_checkpoint(model_path, BEAM, device="cuda").model
    fp16 = model_for(model, "fp16", torch.device("cuda"))
    assert {p.dtype for p in fp16.parameters()} == {torch.float16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    src = torch.tensor([[5, 6, 7, EOS_ID]], device="cuda")
    cache = fp16.start_decoding(fp16.encode(src, src.eq(model.pad_id)), src.eq(model.pad_id), 4)
    log_probs = fp16.decode_step(torch.tensor([BOS_ID], device="cuda"), cache)
    assert log_probs.dtype == torch.float32 and bool(log_probs.isfinite().any())
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, device="cuda"))


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_ctranslate2_on_cuda_runs_float16_and_int8_float16(model_path, lines, float32, tmp_path, precision):
    """backend=ctranslate2 on CUDA: fp16 loads as float16, int8 as int8_float16, both agreeing with float32."""
    ctranslate2 = pytest.importorskip("ctranslate2", reason="needs the ctranslate2 extra")
    if ctranslate2.get_cuda_device_count() == 0:
        pytest.skip("this ctranslate2 build sees no CUDA device")
    from nmt.ctranslate2.engine import load_ctranslate2
    from nmt.ctranslate2.export import export_ctranslate2

    export_ctranslate2(model_path, tmp_path / "ct2")
    translator = load_ctranslate2(tmp_path / "ct2", dataclasses.replace(BEAM, precision=precision), device="cuda")
    translations = translator.translate(lines)
    expected = {"fp16": "float16", "int8": "int8_float16"}[precision]
    assert translator.engine.model_for(precision).compute_type == expected
    same, _ = agreement(translations, float32)  # scores differ anyway: its length normalisation is not ours
    assert same >= AGREEMENT[precision][0]


# ---- training on CUDA: mixed precision, pinned batches, resume with workers, DDP (nmt/train/) ----

GPU_RUN = ["trainer.accelerator=gpu", "trainer.devices=1", "trainer.log_every_n_steps=5"]


class UpdatesMade(L.Callback):
    """Whether each update changed the weights (an update the GradScaler or the non-finite check skipped does not)."""

    def __init__(self) -> None:
        self.made: list[bool] = []
        self._before: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *_: object) -> None:
        self._before = {k: v.detach().clone() for k, v in module.model.state_dict().items()}

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *_: object) -> None:
        after = module.model.state_dict()
        self.made.append(any(not torch.equal(after[k], v) for k, v in self._before.items()))


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_training_skips_no_update_after_the_first_few(tmp_path, spm_cache, precision):
    """50 updates of the tiny model: fp16 starts at a loss scale of 128 (not Lightning's 2^16), so at most the first
    few updates may overflow; bf16 has no scaler and must skip none."""
    from nmt.train.run import train

    updates = UpdatesMade()
    cfg = train_config(tmp_path, spm_cache, [*GPU_RUN, f"trainer.precision={precision}", "trainer.max_steps=50"])
    train(cfg, callbacks=[updates])
    assert len(updates.made) == 50
    assert all(updates.made[5:]), [i for i, made in enumerate(updates.made) if not made]


def test_training_batches_arrive_in_pinned_memory(model_path):
    """pin_memory=True (set on GPU runs) pins every tensor of a `Batch` (torch passes objects without a
    `pin_memory` method through unpinned)."""
    from torch.utils.data import DataLoader

    from nmt.data.batching import collate

    batches = [collate([[5, 6], [7]], [[8], [9, 10]], 0, 1, 2, index=[0, 1])]
    (batch,) = DataLoader(batches, batch_size=None, pin_memory=True)
    assert all(t.is_pinned() for t in (batch.src, batch.tgt_in, batch.tgt_out, batch.index))


def test_a_run_resumed_in_epoch_two_with_loader_workers_on_a_gpu(tmp_path, spm_cache):
    """The CPU suite's epoch test (tests/test_epochs.py) on CUDA with 2 loader workers and pinned memory: the
    same batches in the same order; weights equal up to CUDA's non-deterministic reductions."""
    from nmt.checkpoint import read_raw

    gpu = [*GPU_RUN[:2], "data.num_workers=2"]
    full = run_epochs(tmp_path / "full", spm_cache, gpu)
    per_epoch = len(full.epochs()[0])
    step = next(s for s in range(5, 50, 5) if s // per_epoch == 2 and s % per_epoch)
    (midway,) = (tmp_path / "full" / "checkpoints").glob(f"step{step:06d}-*.ckpt")
    resumed = run_epochs(tmp_path / "resumed", spm_cache, gpu, resume=str(midway))
    assert resumed.batches == full.batches[step:]
    last = [read_raw(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"] for name in ("full", "resumed")]
    for key in last[0]:
        torch.testing.assert_close(last[1][key], last[0][key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.multigpu
def test_a_two_gpu_run_resumed_with_dropout_continues_with_the_same_batches(tmp_path, spm_cache):
    """tests/test_ddp.py's resume on 2 GPUs over NCCL, dropout on: each rank's random state is its own."""
    gpus = ["trainer.accelerator=gpu", "trainer.strategy=ddp", "trainer.devices=2", *DDP_COMMON, *DDP_DROPOUT]
    full = launch_two_ranks(tmp_path / "full", spm_cache, tmp_path / "full_out", [*gpus, "trainer.max_steps=12"])
    launch_two_ranks(tmp_path / "cut", spm_cache, tmp_path / "cut_out", [*gpus, "trainer.max_steps=6"])
    resumed = launch_two_ranks(
        tmp_path / "cut", spm_cache, tmp_path / "resumed_out", [*gpus, "trainer.max_steps=12", "resume=last"]
    )
    for rank in (0, 1):
        assert resumed[rank]["train"] == full[rank]["train"][6:]
        for key, value in full[rank]["weights"][12].items():
            torch.testing.assert_close(resumed[rank]["weights"][12][key], value, rtol=1e-4, atol=1e-5, msg=key)
