"""Translation with a trained checkpoint: quality, line preservation, batching, truncation, safe loading.

Uses the session's tiny model (`tiny_run`: the tiny preset trained on the built-in
English->German corpus). Checkpoint tests craft broken or hostile files from it, or
save a tiny untrained `Transformer` with the `nmt.checkpoint` helpers.
"""

import pathlib
from pathlib import Path

import pytest
import sacrebleu
import torch

from nmt.checkpoint import CheckpointError, load_checkpoint, metadata, save_checkpoint
from nmt.config import ConfigError, DataConfig, DecodeConfig, ModelConfig
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.decode.translator import Translator
from nmt.model import Transformer

# Out-of-domain lines: the model has never seen these scripts or symbols, but each must still get one line.
FOREIGN = ["你好，世界。", "Grüße aus Köln, schöne Übung!", "🙂🚀 emoji only 🎉", "Ωμέγα ↔ ∑"]
UNTRAINED = ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=32, dropout=0.0, max_positions=16)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def translator(model_path) -> Translator:
    return Translator.from_checkpoint(model_path, DecodeConfig(beam_size=5), device="cpu")


@pytest.fixture(scope="module")
def test_set():
    return get_corpus(DataConfig(), "test")


def test_translates_builtin_test_set_well(translator, test_set):
    hyps = [t.best for t in translator.translate(test_set.src)]
    exact = sum(h == r for h, r in zip(hyps, test_set.tgt, strict=True)) / len(hyps)
    assert sacrebleu.corpus_bleu(hyps, [test_set.tgt]).score > 50
    assert exact >= 0.7, f"only {exact:.0%} exact matches"


def test_one_output_line_per_input_line_in_order(translator, test_set):
    known = test_set.src[:6]
    lines = [known[0], "", known[1], "   ", FOREIGN[0], "\t \u3000", known[2], FOREIGN[1], FOREIGN[2], ""]
    lines += [FOREIGN[3], known[3], " " + known[4] + "  ", known[5]]
    out = translator.translate(lines)
    assert len(out) == len(lines)
    for line, translation in zip(lines, out, strict=True):
        if not line.strip():
            assert translation.best == "" and translation.texts == []
        else:
            assert translation.best == translator.translate([line.strip()])[0].best, line
            assert "\n" not in translation.best


def test_only_empty_lines_never_touch_the_model(translator, monkeypatch):
    def fail(srcs):
        raise AssertionError(f"the model was asked to translate {srcs}")

    monkeypatch.setattr(translator, "_translate_batch", fail)
    out = translator.translate(["", "", "  ", "\t"])
    assert [t.best for t in out] == ["", "", "", ""]


def test_batched_equals_one_by_one(translator, test_set):
    src = test_set.src
    # Mixed lengths: single sentences, and two or three joined, interleaved so batches must be re-sorted.
    lines = [src[i] if i % 3 else " ".join(src[i : i + 1 + i % 2 + 1]) for i in range(24)] + FOREIGN
    alone = [translator.translate([line])[0] for line in lines]
    small_batches = Translator(translator.engine, translator.tokenizer, DecodeConfig(beam_size=5, max_tokens=60))
    for together in (translator.translate(lines), small_batches.translate(lines)):
        assert [t.texts for t in together] == [t.texts for t in alone]
        for t, a in zip(together, alone, strict=True):
            assert t.scores == pytest.approx(a.scores, abs=1e-4)


def test_sentence_cap_cuts_translation_batches_and_changes_no_output(translator, test_set, monkeypatch):
    """`decode.max_sentences=2` batches at most 2 sentences (before the beam: 2 x 5 hypotheses) and, batching
    being invisible in the output, translates exactly as without the cap."""
    lines = test_set.src[:24]
    uncapped = translator.translate(lines)
    capped = Translator(translator.engine, translator.tokenizer, DecodeConfig(beam_size=5, max_sentences=2))
    engine_translate, sizes = translator.engine.translate_ids, []

    def spy(srcs, cfg):
        sizes.append(len(srcs))
        return engine_translate(srcs, cfg)

    monkeypatch.setattr(translator.engine, "translate_ids", spy)
    together = capped.translate(lines)
    assert sizes and max(sizes) == 2 and sum(sizes) == len(lines)
    assert [t.texts for t in together] == [t.texts for t in uncapped]
    for t, u in zip(together, uncapped, strict=True):
        assert t.scores == pytest.approx(u.scores, abs=1e-4)
    sizes.clear()
    translator.translate(lines)  # no cap: max_tokens alone, which holds them all
    assert sizes == [len(lines)]


def test_long_inputs_are_truncated_with_one_warning(model_path, test_set, capsys):
    translator = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=5), device="cpu")
    words = " ".join(test_set.src).split()
    long = " ".join((words * (3000 // len(words) + 1))[:3000])
    assert len(translator.tokenizer.encode_src([long])[0]) > translator.max_src_len
    lines = [long, test_set.src[0], long[: len(long) // 2], ""]
    out = translator.translate(lines)
    translator.warn_truncated()
    assert len(out) == 4 and out[3].best == ""
    assert out[1].best == translator.translate([test_set.src[0]])[0].best
    warnings = [line for line in capsys.readouterr().err.splitlines() if "truncated" in line]
    assert len(warnings) == 1 and "2 input line(s)" in warnings[0]


def _save_untrained(path: Path, tokenizer: dict[str, bytes], src_vocab: int, tgt_vocab: int) -> None:
    """A valid-format checkpoint holding an untrained `UNTRAINED` model and the given tokenizer."""
    torch.manual_seed(0)
    model = Transformer(UNTRAINED, src_vocab, tgt_vocab, PAD_ID)
    meta = metadata(
        UNTRAINED,
        src_vocab_size=src_vocab,
        tgt_vocab_size=tgt_vocab,
        special_ids={"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
        tokenizer=tokenizer,
        src_lang="en",
        tgt_lang="de",
        train_config={},
    )
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    save_checkpoint({"state_dict": weights, "nmt": meta, "global_step": 0}, path)


def test_untrained_checkpoint_stops_at_max_positions(model_path, tmp_path, test_set):
    tokenizer = load_checkpoint(model_path).tokenizer
    vocab = Translator.from_checkpoint(model_path, DecodeConfig(), device="cpu").tokenizer.src_vocab_size
    _save_untrained(tmp_path / "untrained.pt", tokenizer, vocab, vocab)
    lines = [" ".join(test_set.src * 10), "hello", ""]
    for beam_size in (1, 3):
        translator = Translator.from_checkpoint(tmp_path / "untrained.pt", DecodeConfig(beam_size=beam_size), "cpu")
        out = translator.translate(lines)
        assert len(out) == 3 and out[2].best == ""
        # An untrained decoder rarely stops by itself: the output must still end within the position table.
        assert all(t.tokens <= UNTRAINED.max_positions - 1 for t in out)
        assert translator.stats.truncated == 1


def test_vocab_disagreeing_with_model_is_refused(model_path, tmp_path):
    _save_untrained(tmp_path / "mismatch.pt", load_checkpoint(model_path).tokenizer, 50, 50)
    with pytest.raises(CheckpointError, match="vocabularies") as err:
        Translator.from_checkpoint(tmp_path / "mismatch.pt", DecodeConfig(), device="cpu")
    assert str(tmp_path / "mismatch.pt") in str(err.value)


class _Touch:
    """Unpickles as `Path(marker).touch()`: stands in for any code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _hostile_checkpoint(model_path: Path, path: Path, marker: Path) -> Path:
    """The real checkpoint with a code-running object hidden in its training config."""
    raw = torch.load(model_path, map_location="cpu", weights_only=True)
    raw["nmt"]["train_config"]["callback"] = _Touch(marker)
    torch.save(raw, path)
    return path


def test_hostile_payload_runs_when_unpickled_unsafely(model_path, tmp_path):
    """Control for the next test: the crafted file really does run code under a plain unpickle."""
    marker = tmp_path / "control-marker"
    torch.load(_hostile_checkpoint(model_path, tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "load",
    [load_checkpoint, lambda p: Translator.from_checkpoint(p, DecodeConfig(), "cpu")],
    ids=["load", "translator"],
)
def test_code_executing_checkpoint_is_refused(model_path, tmp_path, load):
    marker = tmp_path / "marker"
    path = _hostile_checkpoint(model_path, tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match="refused") as err:
        load(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def _truncated(model_path: Path, tmp_path: Path) -> Path:
    data = model_path.read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    return tmp_path / "half.pt"


def _text(model_path: Path, tmp_path: Path) -> Path:
    (tmp_path / "notes.pt").write_text("these are my notes, not a checkpoint\n")
    return tmp_path / "notes.pt"


def _directory(model_path: Path, tmp_path: Path) -> Path:
    (tmp_path / "run").mkdir()
    return tmp_path / "run"


def _missing(model_path: Path, tmp_path: Path) -> Path:
    return tmp_path / "no-such.pt"


@pytest.mark.parametrize(
    "make",
    [
        _truncated,
        _text,
        _directory,
        _missing,
    ],
)
def test_broken_checkpoint_gives_clear_error_naming_it(model_path, tmp_path, make):
    path = make(model_path, tmp_path)
    with pytest.raises(CheckpointError) as err:
        Translator.from_checkpoint(path, DecodeConfig(), device="cpu")
    assert str(path) in str(err.value)


def test_checkpoint_with_incomplete_metadata_is_refused(model_path, tmp_path):
    raw = torch.load(model_path, map_location="cpu", weights_only=True)
    del raw["nmt"]["special_ids"]
    torch.save(raw, tmp_path / "incomplete.pt")
    with pytest.raises(CheckpointError, match="special_ids"):
        load_checkpoint(tmp_path / "incomplete.pt")


def test_checkpoint_needs_no_other_file(model_path, tmp_path, test_set, monkeypatch):
    """Self-contained: a copy alone in an empty directory translates like the original."""
    copy = tmp_path / "alone" / "model.pt"
    copy.parent.mkdir()
    copy.write_bytes(model_path.read_bytes())
    monkeypatch.chdir(copy.parent)
    out = Translator.from_checkpoint(copy, DecodeConfig(beam_size=5), device="cpu").translate(test_set.src[:5])
    original = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=5), device="cpu")
    assert [t.best for t in out] == [t.best for t in original.translate(test_set.src[:5])]


def test_sentences_without_any_allowed_hypothesis_still_give_one_line_each(model_path, test_set) -> None:
    """Blocking repeated 1-grams with a minimum length above the vocabulary size leaves no finite hypothesis;
    each such line becomes an empty translation (it used to crash on `nbest[0]`)."""
    probe = Translator.from_checkpoint(model_path, DecodeConfig(), "cpu")
    vocab = probe.tokenizer.tgt_vocab_size
    cfg = DecodeConfig(beam_size=1, min_len=vocab + 1, no_repeat_ngram=1, max_len_a=0.0, max_len_b=vocab + 5)
    translator = Translator.from_checkpoint(model_path, cfg, "cpu")
    translations = translator.translate(test_set.src[:2] + [""])
    assert [t.best for t in translations] == ["", "", ""]
    assert [t.tokens for t in translations] == [0, 0, 0]


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_every_precision_keeps_lines_and_quality(model_path, test_set, precision):
    """bf16 and int8 keep one line per input line (empty for empty) and translate about as well as float32."""
    lines = test_set.src[:200]
    mixed = [lines[0], "", lines[1], "  ", FOREIGN[0], lines[2], ""]
    reference = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=2), device="cpu")
    translator = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=2, precision=precision), device="cpu")
    out = translator.translate(mixed)
    assert len(out) == len(mixed)
    assert [t.best == "" for t in out] == [not line.strip() for line in mixed]
    ours = [t.best for t in translator.translate(lines)]
    theirs = [t.best for t in reference.translate(lines)]
    bleu = sacrebleu.corpus_bleu(ours, [test_set.tgt[:200]]).score
    assert bleu > sacrebleu.corpus_bleu(theirs, [test_set.tgt[:200]]).score - 3.0
    assert sum(a == b for a, b in zip(ours, theirs, strict=True)) >= 150  # mostly the very same output


def test_bf16_decodes_with_a_bfloat16_copy_and_float32_log_probs(model_path):
    """precision=bf16 searches with bfloat16 weights, leaves the float32 model as it was, and scores in float32."""
    from nmt.decode.precision import model_for

    model = Translator.from_checkpoint(model_path, DecodeConfig(), device="cpu").model
    bf16 = model_for(model, "bf16", torch.device("cpu"))
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    src = torch.tensor([[5, 6, 7, EOS_ID]])
    cache = bf16.start_decoding(bf16.encode(src, src.eq(model.pad_id)), src.eq(model.pad_id), 4)
    log_probs = bf16.decode_step(torch.tensor([BOS_ID]), cache)
    assert log_probs.dtype == torch.float32
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this PyTorch build has no oneDNN")
def test_float32_on_cpu_runs_its_linear_layers_on_onednn_with_the_same_weights(model_path, test_set):
    """precision=32 on CPU searches with oneDNN linear layers holding the model's own weight tensors (no copy),
    computing what the model computes (float32 rounding apart) and translating the same."""
    from nmt.decode.precision import OneDNNLinear, model_for

    translator = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=2), device="cpu")
    model = translator.model
    fast = model_for(model, "32", torch.device("cpu"))
    linears = [m for m in fast.modules() if isinstance(m, OneDNNLinear)]
    assert linears and not any(type(m) is torch.nn.Linear for m in fast.modules())
    weights = {p.data_ptr() for p in model.parameters()}
    assert all(p.data_ptr() in weights for p in fast.parameters())  # shared, not copied
    assert fast.output.weight is model.tgt_embed.tokens.weight  # ties survive
    src, tgt = torch.tensor([[5, 6, 7, EOS_ID]]), torch.tensor([[BOS_ID, 8, 9]])
    with torch.inference_mode():
        assert torch.allclose(fast(src, tgt), model(src, tgt), atol=1e-4)
    lines = test_set.src[:100]
    ours = [t.best for t in translator.translate(lines)]
    assert isinstance(translator.engine._models["32"].output, OneDNNLinear)  # the engine searched on oneDNN
    translator.engine._models["32"] = model  # the model's own (MKL) linear layers
    assert ours == [t.best for t in translator.translate(lines)]


def test_a_quantized_model_refuses_to_train(model_path):
    from nmt.decode.precision import QuantizedTrainingError, quantize_int8

    model = Translator.from_checkpoint(model_path, DecodeConfig(), device="cpu").model
    quantized = quantize_int8(model)
    assert not any(isinstance(m, torch.nn.Linear) for m in quantized.modules())  # every linear layer is int8
    src = torch.tensor([[5, 6, EOS_ID]])
    quantized(src, torch.tensor([[BOS_ID, 5]]))  # teacher forcing in eval mode works (e.g. for scoring) ...
    with pytest.raises(QuantizedTrainingError, match="cannot be trained"):
        quantized.train()(src, torch.tensor([[BOS_ID, 5]]))  # ... but not in training mode
    assert model.training is False and any(isinstance(m, torch.nn.Linear) for m in model.modules())  # a copy


def test_int8_on_a_gpu_is_refused_with_a_hint():
    from nmt.decode.precision import model_for

    with pytest.raises(ConfigError, match="CPU only"):
        model_for(Transformer(UNTRAINED, 20, 20, PAD_ID), "int8", torch.device("cuda"))


def test_fp16_off_cuda_is_refused_with_a_hint(model_path):
    from nmt.decode.precision import model_for

    with pytest.raises(ConfigError, match=r"`decode.precision=fp16` runs on CUDA only, but the device is cpu"):
        model_for(Transformer(UNTRAINED, 20, 20, PAD_ID), "fp16", torch.device("cpu"))
    translator = Translator.from_checkpoint(model_path, DecodeConfig(precision="fp16"), device="cpu")
    with pytest.raises(ConfigError, match="runs on CUDA only"):
        translator.translate(["a line"])
