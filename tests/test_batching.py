import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.config import DataConfig, TokenizerConfig
from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, train_tokenizer


def lengths(n: int, seed: int = 0) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    src = [rng.randint(2, 60) for _ in range(n)]
    return src, [max(2, s + rng.randint(-5, 8)) for s in src]


def cost(batch: list[int], src: list[int], tgt: list[int]) -> int:
    return len(batch) * max(max(src[i], tgt[i]) for i in batch)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50)), max_size=200), st.integers(50, 400))
def test_batches_fit_the_budget_and_cover_every_index_once(pairs, max_tokens):
    src, tgt = [s for s, _ in pairs], [t for _, t in pairs]
    batches = list(TokenBatchSampler(src, tgt, max_tokens, seed=3))
    assert all(batch and cost(batch, src, tgt) <= max_tokens for batch in batches)
    assert sorted(i for batch in batches for i in batch) == list(range(len(pairs)))


def test_batches_are_length_sorted_without_shuffle():
    src, tgt = lengths(500)
    batches = list(TokenBatchSampler(src, tgt, 300, shuffle=False))
    order = [i for batch in batches for i in batch]
    assert [(src[i], tgt[i]) for i in order] == sorted(zip(src, tgt, strict=True))


def test_same_seed_and_epoch_same_order_other_epoch_other_order():
    src, tgt = lengths(1000)
    a, b = TokenBatchSampler(src, tgt, 300, seed=5), TokenBatchSampler(src, tgt, 300, seed=5)
    a.set_epoch(3)
    b.set_epoch(3)
    epoch3 = list(a)
    assert epoch3 == list(b) == list(a)
    b.set_epoch(4)
    assert list(b) != epoch3
    assert list(TokenBatchSampler(src, tgt, 300, seed=6)) != list(TokenBatchSampler(src, tgt, 300, seed=5))


def test_shards_are_disjoint_and_equal_sized():
    src, tgt = lengths(1000)
    shards = [list(TokenBatchSampler(src, tgt, 300, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    total = len(TokenBatchSampler(src, tgt, 300, seed=1))
    assert len({len(shard) for shard in shards}) == 1
    assert len(shards[0]) == total // 3 == len(TokenBatchSampler(src, tgt, 300, num_replicas=3, rank=2))
    indices = [i for shard in shards for batch in shard for i in batch]
    assert len(indices) == len(set(indices))


def test_skip_resumes_mid_epoch_once():
    src, tgt = lengths(1000)
    sampler = TokenBatchSampler(src, tgt, 300, seed=2)
    sampler.set_epoch(7)
    full = list(sampler)
    resumed = TokenBatchSampler(src, tgt, 300, seed=2)
    resumed.set_epoch(7)
    resumed.skip(5)
    assert list(resumed) == full[5:]
    assert list(resumed) == full  # the skip applies to one iteration only
    with pytest.raises(ValueError, match=r"`n` must be in 0\.\.\d+, but is -1 instead"):
        resumed.skip(-1)


def test_len_matches_iteration():
    src, tgt = lengths(777)
    sampler = TokenBatchSampler(src, tgt, 256, num_replicas=2, rank=1)
    assert len(sampler) == len(list(sampler)) > 0


def test_pair_longer_than_budget_is_rejected():
    with pytest.raises(ValueError, match=r"`max_tokens` must be >= the longest pair \(70 tokens\), but is 64"):
        TokenBatchSampler([3, 70], [4, 5], 64)


def test_collate_adds_bos_eos_and_pads():
    batch = collate([[5, 6, 7], [8]], [[9], [10, 11]], pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID)
    assert len(batch) == 2
    assert batch.src.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.tgt_in.tolist() == [[BOS_ID, 9, PAD_ID], [BOS_ID, 10, 11]]
    assert batch.tgt_out.tolist() == [[9, EOS_ID, PAD_ID], [10, 11, EOS_ID]]
    assert batch.src.dtype == torch.long


def test_works_as_a_dataloader_batch_sampler():
    src_ids = [[4] * n for n in (3, 1, 5, 2, 4)]
    tgt_ids = [[5] * n for n in (2, 2, 6, 1, 3)]
    sampler = TokenBatchSampler([len(s) + 1 for s in src_ids], [len(t) + 1 for t in tgt_ids], 14, seed=0)
    loader = torch.utils.data.DataLoader(
        list(range(5)),
        batch_sampler=sampler,
        collate_fn=lambda idx: collate([src_ids[i] for i in idx], [tgt_ids[i] for i in idx], PAD_ID, BOS_ID, EOS_ID),
    )
    batches = list(loader)
    assert sum(len(b) for b in batches) == 5
    assert all(b.src.numel() <= 14 and b.tgt_in.numel() <= 14 for b in batches)


def test_padding_ratio_on_multi30k_is_small(shared_data, spm_cache):
    corpus = get_corpus(DataConfig(name="multi30k", root=str(shared_data)), "train")
    tokenizer = train_tokenizer(corpus.src, corpus.tgt, TokenizerConfig(vocab_size=8000), spm_cache)
    src = [len(ids) + 1 for ids in tokenizer.encode_src(corpus.src)]  # + EOS
    tgt = [len(ids) + 1 for ids in tokenizer.encode_tgt(corpus.tgt)]  # + BOS or EOS
    sampler = TokenBatchSampler(src, tgt, max_tokens=4096, seed=1)
    assert 0.0 < sampler.padding_ratio < 0.10
    unsorted = [list(range(i, min(i + 150, len(src)))) for i in range(0, len(src), 150)]
    padded = sum(len(b) * (max(src[i] for i in b) + max(tgt[i] for i in b)) for b in unsorted)
    assert sampler.padding_ratio < 1 - (sum(src) + sum(tgt)) / padded  # sorting beats arrival order


def test_uneven_sharding_deals_every_batch_out_once_for_validation():
    src, tgt = lengths(500)
    total = list(TokenBatchSampler(src, tgt, 300, shuffle=False))
    shards = [
        list(TokenBatchSampler(src, tgt, 300, shuffle=False, num_replicas=3, rank=r, even=False)) for r in range(3)
    ]
    assert sorted(b for shard in shards for b in shard) == sorted(total)
    assert [len(s) for s in shards] == [
        len(TokenBatchSampler(src, tgt, 300, num_replicas=3, rank=r, even=False)) for r in range(3)
    ]
    assert len(total) % 3 == 0 or len({len(s) for s in shards}) == 2
