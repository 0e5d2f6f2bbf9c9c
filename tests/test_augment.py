"""SwitchOut (`nmt.data.augment`): what it replaces, how much, and that each draw belongs to its pair and epoch."""

from __future__ import annotations

import math
import random

import pytest
import torch

from nmt.config import AugmentConfig, ConfigError, TrainConfig, check
from nmt.data.augment import FIRST_WORD, switchout
from nmt.data.batching import collate
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

V = 50


def _batch(pairs: list[int], seed: int = 0):
    """A batch of pairs of lengths 3-12 (a pair's ids depend on its index only), padded."""
    rows = [random.Random(p) for p in pairs]
    src = [[r.randrange(FIRST_WORD, V) for _ in range(3 + p % 10)] for r, p in zip(rows, pairs, strict=True)]
    tgt = [[r.randrange(FIRST_WORD, V) for _ in range(4 + p % 9)] for r, p in zip(rows, pairs, strict=True)]
    return collate(src, tgt, PAD_ID, BOS_ID, EOS_ID, index=pairs)


def test_only_words_are_replaced_and_the_decoder_sees_one_target():
    batch = _batch(list(range(300)))
    out = switchout(batch, tau=2.0, seed=1, epoch=0, vocab_sizes=(V, V))
    for before, after in ((batch.src, out.src), (batch.tgt_out, out.tgt_out)):
        kept = (before == PAD_ID) | (before == EOS_ID)
        assert torch.equal(after[kept], before[kept])
        changed = after[after != before]
        assert changed.numel() > 0 and changed.min() >= FIRST_WORD and changed.max() < V
    assert torch.equal(out.tgt_in[:, 0], batch.tgt_in[:, 0])  # BOS
    real = batch.tgt_in[:, 1:] != PAD_ID
    assert torch.equal(out.tgt_in[:, 1:][real], out.tgt_out[:, :-1][real])
    assert torch.equal(out.tgt_in == PAD_ID, batch.tgt_in == PAD_ID)


@pytest.mark.parametrize("tau", [0.5, 1.0, 3.0])
def test_the_count_replaced_follows_the_temperature(tau):
    """Long sentences, so the truncated distribution's mean is close to 1 / (e^(1/tau) - 1); a drawn token equal
    to the old one counts as no change (1 in V - 4)."""
    ids = [[FIRST_WORD + i % (V - FIRST_WORD) for i in range(60)]] * 4000
    batch = collate(ids, ids, PAD_ID, BOS_ID, EOS_ID, index=list(range(4000)))
    out = switchout(batch, tau=tau, seed=3, epoch=0, vocab_sizes=(V, V))
    expected = (1 / (math.exp(1 / tau) - 1)) * (1 - 1 / (V - FIRST_WORD))
    for side in ("src", "tgt_out"):
        mean = (getattr(out, side) != getattr(batch, side)).sum(1).double().mean().item()
        assert mean == pytest.approx(expected, rel=0.08), (side, mean, expected)


def test_a_pairs_draw_depends_on_seed_epoch_and_pair_not_on_its_batch():
    pairs = list(range(64))
    whole = switchout(_batch(pairs), 1.0, seed=5, epoch=2, vocab_sizes=(V, V))
    shuffled = random.Random(0).sample(pairs, len(pairs))
    parts = [switchout(_batch(shuffled[i : i + 7]), 1.0, seed=5, epoch=2, vocab_sizes=(V, V)) for i in range(0, 64, 7)]
    for part in parts:
        for row, pair in enumerate(part.index.tolist()):
            n = int((part.src[row] != PAD_ID).sum())
            assert torch.equal(part.src[row, :n], whole.src[pair, :n])
    for other in ({"seed": 6, "epoch": 2}, {"seed": 5, "epoch": 3}):
        assert not torch.equal(switchout(_batch(pairs), 1.0, vocab_sizes=(V, V), **other).src, whole.src)


def test_switchout_needs_the_pairs_index_and_a_non_negative_temperature():
    batch = collate([[5, 6]], [[7, 8]], PAD_ID, BOS_ID, EOS_ID)
    with pytest.raises(ValueError, match="index"):
        switchout(batch, 1.0, 0, 0, (V, V))
    with pytest.raises(ConfigError, match="switchout"):
        check(TrainConfig(augment=AugmentConfig(switchout=-1.0)))


def test_the_training_step_trains_on_each_epochs_own_draw(monkeypatch):
    """With switchout the step sees the augmented batch of the current epoch: the loss differs from the plain
    batch's and from one epoch to the next, and is the same again for the same epoch."""
    from types import SimpleNamespace

    from nmt.config import DecodeConfig, ModelConfig, OptimConfig
    from nmt.model import Transformer
    from nmt.train.module import TranslationModule

    torch.manual_seed(0)
    model = Transformer(ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=32, dropout=0.0), V, V, 0)
    tokenizer = SimpleNamespace(src_vocab_size=V, tgt_vocab_size=V)
    module = TranslationModule(
        model, tokenizer, OptimConfig(), DecodeConfig(), [], {}, 100, augment=AugmentConfig(switchout=3.0), seed=1
    )
    plain = TranslationModule(model, tokenizer, OptimConfig(), DecodeConfig(), [], {}, 100)
    monkeypatch.setattr(TranslationModule, "_log_train", lambda *args: None)  # no trainer to log to
    batch = _batch(list(range(32)))
    losses = {}
    for epoch in (0, 1, 0):
        monkeypatch.setattr(TranslationModule, "current_epoch", property(lambda self, e=epoch: e))
        losses.setdefault(epoch, []).append(module.training_step(batch, 0).item())
    base = plain.training_step(batch, 0).item()
    assert losses[0][0] == losses[0][1] != losses[1][0] and base not in (losses[0][0], losses[1][0])


class _WordTokenizer:
    """A word-level stand-in for `Tokenizer`'s source side: `▁word` pieces, and `s` and `,` that follow words."""

    PIECES = ["<pad>", "<unk>", "<s>", "</s>", "▁a", "▁big", "▁large", "▁huge", "▁dog", "▁cat", "s", ",", "▁rare"]

    def src_pieces(self) -> list[str]:
        return self.PIECES

    def encode_src(self, lines: list[str]) -> list[list[int]]:
        return [[self.PIECES.index(f"▁{w}")] if f"▁{w}" in self.PIECES else [1] for w in (x.strip() for x in lines)]


def _ids(text: str) -> list[int]:
    return [_WordTokenizer.PIECES.index(p) for p in text.split()]


def test_synonym_sets_are_read_with_their_lines_checked(tmp_path):
    from nmt.data.corpus import CorpusError
    from nmt.data.synonyms import read_synonym_sets

    path = tmp_path / "syn.txt"
    path.write_text("big large huge  # sizes\n\n# nothing\ncat cat dog\n")
    assert read_synonym_sets(path) == [["big", "large", "huge"], ["cat", "dog"]]
    path.write_text("big large\nlonely\n")
    with pytest.raises(CorpusError, match="syn.txt, line 2: a synonym set needs two words"):
        read_synonym_sets(path)


def test_synonyms_replace_whole_source_words_with_frequent_ones_and_leave_targets():
    from nmt.data.synonyms import SynonymTable, replace_synonyms

    training = [_ids("▁a ▁big ▁dog"), _ids("▁a ▁large ▁cat")] * 3 + [_ids("▁huge ▁cat")]
    table = SynonymTable.build([["big", "large", "huge"], ["dog", "rare"]], _WordTokenizer(), training, min_count=2)
    big, large, huge = (tuple(_ids(w)) for w in ("▁big", "▁large", "▁huge"))
    assert table.words[big] == [large] and table.words[huge] == [big, large]  # huge occurs once: never drawn
    assert tuple(_ids("▁dog")) not in table.words  # its only synonym is not in the training text
    src = [_ids("▁a ▁big ▁dog ,"), _ids("▁big s ▁cat"), _ids("▁huge ▁big")] * 40
    tgt = [[20, 21]] * len(src)
    batch = collate(src, tgt, PAD_ID, BOS_ID, EOS_ID, index=list(range(len(src))))
    out = replace_synonyms(batch, table, rate=0.5, seed=1, epoch=0)
    assert torch.equal(out.tgt_out, batch.tgt_out) and torch.equal(out.tgt_in, batch.tgt_in)
    rows = [[t for t in row if t not in (PAD_ID, EOS_ID)] for row in out.src.tolist()]
    words = _WordTokenizer.PIECES
    assert all(words[r[1]] in ("▁big", "▁large") and words[r[3]] == "," for r in rows[0::3])
    assert sum(words[r[1]] == "▁large" for r in rows[0::3]) in range(10, 31)  # about half of 40
    assert all(r == _ids("▁big s ▁cat") for r in rows[1::3])  # `big` goes on as `bigs`: not a whole word
    assert {words[r[0]] for r in rows[2::3]} <= {"▁huge", "▁big", "▁large"}
    assert out.src_tokens == sum(len(r) + 1 for r in rows)
    again = replace_synonyms(batch, table, rate=0.5, seed=1, epoch=0)
    assert torch.equal(again.src, out.src)
    assert not torch.equal(replace_synonyms(batch, table, rate=0.5, seed=1, epoch=1).src, out.src)


def test_the_data_module_puts_synonyms_into_training_batches_only():
    from types import SimpleNamespace

    from nmt.data.synonyms import SynonymTable
    from nmt.train.datamodule import TranslationDataModule

    table = SynonymTable.build([["big", "large"]], _WordTokenizer(), [_ids("▁big ▁large")] * 2, min_count=1)
    module = TranslationDataModule(None, None, 4096, seed=0, synonyms=table, synonym_rate=1.0)
    batch = collate([_ids("▁a ▁big ▁dog")] * 4, [[20]] * 4, PAD_ID, BOS_ID, EOS_ID, index=[0, 1, 2, 3])
    module.trainer = SimpleNamespace(training=False, current_epoch=0)
    assert module.on_before_batch_transfer(batch, 0) is batch
    module.trainer = SimpleNamespace(training=True, current_epoch=0)
    swapped = module.on_before_batch_transfer(batch, 0).src
    assert (swapped[:, 1] == _WordTokenizer.PIECES.index("▁large")).all()
