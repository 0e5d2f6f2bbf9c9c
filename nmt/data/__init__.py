"""Data: reading and filtering corpora, SentencePiece tokenization, token-budget batching.

Imports only the standard library, sentencepiece, torch (for `collate`) and `nmt.config`.
"""

from nmt.data.batching import Batch, TokenBatchSampler, collate
from nmt.data.builtin import builtin_corpus, write_builtin
from nmt.data.corpus import CorpusError, FilterStats, ParallelText, filter_pairs, read_lines, read_parallel
from nmt.data.sources import download, get_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, train_tokenizer

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "Batch",
    "CorpusError",
    "FilterStats",
    "ParallelText",
    "TokenBatchSampler",
    "Tokenizer",
    "builtin_corpus",
    "collate",
    "download",
    "filter_pairs",
    "get_corpus",
    "read_lines",
    "read_parallel",
    "train_tokenizer",
    "write_builtin",
]
