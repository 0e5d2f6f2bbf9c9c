"""Attention as alignment and as something to prune: nmt-align, alignments=true, gold links, head pruning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from nmt.checkpoint import CheckpointError, load_checkpoint, read_raw, save_checkpoint
from nmt.cli import align, translate
from nmt.config import AlignConfig, ConfigError, DecodeConfig, ModelConfig, TranslateConfig, check
from nmt.data.builtin import _unique_clauses, builtin_alignments, builtin_corpus, gold_links, to_english, to_german
from nmt.data.corpus import CorpusError
from nmt.decode.align import Aligner, bidirectional_links, symmetrize
from nmt.decode.translator import Translator
from nmt.evaluate.alignment import GoldAlignment, alignment_error_rate, read_pairs
from nmt.model import Transformer
from nmt.model.head_removal import prune_heads, restore_heads

pytestmark = pytest.mark.usefixtures("one_thread")

DROP = {("enc", 0): {1}, ("dec_self", 0): {0, 1}, ("dec_cross", 1): {0}}  # one layer loses every head


def _model(attention: str = "scaled_dot") -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_heads=2, enc_layers=2, dec_layers=2, d_ff=64, dropout=0.0, attention=attention)
    return Transformer(cfg, 40, 40, 0).eval()


def _gated(model: Transformer, drop: dict) -> Transformer:
    for key, heads in drop.items():
        gate = torch.ones(model.cfg.n_heads)
        gate[sorted(heads)] = 0.0
        model.attentions()[key].head_gate = gate
    return model


@pytest.mark.parametrize("attention", ["scaled_dot", "additive"])
def test_pruned_model_computes_what_the_gated_model_computes(attention) -> None:
    model = _model(attention)
    pruned = prune_heads(model, DROP)
    src, tgt = torch.randint(4, 40, (3, 7)), torch.randint(4, 40, (3, 5))
    src[0, 4:] = 0  # padding
    assert (
        pruned.cfg.enc_heads == [1, 2] and pruned.cfg.dec_self_heads == [0, 2] and pruned.cfg.dec_cross_heads == [2, 1]
    )
    assert pruned.param_count() < model.param_count()
    # Equal up to float32 rounding: matmuls of other shapes run other kernels (1.07e-6 apart on an AMX Xeon).
    torch.testing.assert_close(pruned(src, tgt), _gated(model, DROP)(src, tgt), rtol=1e-5, atol=1e-5)
    # Restoring the heads as zeros changes nothing either (what CTranslate2 export relies on).
    torch.testing.assert_close(restore_heads(pruned)(src, tgt), pruned(src, tgt), rtol=1e-5, atol=1e-5)
    assert restore_heads(pruned).cfg.enc_heads == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_pruned_model_keeps_its_dtype_and_device(dtype) -> None:
    model = _model().to(dtype)
    pruned = prune_heads(model, DROP)
    assert {(p.dtype, p.device) for p in pruned.parameters()} == {(dtype, next(model.parameters()).device)}


@pytest.mark.parametrize("layer", [-1, 2])
def test_cross_attention_of_a_layer_without_heads_or_past_the_last_is_refused(layer) -> None:
    """Links from a layer whose cross-attention heads were all pruned would be the mean of no heads (NaN)."""
    pruned = prune_heads(_model(), {("dec_cross", 1): {0, 1}})
    with pytest.raises(ConfigError, match="no cross-attention heads left" if layer == -1 else r"must be in \[-2, 1\]"):
        pruned.check_cross_attention(layer)
    pruned.check_cross_attention(0)  # the other layer has its heads


def test_pruning_unknown_attention_is_refused() -> None:
    with pytest.raises(ValueError, match="no attention"):
        prune_heads(_model(), {("enc", 5): {0}})


def test_head_counts_are_validated() -> None:
    with pytest.raises(ConfigError, match="enc_heads"):
        check(ModelConfig(n_heads=4, enc_layers=2, enc_heads=[4, 5]))
    check(ModelConfig(n_heads=4, enc_layers=2, enc_heads=[0, 3]))


def test_attention_maps_cover_every_layer_and_match_forward() -> None:
    model = _model()
    src, tgt = torch.randint(4, 40, (2, 6)), torch.randint(4, 40, (2, 4))
    logits, maps = model.attention_maps(src, tgt)
    assert [m.shape for m in maps.encoder] == [(2, 2, 6, 6)] * 2
    assert [m.shape for m in maps.decoder] == [(2, 2, 4, 4)] * 2
    assert [m.shape for m in maps.cross] == [(2, 2, 4, 6)] * 2
    assert torch.triu(maps.decoder[0][0, 0], diagonal=1).abs().max() == 0  # causal
    plain, last = model(src, tgt, need_attn=True)
    torch.testing.assert_close(logits, plain)
    torch.testing.assert_close(last, maps.cross[-1].mean(1))


def _pruned_checkpoint(model_path: Path, path: Path) -> tuple[Path, dict]:
    """The tiny trained model with some heads physically removed, saved as a normal checkpoint."""
    raw, ckpt = read_raw(model_path), load_checkpoint(model_path)
    model = Transformer(ckpt.model_config, ckpt.src_vocab_size, ckpt.tgt_vocab_size, ckpt.pad_id)
    model.load_state_dict(ckpt.state_dict)
    drop = {("enc", 0): {0}, ("dec_cross", len(model.decoder) - 1): {1}}
    pruned = prune_heads(model, drop)
    raw["nmt"]["model_config"] = dataclasses.asdict(pruned.cfg)
    save_checkpoint({"state_dict": {f"model.{k}": v for k, v in pruned.state_dict().items()}, "nmt": raw["nmt"]}, path)
    return path, drop


def test_pruned_checkpoint_translates_like_the_gated_model(model_path, tmp_path) -> None:
    path, drop = _pruned_checkpoint(model_path, tmp_path / "pruned.pt")
    lines = builtin_corpus("test", 40, seed=1).src
    for decode in (DecodeConfig(beam_size=1), DecodeConfig(beam_size=4)):
        pruned = Translator.from_checkpoint(path, decode, device="cpu")
        gated = Translator.from_checkpoint(model_path, decode, device="cpu")
        _gated(gated.model, drop)
        assert [t.best for t in pruned.translate(lines)] == [t.best for t in gated.translate(lines)]
    assert load_checkpoint(path).model_config.enc_heads[0] == load_checkpoint(model_path).model_config.n_heads - 1


def test_pruned_checkpoint_exports_to_ctranslate2_with_identical_greedy_output(model_path, tmp_path) -> None:
    pytest.importorskip("ctranslate2", reason="the ctranslate2 extra is not installed")
    from nmt.ctranslate2.engine import load_ctranslate2
    from nmt.ctranslate2.export import export_ctranslate2

    path, _ = _pruned_checkpoint(model_path, tmp_path / "pruned.pt")
    export_ctranslate2(path, tmp_path / "ct2")
    lines = builtin_corpus("test", 40, seed=1).src
    greedy = DecodeConfig(beam_size=1)
    ours = [t.best for t in Translator.from_checkpoint(path, greedy, device="cpu").translate(lines)]
    theirs = [t.best for t in load_ctranslate2(tmp_path / "ct2", greedy, "cpu", 1).translate(lines)]
    assert ours == theirs


# ---- gold links of the built-in corpus, and alignment quality on it ----


def test_builtin_gold_links_link_every_word_once_per_target_word() -> None:
    for clause in _unique_clauses(300, seed=5):
        links = gold_links(clause)
        en, de = to_english(clause).split(), to_german(clause).split()
        assert {i for i, _ in links} == set(range(len(en)))
        assert {j for _, j in links} == set(range(len(de)))
        assert all(0 <= i < len(en) and 0 <= j < len(de) for i, j in links)
    today = next(c for c in _unique_clauses(300, seed=5) if c.adverb and c.subject == "you all" and c.number == 1)
    # "today you all see one red X." -> "Heute seht ihr eine rote X.": verb second, "you all" -> "ihr", "one" -> article
    assert gold_links(today) == {(0, 0), (1, 2), (2, 2), (3, 1), (4, 3), (5, 4), (6, 5)}


def test_attention_of_a_tiny_trained_model_aligns_the_builtin_corpus(model_path) -> None:
    corpus = builtin_corpus("test", 200, seed=1)
    gold = [GoldAlignment(frozenset(links), frozenset(links)) for links in builtin_alignments("test", 200, seed=1)]
    aligner = Aligner.from_checkpoint(model_path, device="cpu")
    results = aligner.align_all(list(zip(corpus.src, corpus.tgt, strict=True)), ["attention", "shift"], [0, -1])
    scores = {key: alignment_error_rate(links, gold).aer for key, links in results.items()}
    assert min(scores.values()) < 0.25, scores  # the best reading of the attention finds most links
    assert all(len(links) == len(t.split()) for links, t in zip(results["attention", -1], corpus.tgt, strict=True))


def test_symmetrization_on_a_hand_made_case() -> None:
    forward = {(0, 0), (1, 1), (2, 1)}
    backward = {(0, 0), (1, 1), (1, 2)}  # as (source, target)
    assert symmetrize(forward, backward, "intersection") == {(0, 0), (1, 1)}
    assert symmetrize(forward, backward, "union") == forward | backward
    # grow-diag adds (2, 1) (source 2 unaligned) and (1, 2) (target 2 unaligned), both next to (1, 1).
    assert symmetrize(forward, backward, "grow-diag") == forward | backward
    assert symmetrize({(0, 0), (3, 3)}, {(0, 0)}, "grow-diag") == {(0, 0)}  # (3, 3) neighbours nothing accepted
    assert bidirectional_links([forward], [{(0, 0), (1, 1), (2, 1)}], "intersection") == [{(0, 0), (1, 1)}]
    with pytest.raises(ValueError, match="one of"):
        symmetrize(forward, backward, "grow")


def test_pairs_file_errors_name_file_and_line(tmp_path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("a b ||| c d\nno separator\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"pairs.txt, line 2: expected `source \|\|\| target`"):
        read_pairs(path)


def test_gold_links_past_their_pairs_words_are_refused_naming_the_line(tmp_path) -> None:
    """1-indexed gold read as 0-indexed shifts every link: the last word's links fall past the pair."""
    (tmp_path / "pairs").write_text("a b ||| c d\na b c ||| d e f\n")
    (tmp_path / "gold").write_text("1-1 2-2\n1-1 2-2 3-3\n")
    common = dict(ckpt="never-loaded.pt", input=str(tmp_path / "pairs"), gold=str(tmp_path / "gold"), num_threads=1)
    with pytest.raises(CorpusError, match=r"gold, line 1: link 2-2 is past the pair's 2 source .* gold_one_indexed"):
        align.run(AlignConfig(**common))
    with pytest.raises(CheckpointError):  # 1-indexed, the links fit: on to the model, which does not exist
        align.run(AlignConfig(**common, gold_one_indexed=True))


def test_nmt_align_writes_links_and_scores_them(model_path, tmp_path, capsys) -> None:
    corpus = builtin_corpus("test", 30, seed=1)
    (tmp_path / "pairs").write_text("".join(f"{s} ||| {t}\n" for s, t in zip(corpus.src, corpus.tgt, strict=True)))
    gold = builtin_alignments("test", 30, seed=1)
    # 1-indexed, the Hansards convention
    (tmp_path / "gold").write_text("".join(" ".join(f"{i + 1}-{j + 1}" for i, j in g) + "\n" for g in gold))
    common = dict(ckpt=str(model_path), input=str(tmp_path / "pairs"), device="cpu", num_threads=1)
    align.run(AlignConfig(**common, output=str(tmp_path / "out")))
    written = (tmp_path / "out").read_text().splitlines()
    assert len(written) == 30 and all(written)
    align.run(AlignConfig(**common, gold=str(tmp_path / "gold"), gold_one_indexed=True))
    assert "30 pairs: precision" in capsys.readouterr().out
    align.run(AlignConfig(**common, gold=str(tmp_path / "gold"), gold_one_indexed=True, all_layers=True))
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + 2 * load_checkpoint(model_path).model_config.dec_layers
    # The model as its own "reverse" model exercises symmetrization end to end (not a real reverse model).
    align.run(
        AlignConfig(**common, reverse_ckpt=str(model_path), symmetrize="intersection", output=str(tmp_path / "s"))
    )
    assert len((tmp_path / "s").read_text().splitlines()) == 30
    (tmp_path / "short").write_text("1-1\n")
    with pytest.raises(CorpusError, match="has 1 lines for 30 sentence pairs"):
        align.run(AlignConfig(**common, gold=str(tmp_path / "short")))
    (tmp_path / "possible").write_text("".join(" ".join(f"{i}p{j}" for i, j in g) + "\n" for g in gold))
    with pytest.raises(CorpusError, match="has no sure links .* AER is undefined"):
        align.run(AlignConfig(**common, gold=str(tmp_path / "possible")))


def test_alignments_keep_one_line_per_input_line(model_path, tmp_path) -> None:
    lines = builtin_corpus("test", 5, seed=1).src
    (tmp_path / "in").write_text("\n".join([lines[0], "", *lines[1:], ""]) + "\n", encoding="utf-8")
    cfg = TranslateConfig(ckpt=str(model_path), input=str(tmp_path / "in"), output=str(tmp_path / "out"))
    cfg.alignments, cfg.num_threads, cfg.device = True, 1, "cpu"
    translate.run(cfg)
    out = (tmp_path / "out").read_text(encoding="utf-8").splitlines()
    assert len(out) == 7 and out[1] == " ||| " and out[6] == " ||| "
    for line in out[:1] + out[2:6]:
        text, links = line.split(" ||| ")
        targets = {int(link.split("-")[1]) for link in links.split()}
        assert targets == set(range(len(text.split())))  # every target word is linked once it is translated
    with pytest.raises(ConfigError, match="one PyTorch model"):
        translate.load_translator(TranslateConfig(ckpt=[str(model_path)] * 2, alignments=True), 1)


@pytest.mark.parametrize(("method", "layer"), [("attention", 0), ("attention", -1), ("shift", 0)])
def test_search_alignments_equal_teacher_forced_ones_on_the_same_target(model_path, method, layer) -> None:
    """Forced to write the reference (as a prefix), the search's own attention links the words as `nmt-align` does."""
    corpus = builtin_corpus("test", 40, seed=3)
    translator = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=1), "cpu")
    translator.align = (method, layer)
    found = translator.translate(corpus.src, prefix=corpus.tgt)
    aligner = Aligner.from_checkpoint(model_path, "cpu")
    forced = aligner.align(list(zip(corpus.src, corpus.tgt, strict=True)), method, layer)
    agree = total = 0
    for translation, reference, links in zip(found, corpus.tgt, forced, strict=True):
        assert translation.best.startswith(reference)
        words = len(reference.split())
        searched = {(i, j) for i, j in translation.links[0] if j < words}
        agree, total = agree + len(searched & links), total + len(links)
    assert agree / total > 0.99  # incremental and full attention differ only in float rounding
