"""Head importance, confidence and entropy; iterative pruning and `nmt-prune`; attention heatmaps and curves."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from nmt.checkpoint import SpecialIds, load_checkpoint, read_raw, save_checkpoint
from nmt.cli import align, evaluate, prune
from nmt.cli.plot import main as plot_main
from nmt.config import AlignConfig, ConfigError, DecodeConfig, EvaluateConfig, PruneConfig, check
from nmt.data.batching import teacher_forcing_batches
from nmt.data.builtin import builtin_corpus
from nmt.data.corpus import ParallelText
from nmt.decode.align import Aligner
from nmt.decode.engine import load_model
from nmt.decode.translator import Translator
from nmt.evaluate.heads import head_statistics, to_markdown
from nmt.evaluate.heatmaps import cjk_font, needs_cjk, plot_attention
from nmt.evaluate.metrics import score
from nmt.model.head_removal import prune_heads
from nmt.workflows.pruning_rounds import PruningData, prune_in_rounds, pruned_checkpoint, torch_translator_of

pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _loaded(model_path):
    ckpt = load_checkpoint(model_path)
    model, tokenizer = load_model(ckpt, model_path)
    return model, tokenizer, ckpt.special_ids


def _batches(tokenizer, special, corpus, max_tokens=512):
    return teacher_forcing_batches(
        tokenizer.encode_src(corpus.src), tokenizer.encode_tgt(corpus.tgt), special, max_tokens
    )


def test_teacher_forcing_batches_cover_each_nonempty_pair_once_within_the_budget() -> None:
    src = [[5] * n for n in (3, 1, 0, 7, 2, 4)]
    tgt = [[6] * n for n in (2, 5, 3, 0, 1, 6)]
    batches = list(teacher_forcing_batches(src, tgt, SpecialIds(pad=0, bos=1, eos=2), max_tokens=12))
    assert sorted(i for b in batches for i in b.index.tolist()) == [0, 1, 4, 5]  # 2 and 3 have an empty side
    assert all(b.tgt_in.numel() <= 12 or len(b) == 1 for b in batches)
    lengths = sorted(n for b in batches for n in b.tgt_out.ne(0).sum(1).tolist())
    assert lengths == [2, 3, 6, 7]  # each kept target once, with its EOS


def test_head_statistics_are_what_their_definitions_say(model_path) -> None:
    model, tokenizer, special = _loaded(model_path)
    corpus = builtin_corpus("valid", 60, seed=3)
    # A head whose values are zero contributes nothing, so the loss does not depend on its gate.
    silent = model.attentions()["dec_cross", 0]
    d = silent.head_dim
    with torch.no_grad():
        silent.v_proj.weight[:d] = 0.0
        silent.v_proj.bias[:d] = 0.0
    stats = head_statistics(model, _batches(tokenizer, special, corpus))
    assert all(mha.head_gate is None for mha in model.attentions().values())  # gates cleared
    assert len(stats) == sum(mha.n_heads for mha in model.attentions().values())
    by_key = {(s.kind, s.layer, s.head): s for s in stats}
    assert by_key["dec_cross", 0, 0].importance == 0.0
    assert all(s.importance > 0 for key, s in by_key.items() if key != ("dec_cross", 0, 0))
    for key in model.attentions():
        norm = math.sqrt(sum(s.normalized**2 for s in stats if s.key == key))
        assert norm == pytest.approx(1.0, rel=1e-5)
    # Confidence and entropy by hand, on one batch of one pair.
    one = ParallelText(corpus.src[:1], corpus.tgt[:1])
    (batch,) = list(_batches(tokenizer, special, one))
    with torch.no_grad():
        _, maps = model.attention_maps(batch.src, batch.tgt_in)
    weights = maps.cross[1][0, 1]  # [T, S] of decoder layer 1, head 1
    (row,) = [s for s in head_statistics(model, [batch]) if (s.kind, s.layer, s.head) == ("dec_cross", 1, 1)]
    assert row.confidence == pytest.approx(float(weights.max(-1).values.mean()), rel=1e-5)
    entropy = float(-(weights * weights.clamp_min(1e-30).log()).sum(-1).mean())
    assert row.entropy == pytest.approx(entropy, rel=1e-4)
    assert 0 < row.entropy < math.log(batch.src.size(1))
    table = to_markdown(stats).splitlines()
    assert len(table) == 2 + len(stats) and [c.strip() for c in table[2].split("|")[1:4]] == ["enc", "0", "0"]


def _pruning_inputs(model_path):
    """The tiny model, 40 validation pairs of the built-in corpus, and greedy translators."""
    model, tokenizer, special = _loaded(model_path)
    data = PruningData(tokenizer, special, builtin_corpus("valid", 40, seed=3), "de")
    return model, data, torch_translator_of(tokenizer, special, DecodeConfig(beam_size=1))


@pytest.mark.parametrize("reestimate", [False, True])
def test_pruning_in_rounds_stops_at_the_fraction_and_keeps_the_last_model(model_path, reestimate) -> None:
    model, data, translator_of = _pruning_inputs(model_path)
    result = prune_in_rounds(
        model, data, translator_of, step=0.25, fraction=0.5, reestimate=reestimate, log=lambda _: None
    )
    total = result.rounds[0].heads
    assert [r.heads for r in result.rounds] == [total, total - round(0.25 * total), total - round(0.5 * total)]
    assert result.kept == 2 and sum(mha.n_heads for mha in result.model.attentions().values()) == total // 2
    removed = [head for r in result.rounds for head in r.removed]
    assert len(removed) == len(set(removed)) == total // 2  # original ids, none removed twice
    assert [r.params for r in result.rounds] == sorted((r.params for r in result.rounds), reverse=True)
    curve = result.to_json()
    assert curve["rounds"][2]["removed_fraction"] == pytest.approx(0.5)
    # The kept model translates exactly as its round measured it.
    hyps = [t.best for t in translator_of(result.model).translate(data.valid.src)]
    assert score(hyps, [data.valid.tgt], ["bleu"], tgt_lang="de")[0].value == pytest.approx(result.rounds[2].valid_bleu)


def test_tolerance_keeps_the_most_pruned_model_within_it(model_path) -> None:
    model, data, translator_of = _pruning_inputs(model_path)
    result = prune_in_rounds(model, data, translator_of, step=0.2, tolerance=2.0, log=lambda _: None)
    base = result.rounds[0].valid_bleu
    assert all(base - r.valid_bleu <= 2.0 for r in result.rounds[: result.kept + 1])
    last = result.rounds[-1]
    assert result.kept == len(result.rounds) - 1 or base - last.valid_bleu > 2.0  # stopped by the tolerance
    assert len(result.rounds) > 1
    with pytest.raises(ValueError, match="`rank` must be one of"):
        prune_in_rounds(model, data, translator_of, fraction=0.5, rank="entropy")
    with pytest.raises(ValueError, match="would not stop"):
        prune_in_rounds(model, data, translator_of)


def test_prune_config_rules() -> None:
    with pytest.raises(ConfigError, match="fraction"):
        check(PruneConfig(ckpt="m.pt"))
    with pytest.raises(ConfigError, match="`rank` must be one of"):
        check(PruneConfig(ckpt="m.pt", fraction=0.5, rank="entropy"))
    with pytest.raises(ConfigError, match=r"`fraction` must be in \(0, 1\)"):
        check(PruneConfig(ckpt="m.pt", fraction=1.0))


def test_nmt_prune_writes_a_checkpoint_every_command_accepts(model_path, tmp_path, capsys) -> None:
    pytest.importorskip("ctranslate2", reason="the ctranslate2 extra is not installed")
    from nmt.ctranslate2.export import export_ctranslate2

    out, curve = tmp_path / "pruned.pt", tmp_path / "curve.json"
    cfg = PruneConfig(ckpt=str(model_path), output=str(out), curve=str(curve), fraction=0.3, step=0.15)
    cfg.decode, cfg.device, cfg.num_threads = DecodeConfig(beam_size=2), "cpu", 1
    result = prune.run(cfg)
    printed = capsys.readouterr().out
    assert "| attention | layer | head | importance |" in printed and f"wrote {out}" in printed
    pruned = load_checkpoint(out)
    heads = sum(mha.n_heads for mha in load_model(pruned, out)[0].attentions().values())
    assert heads == result.rounds[result.kept].heads < result.rounds[0].heads
    assert out.stat().st_size < model_path.stat().st_size
    lines = builtin_corpus("test", 20, seed=1).src
    _, tokenizer, special = _loaded(model_path)
    in_memory = torch_translator_of(tokenizer, special, cfg.decode)(result.model)
    loaded = Translator.from_checkpoint(out, cfg.decode, "cpu")
    assert [t.best for t in loaded.translate(lines)] == [t.best for t in in_memory.translate(lines)]
    scored = evaluate.run(EvaluateConfig(ckpt=str(out), metrics=["bleu"], device="cpu", num_threads=1))
    assert scored["scores"][0]["value"] > 0
    export_ctranslate2(out, tmp_path / "ct2")
    assert (tmp_path / "ct2" / "model.bin").is_file()
    assert json.loads(curve.read_text())["total_heads"] == result.rounds[0].heads
    png = tmp_path / "pruning.png"
    plot_main(["--pruning", str(curve), "--out", str(png)])
    assert png.read_bytes().startswith(PNG_MAGIC)


def _missing_glyphs(caught) -> list[str]:
    return [str(w.message) for w in caught if "missing from" in str(w.message)]


def test_attention_heatmaps_of_a_latin_pair(model_path, tmp_path, capsys) -> None:
    corpus = builtin_corpus("test", 1, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_main(["--attention", str(model_path), "--src", corpus.src[0], "--out", str(tmp_path / "attn.png")])
    assert not _missing_glyphs(caught)
    printed = capsys.readouterr().out
    for name in ("cross", "encoder", "decoder", "alignment"):
        path = tmp_path / f"attn-{name}.png"
        assert path.read_bytes().startswith(PNG_MAGIC) and str(path) in printed
    with pytest.raises(SystemExit):
        plot_main(["--attention", str(model_path), "--out", str(tmp_path / "x.png")])
    assert "--attention needs --src" in capsys.readouterr().err


def test_attention_heatmaps_of_chinese_text_draw_its_glyphs(model_path, tmp_path) -> None:
    src, tgt = "我们今天去公园。", "Wir gehen heute in den Park ."
    assert needs_cjk([src]) and not needs_cjk([tgt])
    font = cjk_font()
    assert font is not None, "no CJK font: the dev extra installs mplfonts, which ships Noto Sans CJK"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_main(["--attention", str(model_path), "--src", src, "--tgt", tgt, "--out", str(tmp_path / "zh.png")])
    assert not _missing_glyphs(caught)
    assert (tmp_path / "zh-cross.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "zh-alignment.png").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(SystemExit, match="does not exist"):
        plot_main(["--attention", str(model_path), "--src", src, "--font", str(tmp_path / "no.ttf"), "--out", "x.png"])


def test_a_layer_without_cross_heads_is_drawn_as_pruned_and_refused_for_alignment(model_path, tmp_path, capsys):
    model, _, _ = _loaded(model_path)
    every = set(range(model.cfg.n_heads))
    path = tmp_path / "no_cross0.pt"
    pruned = prune_heads(model, {("dec_cross", 0): every})
    save_checkpoint(pruned_checkpoint(pruned, read_raw(model_path)["nmt"], 0), path)
    corpus = builtin_corpus("test", 3, seed=1)
    pairs = list(zip(corpus.src, corpus.tgt, strict=True))
    aligner = Aligner.from_checkpoint(path, device="cpu")
    with pytest.raises(ValueError, match="decoder layer 0 has no cross-attention heads"):
        aligner.align(pairs, layer=0)
    assert len(aligner.align(pairs, layer=-1)) == 3
    written = plot_attention(path, corpus.src[0], tmp_path / "p.png", corpus.tgt[0], layer=-1)
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in written)
    with pytest.raises(ValueError, match="decoder layer 0 has no cross-attention heads"):
        plot_attention(path, corpus.src[0], tmp_path / "q.png", corpus.tgt[0], layer=0)
    (tmp_path / "pairs").write_text("".join(f"{s} ||| {t}\n" for s, t in pairs))
    (tmp_path / "gold").write_text("0-0\n" * len(pairs))
    align.run(AlignConfig(ckpt=str(path), input=str(tmp_path / "pairs"), gold=str(tmp_path / "gold"), all_layers=True))
    table = capsys.readouterr().out
    assert "| attention | 1 |" in table and "| attention | 0 |" not in table
    assert "decoder layer(s) 0: no cross-attention heads left (pruned)" in table
