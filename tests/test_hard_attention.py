"""Hard attention as a probe: hardened heads attend to their best allowed key only, everything else is untouched;
specs, the commands' `harden` option, `nmt-plot --attention --harden` and the probe's table."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from nmt.cli import evaluate, translate
from nmt.cli.plot import main as plot_main
from nmt.config import ConfigError, DataConfig, DecodeConfig, EvaluateConfig, ModelConfig, TranslateConfig, check
from nmt.data.builtin import builtin_alignments, builtin_corpus
from nmt.decode.align import Aligner
from nmt.decode.ensemble import Ensemble
from nmt.decode.translator import Translator
from nmt.evaluate import heatmaps
from nmt.evaluate.alignment import GoldAlignment, alignment_error_rate
from nmt.evaluate.hard_heads import GoldSet, ProbeData, hard_probe, probe_configurations
from nmt.model import MultiHeadAttention, Transformer
from nmt.model.attention import FEW_QUERIES
from nmt.model.hard_attention import HardenSpecError, harden, parse_spec, select_heads
from nmt.model.head_removal import prune_heads

pytestmark = pytest.mark.usefixtures("one_thread")

GREEDY = DecodeConfig(beam_size=1)
PAD = 0


def _model(attention: str = "scaled_dot") -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_heads=4, enc_layers=2, dec_layers=2, d_ff=64, dropout=0.0, attention=attention)
    return Transformer(cfg, 40, 40, PAD).eval()


def _attention(kind: str = "scaled_dot") -> MultiHeadAttention:
    torch.manual_seed(0)
    return MultiHeadAttention(16, 4, kind).eval()


def _hard(mha: MultiHeadAttention, heads: list[int]) -> MultiHeadAttention:
    mha.hard_heads = torch.tensor([h in heads for h in range(mha.n_heads)])
    return mha


def _sources() -> torch.Tensor:
    """Two sources of different lengths, the shorter padded: [2, 7]."""
    return torch.tensor([[5, 6, 7, 8, 9, 10, 3], [11, 12, 13, 3, PAD, PAD, PAD]])


# ---- the attention module ----


@pytest.mark.parametrize("kind", ["scaled_dot", "dot", "additive"])
@pytest.mark.parametrize("padded", [0, 1, 5])
def test_a_hard_head_is_a_one_hot_on_its_best_key_and_never_on_padding(kind: str, padded: int) -> None:
    mha = _attention(kind)
    x = torch.randn(2, 9, 16)
    x[1, 9 - padded :] = 50 * torch.randn(padded, 16)  # loud padding, which would win many scores
    key_pad = torch.zeros(2, 9, dtype=torch.bool)
    key_pad[1, 9 - padded :] = True
    soft = mha(x, *mha.project_kv(x), key_pad=key_pad, need_weights=True)[1]
    weights = _hard(mha, [0, 2])(x, *mha.project_kv(x), key_pad=key_pad, need_weights=True)[1]  # [B,H,T,S]
    hard = weights[:, [0, 2]]
    assert torch.equal(hard, F.one_hot(soft[:, [0, 2]].argmax(-1), 9).float())
    assert not hard[1, :, :, 9 - padded :].any()
    if padded:  # without the mask, the loud padding would be chosen: the test above can fail
        unmasked = mha(x, *mha.project_kv(x), need_weights=True)[1]
        assert unmasked[1, [0, 2], :, 9 - padded :].any()


def test_equal_scores_choose_the_first_allowed_key() -> None:
    mha = _hard(_attention(), [1])
    torch.nn.init.zeros_(mha.q_proj.weight)
    torch.nn.init.zeros_(mha.q_proj.bias)  # every score 0
    x = torch.randn(1, 5, 16)
    key_pad = torch.tensor([[True, True, False, False, False]])  # padding first
    weights = mha(x, *mha.project_kv(x), key_pad=key_pad, need_weights=True)[1]
    assert torch.equal(weights[0, 1], F.one_hot(torch.full((5,), 2), 5).float())
    causal = mha(x, *mha.project_kv(x), causal=True, need_weights=True)[1]
    assert torch.equal(causal[0, 1], F.one_hot(torch.zeros(5, dtype=torch.long), 5).float())


def test_the_other_heads_keep_bit_identical_weights() -> None:
    mha = _attention()
    x = torch.randn(3, 6, 16)
    key_pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2, [False] * 2 + [True] * 4])
    soft = mha(x, *mha.project_kv(x), key_pad=key_pad, need_weights=True)[1]
    hard = _hard(mha, [1])(x, *mha.project_kv(x), key_pad=key_pad, need_weights=True)[1]
    assert torch.equal(hard[:, [0, 2, 3]], soft[:, [0, 2, 3]])
    assert not torch.equal(hard[:, 1], soft[:, 1])


def test_only_a_module_with_hard_heads_leaves_the_fused_kernel(monkeypatch) -> None:
    calls = []
    fused = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or fused(*a, **k))
    mha = _attention()
    x = torch.randn(2, FEW_QUERIES + 1, 16)
    mha(x, *mha.project_kv(x))
    assert calls == [1]
    _hard(mha, [3])(x, *mha.project_kv(x))
    assert calls == [1]


def test_unhardening_gives_back_the_soft_model_bit_for_bit() -> None:
    model = _model()
    src, tgt = _sources(), torch.arange(14, 34).view(2, 10)
    before = model(src, tgt)
    harden(model, ["dec_cross:1:2", "enc"])
    hardened = model(src, tgt)
    harden(model, [])
    assert all(mha.hard_heads is None for mha in model.attentions().values())
    assert torch.equal(model(src, tgt), before)
    assert not torch.allclose(hardened, before)


def test_hardening_is_not_saved_but_moves_and_casts_with_the_model() -> None:
    model = _model()
    harden(model, ["dec_cross"])
    mask = model.attentions()["dec_cross", 0].hard_heads
    assert set(model.state_dict()) == set(_model().state_dict())
    assert any(buffer is mask for buffer in model.buffers())  # so `.to(device)` moves it
    assert model.half().attentions()["dec_cross", 0].hard_heads.dtype == torch.bool


@pytest.mark.parametrize("attention", ["scaled_dot", "additive"])
@torch.no_grad()
def test_cached_decoding_equals_the_full_forward_with_hard_heads(attention: str) -> None:
    model = _model(attention)
    harden(model, ["enc:0", "dec_self", "dec_cross:1", "dec_cross:0:3"])
    src = _sources()
    tgt = torch.tensor([[2, 14, 15, 16, 17, 18], [2, 19, 20, 21, 22, 23]])
    full = model(src, tgt).float().log_softmax(-1)  # [2,T,V]
    src_pad = src.eq(PAD)
    cache = model.start_decoding(model.encode(src, src_pad), src_pad, tgt.size(1), max_rows=4)
    rows = torch.tensor([0, 0, 1, 1])  # two rows per source, as beam search keeps hypotheses
    for t in range(tgt.size(1)):
        step = model.decode_step(tgt[:, t] if t == 0 else tgt[rows, t], cache)
        if t == 0:
            cache.reorder_(rows)
            step = step[rows]
        torch.testing.assert_close(step, full[rows, t], atol=1e-5, rtol=1e-5)


def test_attention_maps_show_hardened_heads_as_one_hots() -> None:
    model = _model()
    harden(model, ["dec_cross:0:1"])
    src, tgt = _sources(), torch.tensor([[2, 14, 15], [2, 16, 17]])
    _, maps = model.attention_maps(src, tgt)
    head = maps.cross[0][:, 1]  # [B,T,S]
    assert torch.equal(head.sum(-1), torch.ones(2, 3)) and torch.equal(head.amax(-1), torch.ones(2, 3))
    assert not head[1, :, 4:].any()  # never the padding
    assert (maps.cross[0][:, 0].amax(-1) < 1).all()  # a soft head


# ---- specs ----


def test_specs_name_a_kind_a_layer_or_a_head() -> None:
    model = _model()
    every = [0, 1, 2, 3]
    assert select_heads(model, ["dec_cross"]) == {("dec_cross", 0): every, ("dec_cross", 1): every}
    assert select_heads(model, ["dec_cross:1"]) == {("dec_cross", 1): every}
    assert select_heads(model, [" dec_cross:1:3 ", "dec_cross:1:0"]) == {("dec_cross", 1): [0, 3]}
    assert select_heads(model, ["enc", "dec_self:0"]) == {("enc", 0): every, ("enc", 1): every, ("dec_self", 0): every}
    assert select_heads(model, []) == {}
    harden(model, ["dec_cross:1:3", "enc:0"])
    hard = {key: mha.hard_heads for key, mha in model.attentions().items() if mha.hard_heads is not None}
    assert set(hard) == {("dec_cross", 1), ("enc", 0)}
    assert hard["dec_cross", 1].tolist() == [False, False, False, True] and hard["enc", 0].all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cross", "must be KIND"),
        ("", "must be KIND"),
        ("dec_cross:", "must be KIND"),
        ("dec_cross:one", "must be KIND"),
        ("dec_cross:-1", "must be KIND"),
        ("dec_cross:0:1:2", "must be KIND"),
        ("dec_cross:2", "names dec_cross layer 2, but the model has dec_cross layers 0-1"),
        ("enc:1:4", r"names head 4, but enc layer 1 has 4 head\(s\) \(0-3\)"),
    ],
)
def test_bad_specs_are_refused_and_change_nothing(spec: str, message: str) -> None:
    model = _model()
    harden(model, ["dec_self:0"])
    with pytest.raises(HardenSpecError, match=message):
        harden(model, ["dec_cross", spec])
    assert [key for key, mha in model.attentions().items() if mha.hard_heads is not None] == [("dec_self", 0)]


def test_an_ensemble_hardens_every_member_or_none() -> None:
    small = prune_heads(_model(), {("enc", 1): {2, 3}})
    ensemble = Ensemble([_model(), small])
    harden(ensemble, ["enc:1:1"])
    assert [m.attentions()["enc", 1].hard_heads.tolist() for m in ensemble.members] == [
        [False, True, False, False],
        [False, True],
    ]
    with pytest.raises(HardenSpecError, match="names head 3, but enc layer 1 has 2 head"):
        harden(ensemble, ["enc:1:3"])
    assert all(m.attentions()["enc", 1].hard_heads is not None for m in ensemble.members)  # unchanged


def test_a_pruned_layer_has_no_heads_to_harden() -> None:
    pruned = prune_heads(_model(), {("dec_cross", 1): {0, 1, 2, 3}, ("enc", 0): {0}})
    assert select_heads(pruned, ["dec_cross:1"]) == {}
    assert select_heads(pruned, ["enc:0"]) == {("enc", 0): [0, 1, 2]}
    with pytest.raises(HardenSpecError, match=r"dec_cross layer 1 has 0 head\(s\)\.$"):
        select_heads(pruned, ["dec_cross:1:0"])
    assert probe_configurations(pruned)[:3] == [["dec_cross"], ["dec_cross:0"], ["dec_cross:0:0"]]


def test_the_config_check_reads_specs_as_the_model_does() -> None:
    specs = ["enc", "dec_self:0", "dec_cross:1:3", "dec_cross:10:20", "cross", "dec_cross:", "enc:-1", "enc:0:0:0"]
    specs += ["enc:\u0663", "enc:\u00b2", "enc :0", "Enc"]  # an Arabic-Indic 3, a superscript 2
    for spec in specs:
        try:
            parse_spec(spec)
            parsed = True
        except HardenSpecError:
            parsed = False
        checked = not any("`harden`" in p for p in _problems(TranslateConfig(ckpt="m.pt", harden=[spec])))
        assert parsed == checked, spec


def _problems(cfg) -> list[str]:
    try:
        check(cfg)
    except ConfigError as err:
        return str(err).splitlines()[1:]
    return []


def test_harden_needs_the_pytorch_model_that_translates() -> None:
    (ct2,) = _problems(TranslateConfig(ckpt="m", backend="ctranslate2", harden=["dec_cross"]))
    assert "`harden`" in ct2 and "backend=torch" in ct2
    (files,) = _problems(EvaluateConfig(hyp="h", ref="r", harden=["dec_cross"]))
    assert "`harden`" in files and "`ckpt`" in files
    assert _problems(EvaluateConfig(ckpt="m.pt", harden=["dec_cross:0", "enc"])) == []


# ---- the commands, on the tiny model ----


def test_nmt_translate_and_nmt_evaluate_translate_with_hardened_cross_attention(model_path, tmp_path) -> None:
    corpus = builtin_corpus("test", 500, seed=1)
    (tmp_path / "test.en").write_text("\n".join(corpus.src) + "\n")
    (tmp_path / "test.de").write_text("\n".join(corpus.tgt) + "\n")
    common = dict(ckpt=str(model_path), input=str(tmp_path / "test.en"), decode=GREEDY, num_threads=1, progress=False)
    translate.run(TranslateConfig(**common, output=str(tmp_path / "soft.de")))
    translate.run(TranslateConfig(**common, output=str(tmp_path / "hard.de"), harden=["dec_cross"]))
    soft, hard = ((tmp_path / f"{name}.de").read_text().splitlines() for name in ("soft", "hard"))
    assert len(hard) == len(soft) == 500
    assert sum(a != b for a, b in zip(soft, hard, strict=True)) > 0
    data = DataConfig(name="files", root=str(tmp_path), src_lang="en", tgt_lang="de")
    output = tmp_path / "evaluated.de"
    evaluate.run(
        EvaluateConfig(
            ckpt=str(model_path), data=data, split="test", decode=GREEDY, metrics=["bleu"], harden=["dec_cross"],
            output=str(output), num_threads=1,
        )
    )  # fmt: skip
    assert output.read_text().splitlines() == hard


def test_nmt_plot_draws_hardened_heads_as_one_hots(model_path, tmp_path, monkeypatch) -> None:
    drawn = {}

    def grid(plt, layers, rows, cols, path, name):
        drawn[name] = layers
        return path

    monkeypatch.setattr(heatmaps, "_grid", grid)
    monkeypatch.setattr(heatmaps, "_alignment", lambda *args: args[-1])
    corpus = builtin_corpus("test", 1, seed=1)
    args = ["--attention", str(model_path), "--src", corpus.src[0], "--tgt", corpus.tgt[0], "--out", "x.png"]
    plot_main([*args, "--harden", "dec_cross:1", "enc:0:2"])
    cross, encoder = drawn["cross"], drawn["encoder"]
    assert (cross[1].amax(-1) == 1).all() and (encoder[0][2].amax(-1) == 1).all()
    assert (cross[0].amax(-1) < 1).any() and (encoder[0][1].amax(-1) < 1).any()  # soft heads stay soft
    with pytest.raises(SystemExit):
        plot_main(["--run", "r", "--harden", "enc", "--out", "x.png"])


# ---- the probe's table ----


@pytest.fixture(scope="module")
def probe_parts(model_path):
    translator = Translator.load(str(model_path), GREEDY, "cpu")
    test, heads_on = builtin_corpus("test", 80, seed=1), builtin_corpus("valid", 40, seed=1)
    data = ProbeData(translator.tokenizer, translator.engine.special_ids, test, "de", heads_on)
    gold = [GoldAlignment(frozenset(links), frozenset(links)) for links in builtin_alignments("test", 40, seed=1)]
    pairs = list(zip(test.src[:40], test.tgt[:40], strict=True))
    return translator.model, data, GoldSet(Aligner.from_checkpoint(model_path, "cpu"), pairs, gold)


def test_the_probe_table_on_the_tiny_model(probe_parts) -> None:
    model, data, gold = probe_parts
    layers = model.cfg.dec_layers
    configurations = probe_configurations(model)
    by_layer = [[f"dec_cross:{i}"] for i in range(layers)]
    assert configurations[: layers + 2] == [["dec_cross"], *by_layer, ["dec_cross:0:0"]]
    assert len(configurations) == 1 + layers + layers * model.cfg.n_heads + model.cfg.enc_layers + layers
    probe = hard_probe(model, data, GREEDY, [["dec_cross:1"], ["dec_cross:1:2"], ["enc:0"]], gold, samples=100)
    soft, layer, head, enc = probe.rows
    assert [r.hardened for r in probe.rows] == ["soft", "dec_cross:1", "dec_cross:1:2", "enc:0"]
    assert [r.heads for r in probe.rows] == [0, model.cfg.n_heads, 1, model.cfg.n_heads]
    assert all(mha.hard_heads is None for mha in model.attentions().values())  # soft again
    # Scores are the soft model's own: the table's soft row equals translating with the soft model.
    assert soft.bleu_p is None and all(0 < r.bleu_p <= r.bleu_p_holm <= 1 for r in probe.rows[1:])
    # AER only for cross-attention; the soft layer's reading is nmt-align's (mean of the layer's heads).
    links = gold.aligner.align(gold.pairs, "attention", layer=1)
    assert layer.aer_soft == pytest.approx(100 * alignment_error_rate(links, gold.gold).aer)
    assert head.aer is not None and enc.aer is None and enc.aer_soft is None
    # Confidence and importance are nmt-prune's, of the soft model: a layer's importance sums its heads'.
    assert 0 < head.confidence <= 1 and 0 < head.importance < layer.importance
    table = probe.to_markdown()
    assert table.count("\n") == 5 and "AER soft" in table and "dec_cross:1:2" in table
    assert json.loads(json.dumps(probe.to_json()))["rows"][2]["hardened"] == "dec_cross:1:2"
    assert set(probe.signatures) == {"BLEU", "chrF2"}
