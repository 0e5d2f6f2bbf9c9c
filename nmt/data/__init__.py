"""Data: reading and filtering corpora, SentencePiece tokenization, token-budget batching.

Imports only the standard library, numpy, sentencepiece, torch (for `Batch`) and the ground floor
(`nmt.config`, `nmt.atomic`, `nmt.checkpoint`, `nmt.device`).
"""

from nmt.data.batching import Batch, TokenBatchSampler, collate
from nmt.data.builtin import builtin_corpus, write_builtin
from nmt.data.corpus import CorpusError, FilterStats, ParallelText, filter_mask, read_lines, read_parallel
from nmt.data.prepare import load_training_data, prepare_corpus
from nmt.data.prepared import PreparedCorpus, PreparedError, open_prepared
from nmt.data.sources import download, get_corpus, split_files
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
    "PreparedCorpus",
    "PreparedError",
    "TokenBatchSampler",
    "Tokenizer",
    "builtin_corpus",
    "collate",
    "download",
    "filter_mask",
    "get_corpus",
    "load_training_data",
    "open_prepared",
    "prepare_corpus",
    "read_lines",
    "read_parallel",
    "split_files",
    "train_tokenizer",
    "write_builtin",
]
