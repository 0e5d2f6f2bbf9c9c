"""How often a training batch holds a pair and its own copy when a corpus is listed twice (`data.train=[x,x]`,
upsampling): the batches are formed as `nmt-train` forms them (`TokenBatchSampler`: sorted by length, ties
shuffled per epoch), from the subword lengths of the given tokenizer.

    python scripts/batch_duplicates.py --tokenizer runs/aug/baseline_s1/tokenizer/joint.model \
        --src runs/bt/corpus/half.en --tgt runs/bt/corpus/half.de --max-tokens 4096 --epochs 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import sentencepiece as spm

from nmt.data.batching import TokenBatchSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tokenizer", required=True, help="a joint SentencePiece model (a run's tokenizer/joint.model)"
    )
    parser.add_argument("--src", required=True, help="source side, one sentence per line")
    parser.add_argument("--tgt", required=True, help="target side, one sentence per line")
    parser.add_argument("--max-tokens", type=int, default=4096, help="data.max_tokens")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    pieces = spm.SentencePieceProcessor(model_file=args.tokenizer)
    src, tgt = (
        [len(ids) + 1 for ids in pieces.encode(Path(p).read_text("utf-8").splitlines())] for p in (args.src, args.tgt)
    )
    n = len(src)
    sampler = TokenBatchSampler(src * 2, tgt * 2, args.max_tokens, seed=args.seed)  # lengths + EOS / BOS, as nmt-train
    print(f"{n:,} pairs twice: {len(sampler)} batches of {2 * n / len(sampler):.0f} pairs on average")
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        batch_of = np.empty(2 * n, dtype=np.int64)
        for b, batch in enumerate(sampler):
            batch_of[batch] = b
        together = float((batch_of[:n] == batch_of[n:]).mean())
        distinct = 1 - together / 2  # distinct pairs per pair in a batch
        print(f"epoch {epoch}: {together:.1%} of pairs share their batch with their copy ({distinct:.0%} distinct)")


if __name__ == "__main__":
    main()
