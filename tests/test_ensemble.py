"""Ensembles: a model with itself is that model, a step is the normalised geometric mean of the members'
probabilities (each member run alone), every search runs on it, and models of another tokenizer are refused.
Uses the session's tiny model."""

from __future__ import annotations

import pytest
import torch
from conftest import perturbed_checkpoint, retokenized_checkpoint
from torch import Tensor

from nmt.checkpoint import CheckpointError, load_checkpoint, read_raw
from nmt.cli import benchmark, evaluate, translate
from nmt.config import BenchmarkConfig, ConfigError, DataConfig, DecodeConfig, EvaluateConfig, TranslateConfig, check
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.decode.engine import load_model
from nmt.decode.ensemble import Ensemble
from nmt.decode.translator import Translator
from nmt.model import Transformer

pytestmark = pytest.mark.usefixtures("one_thread")

BEAM = DecodeConfig(beam_size=4, n_best=2)


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return get_corpus(DataConfig(), "test").src[:40]


@pytest.fixture(scope="module")
def neighbour(model_path, tmp_path_factory):
    """The tiny model with its weights nudged: a second member that decodes a little differently."""
    return perturbed_checkpoint(model_path, tmp_path_factory.mktemp("ensemble") / "b.pt", seed=1, scale=0.02)


def test_an_ensemble_of_a_model_with_itself_is_that_model(model_path, lines) -> None:
    single = Translator.from_checkpoint(model_path, BEAM, device="cpu").translate(lines)
    doubled = Translator.from_ensemble([model_path, model_path], BEAM, device="cpu").translate(lines)
    assert [t.texts for t in doubled] == [t.texts for t in single]
    for d, s in zip(doubled, single, strict=True):
        assert d.scores == pytest.approx(s.scores, abs=1e-4)


def _teacher_forced(member: Transformer, src: Tensor, prefix: Tensor) -> tuple[Tensor, Tensor]:
    """A member run alone through its teacher-forced `forward`, in float64 where it is compared: the
    next-token probabilities [B,V] after `prefix` [B,T] and its last layer's cross-attention [B,S] there."""
    logits, attn = member(src, prefix, need_attn=True)  # [B,T,V], [B,T,S]
    return logits[:, -1].double().softmax(-1), attn[:, -1]


def test_a_step_is_the_normalised_geometric_mean_of_the_members_probabilities(model_path, neighbour) -> None:
    """The log-linear ensemble (OpenNMT-py's and Marian's): p(v) proportional to the product of the members'
    p_i(v)^(1/N). Checked against each member run alone through its teacher-forced `forward` (not the cached
    `decode_step` the ensemble drives), renormalised in float64 probability space."""
    members = [load_model(load_checkpoint(p), p)[0] for p in (model_path, neighbour)]
    ensemble = Ensemble(members)
    src = torch.tensor([[5, 9, 12, EOS_ID], [7, 8, EOS_ID, PAD_ID]])
    mask = src.eq(PAD_ID)
    prefix = torch.full((2, 1), BOS_ID)  # [B,T]
    with torch.inference_mode():
        cache = ensemble.start_decoding(ensemble.encode(src, mask), mask, 6)
        for step in range(4):
            got = ensemble.decode_step(prefix[:, -1], cache, need_attn=True).double()  # [B,V]
            alone = [_teacher_forced(m, src, prefix) for m in members]
            probs = torch.stack([p for p, _ in alone])  # [N,B,V]
            geometric = probs.prod(0) ** (1 / len(members))
            expected = (geometric / geometric.sum(-1, keepdim=True)).log()
            assert torch.allclose(got, expected, atol=1e-4), (step, (got - expected).abs().max())
            assert not torch.allclose(got, probs.mean(0).log(), atol=1e-3)  # not the mean of the probabilities
            assert torch.allclose(cache.cross_attn, torch.stack([a for _, a in alone]).mean(0), atol=1e-5)
            prefix = torch.cat([prefix, got.argmax(-1, keepdim=True)], dim=1)  # [B,T] -> [B,T+1]
    assert not torch.allclose(probs[0], probs[1], atol=1e-3)  # the members do differ


@pytest.mark.parametrize(
    "decode",
    [
        DecodeConfig(beam_size=1),
        BEAM,
        DecodeConfig(sampling=True, beam_size=1, n_best=2, seed=1),
        DecodeConfig(beam_size=1, precision="int8"),
    ],
    ids=["greedy", "beam", "sample", "int8"],
)
def test_every_search_runs_on_an_ensemble_of_two_models(model_path, neighbour, lines, decode) -> None:
    out = Translator.from_ensemble([model_path, neighbour], decode, device="cpu").translate(lines)
    assert len(out) == len(lines) and all(t.texts and t.texts[0] for t in out)


def test_models_of_another_tokenizer_are_refused_naming_it(model_path, tmp_path) -> None:
    odd = retokenized_checkpoint(model_path, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=rf"cannot ensemble {odd} with {model_path}: its tokenizer differs"):
        Translator.from_ensemble([model_path, odd], BEAM, device="cpu")


def test_models_of_another_language_pair_are_refused_naming_it(model_path, tmp_path) -> None:
    """A model fine-tuned on another pair (init_from) keeps the tokenizer: the pair, not the vocabulary, differs."""
    raw = read_raw(model_path)
    raw["nmt"] = {**raw["nmt"], "tgt_lang": "fr"}
    torch.save(raw, tmp_path / "en-fr.pt")
    with pytest.raises(CheckpointError, match=r"en-fr.pt with .*: it translates en->fr, not en->de"):
        Translator.from_ensemble([model_path, tmp_path / "en-fr.pt"], BEAM, device="cpu")


def test_nmt_translate_takes_a_list_of_checkpoints(model_path, neighbour, tmp_path) -> None:
    source, output = tmp_path / "in.en", tmp_path / "out.de"
    source.write_text("i see.\n\nthe cat sleeps.\n")
    ckpts = [str(model_path), str(neighbour)]
    translate.run(check(TranslateConfig(ckpt=ckpts, input=str(source), output=str(output), num_threads=1)))
    assert len(output.read_text().split("\n")) == 4  # three lines, the empty one kept
    with pytest.raises(ConfigError, match=r"`ckpt` as a list \(an ensemble\) needs `backend` torch only"):
        check(TranslateConfig(ckpt=ckpts, backend="ctranslate2"))


def test_nmt_evaluate_and_nmt_benchmark_score_an_ensemble(model_path, neighbour, tmp_path) -> None:
    """A list as `ckpt` is decoded as one ensemble (not its first member) by both scoring commands."""
    greedy, pair = DecodeConfig(beam_size=1), [str(model_path), str(neighbour)]
    outputs = {}
    for name, ckpt in {"single": str(model_path), "self": [str(model_path)] * 2, "pair": pair}.items():
        outputs[name] = tmp_path / f"{name}.de"
        cfg = EvaluateConfig(ckpt=ckpt, decode=greedy, output=str(outputs[name]), device="cpu", num_threads=1)
        scored = evaluate.run(check(cfg))
    hyps = {name: path.read_text().splitlines() for name, path in outputs.items()}
    source = get_corpus(DataConfig(), "test").src
    expected = Translator.from_ensemble(pair, greedy, device="cpu").translate(source)
    assert hyps["pair"] == [t.best for t in expected] != hyps["single"] == hyps["self"]
    bench = benchmark.run(check(BenchmarkConfig(ckpt=pair, beam_sizes=[1], repeats=1, device="cpu", num_threads=1)))
    assert bench["results"][0]["bleu"] == pytest.approx(scored["scores"][0]["value"])
    with pytest.raises(ConfigError, match=r"needs `backends` torch only, but it is torch, ctranslate2 instead"):
        check(BenchmarkConfig(ckpt=pair, backends=["torch", "ctranslate2"]))
    with pytest.raises(ConfigError, match=r"`ckpt` as a list \(an ensemble\) must name checkpoint files, but is \["):
        check(EvaluateConfig(ckpt=[str(model_path), 1]))
