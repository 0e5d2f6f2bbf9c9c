"""Guided alignment: word links travel with their pairs through preparing and filtering, become each target
piece's attention target, refuse a links file that does not follow the pairs, and training against them makes
the supervised layer's cross-attention align words (AER against the built-in corpus's gold links)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_config

from nmt.config import ConfigError, DataConfig, DecodeConfig, TokenizerConfig, check
from nmt.data.builtin import builtin_alignments, builtin_corpus, write_builtin
from nmt.data.corpus import CorpusError, filter_mask
from nmt.data.links import attention_targets
from nmt.data.prepare import prepare_corpus
from nmt.data.prepared import open_prepared
from nmt.data.sources import BUILTIN_SEED
from nmt.decode.align import Aligner, default_layer
from nmt.decode.translator import Translator
from nmt.evaluate.alignment import GoldAlignment, alignment_error_rate
from nmt.model import Transformer
from nmt.train.loss import alignment_nll
from nmt.train.run import train

PAD, EOS = 0, 2


def test_each_target_piece_attends_evenly_to_the_pieces_of_the_source_words_its_word_links() -> None:
    # source pieces 5 6 | 7 (words 0 0 1), then EOS; target pieces 8 | 9 10 (words 0 1 1), then EOS and padding
    starts = np.zeros(12, dtype=bool), np.zeros(12, dtype=bool)
    starts[0][[5, 7]] = True
    starts[1][[8, 9]] = True
    src = np.array([[5, 6, 7, EOS]])
    tgt_out = np.array([[8, 9, 10, EOS, PAD]])
    links = [np.array([1, 0, 0, 1, 1, 1])]  # 1-0 0-1 1-1: target word 0 <- source word 1; word 1 <- words 0, 1
    got = attention_targets(src, tgt_out, links, starts, PAD)
    third = 1 / 3
    want = [
        [0, 0, 1, 0],  # piece 8 (word 0): source piece 7
        [third, third, third, 0],  # pieces 9 and 10 (word 1): all three source pieces
        [third, third, third, 0],
        [0, 0, 0, 0],  # EOS
        [0, 0, 0, 0],  # padding
    ]
    np.testing.assert_allclose(got[0], want, atol=1e-7)
    assert not attention_targets(src, tgt_out, [np.zeros(0, dtype=np.int64)], starts, PAD).any()  # no links


def test_the_loss_is_the_cross_entropy_of_the_linked_rows_only() -> None:
    attn = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]]])
    target = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])  # the second row has no link
    assert alignment_nll(attn, target).item() == pytest.approx(-np.log(0.5))
    attn.requires_grad_(True)
    alignment_nll(attn, target).backward()
    assert attn.grad[0, 1].abs().sum() == 0 and attn.grad[0, 0, 0] < 0


def _files_config(corpus: Path, tmp: Path, **changes) -> DataConfig:
    return DataConfig(
        name="files",
        train=str(corpus / "train"),
        valid=str(corpus / "valid"),
        test=str(corpus / "test"),
        train_links=str(corpus / "train.align"),
        cache_dir=str(tmp / "cache"),
        **changes,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The built-in corpus as files, with its gold links as `train.align`."""
    return write_builtin(tmp_path_factory.mktemp("builtin-files"), 3000, BUILTIN_SEED)


def _links(line: str) -> list[int]:
    return [int(i) for link in line.split() for i in link.split("-")]


@pytest.mark.parametrize("workers", [1, 2])
def test_links_stay_with_their_pairs_when_the_filter_drops_some(corpus, tmp_path, workers) -> None:
    """With `max_len` short enough to drop pairs, every kept row holds the links of the line it came from
    (in one process and in two worker processes, chunks of 500 lines)."""
    data = _files_config(corpus, tmp_path, max_len=14)
    prepare_corpus(data, TokenizerConfig(vocab_size=300), tmp_path / "prep", workers=workers, chunk_lines=500)
    prepared = open_prepared(tmp_path / "prep")
    src = (corpus / "train.en").read_text(encoding="utf-8").splitlines()
    tgt = (corpus / "train.de").read_text(encoding="utf-8").splitlines()
    lines = (corpus / "train.align").read_text(encoding="utf-8").splitlines()
    lengths = [
        np.array([len(ids) for ids in encode(side)])
        for encode, side in ((prepared.tokenizer.encode_src, src), (prepared.tokenizer.encode_tgt, tgt))
    ]
    keep, stats = filter_mask(*lengths, data.max_len, data.max_ratio)
    assert stats.too_long > 0 and stats.kept == len(prepared.train) < len(src)  # the filter did drop pairs
    kept_lines = [line for line, kept in zip(lines, keep, strict=True) if kept]
    assert [prepared.train.links[r] for r in range(len(prepared.train))] == [_links(line) for line in kept_lines]


def test_a_links_file_that_does_not_follow_the_pairs_is_refused_with_file_and_line(corpus, tmp_path) -> None:
    lines = (corpus / "train.align").read_text(encoding="utf-8").splitlines()

    def refused(text: str, *fragments: str) -> None:
        path = tmp_path / "links.align"
        path.write_text(text, encoding="utf-8")
        data = dataclasses.replace(_files_config(corpus, tmp_path), train_links=str(path))
        with pytest.raises(CorpusError) as error:
            prepare_corpus(data, TokenizerConfig(vocab_size=300), tmp_path / "prep", chunk_lines=1000)
        assert str(path) in str(error.value) and all(f in str(error.value) for f in fragments), error.value
        assert not (tmp_path / "prep").exists()  # nothing half-written is left

    refused("".join(line + "\n" for line in lines[:-5]), "fewer than the training pairs")
    refused("".join(line + "\n" for line in lines + ["0-0"]), "more lines than the 3000 training pairs")
    bad = list(lines)
    bad[1500] = "0-0 1:2"
    refused("".join(line + "\n" for line in bad), "line 1501", "'1:2' is not a link")
    bad[1500] = "0-0 40-1"
    refused("".join(line + "\n" for line in bad), "line 1501", "link 40-1 is past the pair's words")


def test_guided_alignment_needs_links_a_layer_of_the_model_and_sources_left_alone(tmp_path) -> None:
    base = ["optim.align_weight=0.1"]
    with pytest.raises(ConfigError, match="set `data.train_links`"):
        check(train_config(tmp_path, tmp_path, base))
    with pytest.raises(ConfigError, match="`optim.align_layer` must name one of the 2 decoder layers"):
        check(train_config(tmp_path, tmp_path, [*base, "data.train_links=x.align", "optim.align_layer=2"]))
    with pytest.raises(ConfigError, match="augment.synonyms"):
        check(train_config(tmp_path, tmp_path, [*base, "data.train_links=x.align", "augment.synonyms=syn.txt"]))


def _aer(model_path: str, layer: int) -> float:
    """AER of the model's links (its supervised reading: the step that predicts each piece) on the built-in
    test split's gold links."""
    test = builtin_corpus("test", None, BUILTIN_SEED)
    gold = [
        GoldAlignment(frozenset(links), frozenset(links)) for links in builtin_alignments("test", None, BUILTIN_SEED)
    ]
    aligner = Aligner.from_checkpoint(model_path, device="cpu")
    found = aligner.align(list(zip(test.src, test.tgt, strict=True))[:300], method="attention", layer=layer)
    return alignment_error_rate(found, gold[:300]).aer


def test_training_against_the_links_makes_the_supervised_layer_align_words(corpus, tmp_path, spm_cache) -> None:
    """The same short run (300 updates of the tiny model, two threads) with and without guided alignment on its
    first decoder layer: only the guided one reads word alignments off that layer, and translation still trains."""
    common = [
        "data.name=files",
        f"data.train={corpus / 'train'}",
        f"data.valid={corpus / 'valid'}",
        f"data.test={corpus / 'test'}",
        "trainer.max_steps=300",
        "trainer.val_check_interval=300",
        "trainer.num_threads=2",
    ]
    plain = train(train_config(tmp_path / "plain", spm_cache, common))
    guided_overrides = [
        *common,
        f"data.train_links={corpus / 'train.align'}",
        "optim.align_weight=0.5",
        "optim.align_layer=0",
    ]
    guided = train(train_config(tmp_path / "guided", spm_cache, guided_overrides))
    plain_aer, guided_aer = _aer(plain.model_path, 0), _aer(guided.model_path, 0)
    assert guided_aer < 0.5 * plain_aer and guided_aer < 0.25, (plain_aer, guided_aer)
    assert guided.best_bleu > 0.5 * plain.best_bleu  # it still translates
    # Reading links, translating with alignments and placing markup default to the layer trained to align.
    assert Aligner.from_checkpoint(guided.model_path, "cpu").aligned_layer == 0
    assert Translator.load(guided.model_path, DecodeConfig(), "cpu").aligned_layer == 0
    assert Aligner.from_checkpoint(plain.model_path, "cpu").aligned_layer is None
    assert default_layer(None, 0) == 0 and default_layer(None, None) == -1 and default_layer(1, 0) == 1


def test_one_layers_attention_is_the_same_as_from_every_layers_maps() -> None:
    torch.manual_seed(0)
    from nmt.config import ModelConfig

    model = Transformer(
        ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=3, d_ff=32, dropout=0.0), 20, 20, PAD
    )
    src, tgt_in = torch.randint(3, 20, (2, 5)), torch.randint(3, 20, (2, 4))
    logits, maps = model.attention_maps(src, tgt_in)
    for layer in (0, 1, -1):
        one_logits, attn = model(src, tgt_in, need_attn=True, attn_layer=layer)
        torch.testing.assert_close(attn, maps.cross[layer].mean(1))
        torch.testing.assert_close(one_logits, logits)
