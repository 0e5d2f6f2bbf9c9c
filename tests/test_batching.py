import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.config import DataConfig, TokenizerConfig
from nmt.data.batching import Batch, TokenBatchSampler, collate
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


def greedy_reference(src: list[int], tgt: list[int], max_tokens: int, max_sentences: int = 0) -> list[list[int]]:
    """The batches of `shuffle=False` cut one pair at a time: pairs in (source, target, index) order, each joining
    the current batch while its padded cost fits `max_tokens` and it holds fewer than `max_sentences` (0: any)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(src)), key=lambda i: (src[i], tgt[i], i)):
        batch = batches[-1] if batches else []
        full = max_sentences and len(batch) == max_sentences
        if not batch or full or cost(batch + [i], src, tgt) > max_tokens:
            batches.append([i])
        else:
            batch.append(i)
    return batches


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50)), max_size=200),
    st.integers(50, 400),
    st.integers(1, 12),
    st.integers(0, 3),
)
def test_sentence_cap_bounds_every_batch_and_still_covers_every_pair_once(pairs, max_tokens, max_sentences, epoch):
    src, tgt = [s for s, _ in pairs], [t for _, t in pairs]
    sampler = TokenBatchSampler(src, tgt, max_tokens, seed=3, max_sentences=max_sentences)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert all(0 < len(batch) <= max_sentences and cost(batch, src, tgt) <= max_tokens for batch in batches)
    assert sorted(i for batch in batches for i in batch) == list(range(len(pairs)))
    in_order = list(TokenBatchSampler(src, tgt, max_tokens, shuffle=False, max_sentences=max_sentences))
    assert in_order == greedy_reference(src, tgt, max_tokens, max_sentences)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50)), max_size=200), st.integers(50, 400))
def test_no_sentence_cap_gives_the_token_budget_batches_of_before(pairs, max_tokens):
    """0 and None both mean no cap: the batches are those the token budget alone cuts, in every epoch."""
    src, tgt = [s for s, _ in pairs], [t for _, t in pairs]
    assert list(TokenBatchSampler(src, tgt, max_tokens, shuffle=False)) == greedy_reference(src, tgt, max_tokens)
    for epoch in (0, 2):
        samplers = [TokenBatchSampler(src, tgt, max_tokens, seed=4, max_sentences=cap) for cap in (None, 0)]
        samplers.append(TokenBatchSampler(src, tgt, max_tokens, seed=4))
        for sampler in samplers:
            sampler.set_epoch(epoch)
        first, *others = (list(sampler) for sampler in samplers)
        assert all(other == first for other in others)


def test_sentence_cap_cuts_batches_of_short_pairs():
    src, tgt = lengths(1000)
    uncapped = TokenBatchSampler(src, tgt, 4096, shuffle=False)
    capped = TokenBatchSampler(src, tgt, 4096, shuffle=False, max_sentences=16)
    assert max(map(len, uncapped)) > 16 == max(map(len, capped))
    assert len(capped) > len(uncapped)
    with pytest.raises(ValueError, match=r"`max_sentences` must be >= 0 \(0 or None: no cap\), but is -1 instead"):
        TokenBatchSampler(src, tgt, 4096, max_sentences=-1)


def test_data_module_caps_training_and_validation_batches():
    """`TranslationDataModule(max_sentences=...)` reaches the samplers of both loaders."""
    from nmt.train.datamodule import TranslationDataModule

    def split(n: int) -> SimpleNamespace:  # what the samplers read of a `PairSplit`: each side's lengths
        side = SimpleNamespace(lengths=np.full(n, 4, dtype=np.uint16))
        return SimpleNamespace(src=side, tgt=side)

    module = TranslationDataModule(split(300), split(100), max_tokens=1024, seed=0, max_sentences=7)
    module.trainer = SimpleNamespace(world_size=1, global_rank=0)
    for loader, pairs in ((module.train_dataloader(), 300), (module.val_dataloader(), 100)):
        sizes = [len(batch) for batch in loader.sampler]  # 1024 tokens alone would take 204 pairs of 5
        assert max(sizes) == 7 and sum(sizes) == pairs


def test_batching_options_keep_the_prepared_data_and_stay_the_runs_own():
    """`data.max_sentences`, like `data.max_tokens`, changes neither the prepared corpus's cache key nor is it
    taken from a prepared corpus's recorded config."""
    from nmt.config import TrainConfig
    from nmt.data.prepare import cache_key
    from nmt.train.run import with_prepared_data

    tokenizer = TokenizerConfig()
    assert cache_key(DataConfig(max_sentences=64), tokenizer) == cache_key(DataConfig(), tokenizer)
    prepared = SimpleNamespace(data=DataConfig(max_tokens=999), tokenizer_config=None)
    cfg = TrainConfig(data=DataConfig(prepared="prepared/", max_sentences=64))
    assert with_prepared_data(cfg, prepared).data.max_sentences == 64


def test_a_loader_with_pin_memory_pins_every_tensor_of_a_batch(monkeypatch) -> None:
    """torch's loader pins what has a `pin_memory` method and passes other objects through unpinned, as it did
    `Batch` before it had one. Pinning needs a GPU; here `Tensor.pin_memory` is replaced by a marking copy (the
    GPU tier checks `is_pinned()` for real)."""
    from torch.utils.data._utils.pin_memory import pin_memory

    pinned: list[int] = []

    def mark(tensor: torch.Tensor) -> torch.Tensor:
        copy = tensor.clone()
        pinned.append(id(copy))
        return copy

    monkeypatch.setattr(torch.Tensor, "pin_memory", mark)
    batch = collate([[5, 6], [7]], [[8], [9, 10]], 0, 1, 2, index=[3, 4])
    out = pin_memory(batch)
    assert isinstance(out, Batch)
    assert sorted(pinned) == sorted(id(t) for t in (out.src, out.tgt_in, out.tgt_out, out.index))
    assert all(torch.equal(getattr(out, k), getattr(batch, k)) for k in ("src", "tgt_in", "tgt_out", "index"))
    assert (out.src_tokens, out.tgt_tokens) == (batch.src_tokens, batch.tgt_tokens)
