"""Sentence splitting on test set (a): boundary precision, recall and F1, and time per 1,000 sentences.

    python scripts/benchmark_sentences.py [--seed 0] [--repeats 10]

Test set (a) is paragraphs of 2-16 consecutive one-sentence lines of Multi30k test2016 (en, de) and Tatoeba
dev (zh), joined with the language's separator (`nmt.evaluate.paragraphs`). Prints a Markdown table per
splitter and language; the time is the fastest of `--repeats` passes after a warm-up pass (the least disturbed
by other work on the machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nmt.data.corpus import read_lines
from nmt.documents.sentences import SPLITTERS, split_sentences
from nmt.evaluate.paragraphs import boundary_f1, make_paragraphs, single_sentences

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {  # language: test sentences
    "en": DATA / "multi30k" / "test2016.en.gz",
    "de": DATA / "multi30k" / "test2016.de.gz",
    "zh": DATA / "tatoeba-en-zh" / "dev.zh.gz",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print("| language | sentences / lines | paragraphs | boundaries | splitter | P | R | F1 | ms / 1,000 sentences |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for lang, path in SETS.items():
        lines = read_lines(path)
        sentences = single_sentences(lines)
        paragraphs = make_paragraphs(sentences, args.seed, lang=lang)
        used = sum(len(paragraph.sentences) for paragraph in paragraphs)
        for splitter in SPLITTERS:
            times = []
            for _ in range(args.repeats + 1):  # the first pass warms up
                start = time.perf_counter()
                predicted = [split_sentences(paragraph.text, lang, splitter) for paragraph in paragraphs]
                times.append(time.perf_counter() - start)
            score = boundary_f1(predicted, paragraphs)
            ms = 1000 * min(times[1:]) / used * 1000
            print(
                f"| {lang} | {used} / {len(lines)} | {len(paragraphs)} | {score['boundaries']} | {splitter} "
                f"| {score['precision']:.2f} | {score['recall']:.2f} | {score['f1']:.2f} | {ms:.1f} |"
            )


if __name__ == "__main__":
    main()
