"""`nmt-prepare`: encode a corpus once into a directory that training memory-maps (`data.prepared=DIR`).

Streams the corpus (plain or gzip files, one or many per side, or a named corpus), trains the
SentencePiece model on a seeded sample, encodes in parallel worker processes, filters as training
does, and writes flat token arrays per split with a manifest of counts and checksums. The directory
is written under a temporary name and renamed into place: an interrupted prepare leaves nothing that
looks finished. Every DDP rank of a machine then shares one copy of the arrays in the page cache.

Examples:
    nmt-prepare data=multi30k_en_de data.root=../shared/data tokenizer.vocab_size=8000 output=prepared/en_de
    nmt-prepare data=files data.train=[corpus/europarl,corpus/news] data.valid=corpus/dev output=prepared/big
    nmt-train experiment=multi30k_en_de data.prepared=prepared/en_de
"""

from __future__ import annotations

import time
from pathlib import Path

from nmt.cli.hydra_config import entry_point
from nmt.config import PrepareConfig
from nmt.data.prepare import prepare_directory


def run(cfg: PrepareConfig) -> None:
    """Prepare `cfg.data` into `cfg.output` and say what was kept, how big it is and how fast it went."""
    start = time.perf_counter()
    manifest = prepare_directory(cfg)
    seconds = time.perf_counter() - start
    train, valid = manifest["splits"]["train"], manifest["splits"]["valid"]
    size = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {cfg.output}: {size / 1e6:,.1f} MB, {manifest['dtype']} token ids")
    print(f"train: {train['pairs']:,} pairs, {train['src_tokens']:,} + {train['tgt_tokens']:,} tokens")
    stats = train["filter"]
    print(
        f"       dropped {stats['empty']:,} with an empty side, {stats['too_long']:,} longer than "
        f"{stats['max_len']} tokens, {stats['bad_ratio']:,} with length ratio > {stats['max_ratio']:g}"
    )
    print(f"valid: {valid['pairs']:,} pairs")
    print(f"time:  {seconds:.1f} s ({train['filter']['total'] / seconds:,.0f} training pairs/s)")
    print(f"train with: nmt-train data.prepared={Path(cfg.output)}")


main = entry_point("prepare", PrepareConfig, run, __doc__)
