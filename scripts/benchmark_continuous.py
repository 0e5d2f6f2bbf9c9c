"""Continuous batching without HTTP: sentences kept `--in-flight` at a time in one `ContinuousSearch` (a sentence
joins as soon as another ends, as in a busy server) against consecutive batches of as many, on one thread; prints
sentences/s of both and the share of the continuous time spent adding sentences (encoding them and joining them to
the running cache), round after round. With --join-share, a third arm joins sentences in groups as `nmt-serve` does
with that `join_share` (free places wait until they are that share of the running sentences, or for
`JOIN_HOLD_STEPS` steps).

    python scripts/benchmark_continuous.py --ckpt runs/multi30k_en_de/model.pt --sentences /tmp/test2016.en \
        --join-share 0.125
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from nmt.config import DecodeConfig
from nmt.decode.translator import Translator
from nmt.device import retain_freed_memory
from nmt.serve.batcher import JOIN_HOLD_STEPS


def continuous(
    translator: Translator, ids: list[list[int]], decode: DecodeConfig, in_flight: int, join_share: float = 0.0
) -> tuple[float, float]:
    """Sentences/s, and the share of the time spent in `add`."""
    search = translator.engine.continuous(decode)
    assert search is not None
    start = done = held = 0
    adding, began = 0.0, time.perf_counter()
    while done < len(ids):
        free = min(in_flight - search.sentences, len(ids) - start)
        if free and free < math.ceil(join_share * search.sentences) and held < JOIN_HOLD_STEPS:
            held += 1
        elif free:
            before = time.perf_counter()
            search.add(ids[start : start + free], list(range(start, start + free)))
            adding += time.perf_counter() - before
            start, held = start + free, 0
        done += len(search.step())
    seconds = time.perf_counter() - began
    return len(ids) / seconds, adding / seconds


def batches(translator: Translator, ids: list[list[int]], decode: DecodeConfig, size: int) -> float:
    """Sentences/s in consecutive batches of `size`."""
    began = time.perf_counter()
    for start in range(0, len(ids), size):
        translator.engine.translate_ids(ids[start : start + size], decode)
    return len(ids) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--sentences", required=True, help="one sentence per line")
    parser.add_argument("--count", type=int, default=640, help="sentences translated per round")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--join-share", type=float, default=0.0, help="also join in groups (nmt-serve's join_share)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    retain_freed_memory()  # as nmt-translate and nmt-serve
    decode = DecodeConfig(beam_size=args.beam)
    translator = Translator.from_checkpoint(args.ckpt, decode, device="cpu")
    lines = Path(args.sentences).read_text(encoding="utf-8").splitlines()[: args.count]
    ids = translator.tokenizer.encode_src(lines)
    continuous(translator, ids, decode, args.in_flight)  # warm-up
    batches(translator, ids, decode, args.in_flight)
    for _ in range(args.rounds):
        rate, adding = continuous(translator, ids, decode, args.in_flight)
        line = f"continuous {rate:.1f} sentences/s ({adding:.0%} of it adding sentences); "
        if args.join_share:
            rate, adding = continuous(translator, ids, decode, args.in_flight, args.join_share)
            line += f"join_share {args.join_share}: {rate:.1f} sentences/s ({adding:.0%} adding); "
        print(line + f"batches of {args.in_flight}: {batches(translator, ids, decode, args.in_flight):.1f} sentences/s")


if __name__ == "__main__":
    main()
