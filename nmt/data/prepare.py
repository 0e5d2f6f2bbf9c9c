"""Turn a configured corpus into encoded, filtered training and validation pairs plus their tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nmt.config import DataConfig, TokenizerConfig
from nmt.data.corpus import FilterStats, filter_pairs
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import Tokenizer, train_tokenizer


@dataclass
class EncodedPairs:
    """Subword ids of aligned source and target sentences (no BOS/EOS yet)."""

    src: list[list[int]]
    tgt: list[list[int]]

    def __len__(self) -> int:
        return len(self.src)


@dataclass
class PreparedData:
    """Everything training reads: the tokenizer, encoded splits, and the raw validation references."""

    tokenizer: Tokenizer
    train: EncodedPairs
    valid: EncodedPairs
    valid_refs: list[str]
    filter_stats: FilterStats


def prepare_data(data: DataConfig, tokenizer_cfg: TokenizerConfig, tokenizer: Tokenizer | None = None) -> PreparedData:
    """Read the train and valid splits, train (or load the cached) tokenizer, encode and filter.

    A given `tokenizer` (a resumed run's, from its checkpoint) is used as it is, never retrained.

    Training pairs that are empty, longer than `data.max_len` or too unequal in
    length are dropped (counted in `filter_stats`); validation pairs are all kept
    (cut to `data.max_len` tokens) so validation BLEU covers the whole split.
    """
    train_text = get_corpus(data, data.train)
    valid_text = get_corpus(data, data.valid)
    cache_dir = Path(data.cache_dir).expanduser() / "spm"
    if tokenizer is None:
        tokenizer = train_tokenizer(train_text.src, train_text.tgt, tokenizer_cfg, cache_dir)
    src, tgt = tokenizer.encode_src(train_text.src), tokenizer.encode_tgt(train_text.tgt)
    kept, stats = filter_pairs(
        [len(x) for x in src], [len(x) for x in tgt], max_len=data.max_len, max_ratio=data.max_ratio
    )
    valid_src = [ids[: data.max_len] for ids in tokenizer.encode_src(valid_text.src)]
    valid_tgt = [ids[: data.max_len] for ids in tokenizer.encode_tgt(valid_text.tgt)]
    return PreparedData(
        tokenizer=tokenizer,
        train=EncodedPairs([src[i] for i in kept], [tgt[i] for i in kept]),
        valid=EncodedPairs(valid_src, valid_tgt),
        valid_refs=valid_text.tgt,
        filter_stats=stats,
    )
