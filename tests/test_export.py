"""Export to CTranslate2 and translation with it: the same network, the same lines, atomic output, clear refusals.

Uses the session's tiny model (`tiny_run`), exported once per module; refused architectures are tiny
untrained networks saved with the `nmt.checkpoint` helpers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import untrained_checkpoint

from nmt.cli import translate
from nmt.config import ConfigError, DataConfig, DecodeConfig, TranslateConfig
from nmt.ctranslate2.directory import ExportError
from nmt.ctranslate2.engine import load_ctranslate2
from nmt.ctranslate2.export import export_ctranslate2
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.decode.beam import length_penalty
from nmt.decode.translator import Translation, Translator
from nmt.errors import MissingExtraError
from nmt.model import Transformer

ctranslate2 = pytest.importorskip("ctranslate2", reason="needs the ctranslate2 extra (installed by .[dev])")

GREEDY = DecodeConfig(beam_size=1)
FOREIGN = ["你好，世界。", "🙂🚀 emoji only 🎉"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported(model_path, tmp_path_factory) -> Path:
    """The tiny model as a float32 CTranslate2 directory."""
    output = tmp_path_factory.mktemp("export") / "ct2"
    export_ctranslate2(model_path, output)
    return output


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return get_corpus(DataConfig(), "test").src[:300]


@pytest.fixture(scope="module")
def torch_greedy(model_path) -> Translator:
    return Translator.from_checkpoint(model_path, GREEDY, device="cpu")


def _at_limit(translator: Translator, lines: list[str], out: list[Translation]) -> list[int]:
    """The lines whose output reached the length limit: max_len_a * src_len + max_len_b tokens, src_len with EOS."""
    ids = translator.tokenizer.encode_src(lines)
    limits = [int(GREEDY.max_len_a * (len(s) + 1) + GREEDY.max_len_b) for s in ids]
    return [i for i, (t, limit) in enumerate(zip(out, limits, strict=True)) if t.tokens >= limit]


def test_greedy_output_is_torch_greedy_on_every_line(exported, lines, torch_greedy):
    """Every line, as the README says. CTranslate2 applies one length limit per batch, the longest source's
    (`search_options`): a line that reaches its own limit in torch (a tiny model looping) would run on past it
    in a batch, so it is translated alone, where the limit is its own."""
    ours = torch_greedy.translate(lines)
    ct2 = load_ctranslate2(exported, GREEDY, device="cpu", threads=1)
    theirs = ct2.translate(lines)
    at_limit = _at_limit(torch_greedy, lines, ours)
    print(f"{len(at_limit)} of {len(lines)} lines reach the length limit")
    for i in at_limit:
        [theirs[i]] = ct2.translate([lines[i]])
    assert [t.best for t in theirs] == [o.best for o in ours]


def _renormalisation(model: Transformer, src: list[int], ids: list[int]) -> float:
    """What CTranslate2 adds to our score of output `ids`: it removes BOS and PAD before its softmax
    (`suppress_sequences`), we after ours, so each of its token log-probs is ours - log(1 - p(BOS) - p(PAD)).
    Summed over the tokens and EOS, normalised by our length penalty, from the teacher-forced network."""
    with torch.no_grad():
        logits = model(torch.tensor([src + [EOS_ID]]), torch.tensor([[BOS_ID, *ids]]))  # [1, T, V]
    p = logits[0].double().softmax(-1)  # [T, V]
    return -torch.log1p(-(p[:, BOS_ID] + p[:, PAD_ID])).sum().item() / length_penalty(len(ids) + 1, GREEDY)


def test_greedy_scores_differ_from_torch_only_by_the_renormalisation(exported, lines, torch_greedy):
    """Scores equal ours plus `_renormalisation` to float32 rounding: 1e-4 per token (EOS included), the tolerance
    of the per-token log-probs below, for a length-normalised sum (measured up to 9e-5 on the session's model
    trained with 2 threads, 3e-4 on one trained with 1; without the term, up to 3e-3). Lines at the length limit
    are left out: there CTranslate2 stops without EOS where we force one (`search_options`), another score."""
    srcs = torch_greedy.tokenizer.encode_src(lines)
    ours = torch_greedy.engine.translate_ids(srcs, GREEDY)
    theirs = load_ctranslate2(exported, GREEDY, device="cpu", threads=1).engine.translate_ids(srcs, GREEDY)
    at_limit = set(_at_limit(torch_greedy, lines, torch_greedy.translate(lines)))
    for i, (src, (our_ids, our_scores), (their_ids, their_scores)) in enumerate(zip(srcs, ours, theirs, strict=True)):
        if i in at_limit:
            continue
        assert their_ids == our_ids, lines[i]
        expected = our_scores[0] + _renormalisation(torch_greedy.model, src, our_ids[0])
        assert their_scores[0] == pytest.approx(expected, abs=1e-4 * (len(our_ids[0]) + 1)), lines[i]


def test_per_token_log_probs_equal_the_torch_network(exported, lines, torch_greedy):
    """Teacher-forced log-probs of every target token, EOS included: the converted weights are the same network."""
    ct2 = load_ctranslate2(exported, GREEDY, device="cpu", threads=1)
    tokenizer, model = torch_greedy.tokenizer, torch_greedy.model
    src_ids = tokenizer.encode_src(lines[:20])
    tgt_ids = tokenizer.encode_tgt([t.best for t in torch_greedy.translate(lines[:20])])
    src_pieces, tgt_pieces = tokenizer.src_pieces(), tokenizer.tgt_pieces()
    results = ct2.engine.model.score_batch(
        [[src_pieces[i] for i in s] for s in src_ids], [[tgt_pieces[i] for i in t] for t in tgt_ids]
    )
    for src, tgt, result in zip(src_ids, tgt_ids, results, strict=True):
        with torch.no_grad():
            logits = model(torch.tensor([src + [EOS_ID]]), torch.tensor([[BOS_ID, *tgt]]))  # [1, T, V]
        expected = logits[0].log_softmax(-1).gather(1, torch.tensor([tgt + [EOS_ID]]).T)[:, 0]  # [T]
        assert result.log_probs == pytest.approx(expected.tolist(), abs=1e-4)


def test_beam_nbest_lists_are_sorted_and_scored_as_torch_scores_them(exported, lines, model_path):
    """CTranslate2's beam rules differ (see `search_options`), but a hypothesis both find gets the same score."""
    decode = DecodeConfig(beam_size=5, n_best=3)
    ours = Translator.from_checkpoint(model_path, decode, device="cpu").translate(lines[:100])
    theirs = load_ctranslate2(exported, decode, device="cpu", threads=1).translate(lines[:100])
    shared = 0
    for t, o in zip(theirs, ours, strict=True):
        assert len(set(t.texts)) == len(t.texts) == 3 and t.scores == sorted(t.scores, reverse=True)
        torch_score = dict(zip(o.texts, o.scores, strict=True))
        for text, score in zip(t.texts, t.scores, strict=True):
            if text in torch_score:
                assert score == pytest.approx(torch_score[text], abs=1e-2), text
                shared += 1
    assert shared >= 200  # most hypotheses are found by both


def test_int8_export_keeps_one_line_per_input_line(model_path, tmp_path, lines, torch_greedy):
    meta = export_ctranslate2(model_path, tmp_path / "int8", quantization="int8")
    assert meta["quantization"] == "int8" and json.loads((tmp_path / "int8" / "nmt_export.json").read_text()) == meta
    translator = load_ctranslate2(tmp_path / "int8", GREEDY, device="cpu", threads=1)
    mixed = [lines[0], "", FOREIGN[0], "   ", lines[1], FOREIGN[1], ""]
    out = translator.translate(mixed)
    assert len(out) == len(mixed)
    assert [t.best == "" for t in out] == [not line.strip() for line in mixed]
    pairs = zip(translator.translate(lines), torch_greedy.translate(lines), strict=True)
    same = sum(t.best == o.best for t, o in pairs)
    assert same >= 0.8 * len(lines), f"int8 agrees with float32 torch on only {same} of {len(lines)} lines"


@pytest.mark.parametrize("attention", ["dot", "additive"])
def test_attention_ctranslate2_lacks_is_refused(model_path, tmp_path, attention):
    ckpt = untrained_checkpoint(model_path, tmp_path / f"{attention}.pt", attention)
    with pytest.raises(ExportError, match=f"`model.attention` must be scaled_dot .* but is '{attention}'"):
        export_ctranslate2(ckpt, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]


@pytest.mark.parametrize("weights", ["entmax15", "hard"])
def test_attention_weights_ctranslate2_lacks_are_refused(model_path, tmp_path, weights):
    ckpt = untrained_checkpoint(model_path, tmp_path / f"{weights}.pt", weights=weights)
    with pytest.raises(ExportError, match=f"`model.attention_weights` must be softmax .* but is '{weights}'"):
        export_ctranslate2(ckpt, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]


def test_interrupted_export_leaves_the_output_as_it_was(model_path, tmp_path, monkeypatch):
    def crash(spec, output_dir):
        (Path(output_dir) / "model.bin").write_bytes(b"half a model")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ctranslate2.specs.TransformerSpec, "save", crash)
        with pytest.raises(KeyboardInterrupt):
            export_ctranslate2(model_path, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # no output, no temporary directory
    export_ctranslate2(model_path, tmp_path / "old")
    before = {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()}
    with monkeypatch.context() as patch:
        patch.setattr(ctranslate2.specs.TransformerSpec, "save", crash)
        with pytest.raises(KeyboardInterrupt):
            export_ctranslate2(model_path, tmp_path / "old", quantization="int8")
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()} == before


def test_existing_directory_other_than_an_export_is_refused(model_path, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    with pytest.raises(ExportError, match="not an earlier CTranslate2 export"):
        export_ctranslate2(model_path, tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_missing_extra_names_it(model_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # `import ctranslate2` now raises ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "nmt-toolkit\[ctranslate2\]"'):
        export_ctranslate2(model_path, tmp_path / "out")


def test_model_of_the_other_backend_is_refused_naming_the_right_one(model_path, exported):
    with pytest.raises(ConfigError, match="backend=ctranslate2"):
        translate.run(TranslateConfig(ckpt=str(exported), backend="torch", num_threads=1))
    with pytest.raises(ExportError, match="backend=torch"):
        translate.run(TranslateConfig(ckpt=str(model_path), backend="ctranslate2", num_threads=1))


def _script(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def test_export_and_translate_commands_keep_every_line(model_path, tmp_path, lines):
    subprocess.run([_script("nmt-export"), f"ckpt={model_path}", "output=ct2"], cwd=tmp_path, check=True, timeout=300)
    mixed = [lines[0], "", lines[1], "  \t ", FOREIGN[0], "", lines[2]]
    proc = subprocess.run(
        [_script("nmt-translate"), "backend=ctranslate2", "ckpt=ct2", "decode=greedy", "num_threads=1"],
        input="\n".join(mixed) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    expected = load_ctranslate2(tmp_path / "ct2", GREEDY, device="cpu", threads=1).translate(mixed)
    assert proc.stdout.split("\n") == [t.best for t in expected] + [""]
    assert "sentences/s" in proc.stderr


def test_decode_precision_maps_to_ctranslate2_compute_types_per_device(exported):
    """fp16 is float16 on CUDA and refused elsewhere, as by the torch engine; int8 keeps the unquantized layers
    in float16 on CUDA (int8_float16) and in float32 on CPU."""
    from nmt.ctranslate2.engine import compute_type_for

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert {p: compute_type_for(p, cuda) for p in ("32", "bf16", "fp16", "int8")} == {
        "32": "default",
        "bf16": "bfloat16",
        "fp16": "float16",
        "int8": "int8_float16",
    }
    assert {p: compute_type_for(p, cpu) for p in ("32", "bf16", "int8")} == {
        "32": "default",
        "bf16": "bfloat16",
        "int8": "int8",
    }
    with pytest.raises(ExportError, match=r"`decode.precision=fp16` runs on CUDA only, but the device is cpu"):
        compute_type_for("fp16", cpu)
    translator = load_ctranslate2(exported, DecodeConfig(beam_size=1, precision="fp16"), device="cpu", threads=1)
    with pytest.raises(ExportError, match="runs on CUDA only"):
        translator.translate(["a line"])
