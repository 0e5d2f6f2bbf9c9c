"""Document translation on the three test sets of issue 36, each beside its baselines: Markdown tables and JSON.

    python scripts/benchmark_documents.py --ckpt runs/multi30k_en_de/model.pt \\
        --fr-ckpt runs/multi30k_en_fr/model.pt --threads 2 --out docs/benchmark_documents.json

(a) Paragraphs of 2-16 consecutive sentences of --ckpt's test set: line by line, split into sentences, and
whole (cut into chunks of the training length, and not: the truncation baseline). (b) Tags around
gold-aligned spans of the Hansards en-fr pairs (with --fr-ckpt), for a model of the built-in corpus, of
its test pairs, and with --silver FILE, of --ckpt's test pairs along eflomal's links (`pip install eflomal`;
the links of the first run are kept in FILE, as eflomal samples without a seed): placed on the references
along the forced search's alignment and by substring search (the argos baseline); BLEU of the tagged and the
untagged sources; AER of the search's links and of nmt-align's.
(c) The test set with a URL, e-mail address, number, placeholder or code inserted per line, kept verbatim
with protection on and off; and the plain test set's BLEU both ways. The sets and scores live in
`nmt.evaluate.documents`, `markup_sets` and `piece_sets`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from nmt.checkpoint import trained_on
from nmt.config import DecodeConfig
from nmt.data.sources import get_corpus
from nmt.decode.translator import Translator
from nmt.device import set_threads
from nmt.evaluate import to_markdown_table
from nmt.evaluate.alignment import read_alignments
from nmt.evaluate.benchmark import environment
from nmt.evaluate.documents import benchmark_paragraphs, held_out_corpus, paragraph_pairs
from nmt.evaluate.markup_sets import benchmark_markup, builtin_set, hansards_set, tagged_pairs
from nmt.evaluate.piece_sets import benchmark_pieces, piece_lines
from nmt.evaluate.silver_links import eflomal_links, write_links

PARAGRAPH_COLUMNS = ["run", "bleu", "chrf", "units", "over_trained_len", "chunked", "truncated", "same_as_lines"]
PARAGRAPH_COLUMNS += ["wall_s"]
MARKUP_COLUMNS = ["placement", "accuracy", "overlap_f1", "structure", "well_formed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="the model for sets (a) and (c), and (b) if built-in")
    parser.add_argument("--fr-ckpt", help="an en->fr model for set (b) on the Hansards gold alignments")
    parser.add_argument(
        "--silver",
        type=Path,
        help="set (b) on --ckpt's own test set with eflomal's links, kept in this file (made by the first run)",
    )
    parser.add_argument("--set", default="a,b,c", help="which sets, comma-separated")
    parser.add_argument("--data", default="../shared/data", type=Path, help="the shared data directory")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of set (a)")
    parser.add_argument("--lines", type=int, help="use the first N test lines only")
    parser.add_argument("--pairs", type=int, help="use the first N sentence pairs of set (b) only")
    parser.add_argument("--align", default="attention:-1", help="METHOD:LAYER of the links that place tags in (b)")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()

    command = shlex.join(["python", "scripts/benchmark_documents.py", *sys.argv[1:]])
    set_threads(args.threads)
    decode = DecodeConfig(beam_size=args.beam)
    translator = Translator.from_checkpoint(args.ckpt, decode, device="cpu")
    data = dataclasses.replace(trained_on(args.ckpt), root=str(args.data))
    test = held_out_corpus(data)
    src, ref, langs = test.src[: args.lines], test.tgt[: args.lines], translator.langs
    where = f"{data.name} {data.src_lang}-{data.tgt_lang} {data.test}, beam {args.beam}"
    result: dict = {"command": command, "environment": environment({"torch": translator})}
    sets = args.set.split(",")
    method, layer = args.align.split(":")

    if "a" in sets:
        pairs = paragraph_pairs(src, ref, args.seed, langs)
        a = result["paragraphs"] = benchmark_paragraphs(translator, pairs, langs, args.repeats)
        print(f"## (a) {a['paragraphs']} paragraphs of 2-16 sentences ({a['sentences']} in all), {where}\n")
        print(f"`{command}`\n\n{to_markdown_table(a['rows'], PARAGRAPH_COLUMNS)}\n")
        print(
            f"Splitting overhead: {a['split_overhead_pct']:+.1f}% of the line-by-line wall time (medians of "
            f"{args.repeats} rounds); cutting the paragraphs into sentences: {a['split_share_pct']:.2f}% of the "
            f"split run's. BLEU signature: {a['rows'][0]['bleu_signature']}\n"
        )

    if "b" in sets:
        markup = []
        if data.name == "builtin":
            markup.append(("built-in test set, gold links", translator, builtin_set()))
        if args.fr_ckpt:
            french = Translator.from_checkpoint(args.fr_ckpt, decode, device="cpu", expect_langs=("en", "fr"))
            markup.append(("Hansards en-fr, gold sure links", french, hansards_set(args.data)))
        if args.silver:
            pairs = list(zip(src, ref, strict=True))
            if not args.silver.exists():
                train = get_corpus(data, "train")
                write_links(args.silver, eflomal_links(pairs, list(zip(train.src, train.tgt, strict=True))))
            markup.append(
                (f"{data.name} {data.test}, eflomal's links", translator, (pairs, read_alignments(args.silver)))
            )
        if not markup:
            print("## (b) markup: skipped (it needs --fr-ckpt, --silver, or a model of the built-in corpus)\n")
        result["markup"] = {}
        for name, model, (pairs, gold) in markup:
            pairs, gold = pairs[: args.pairs], gold[: args.pairs]
            tagged = tagged_pairs(pairs, [g.sure for g in gold], args.seed)
            b = result["markup"][name] = benchmark_markup(model, pairs, gold, tagged, model.langs, (method, int(layer)))
            t, aer = b["translation"], b["aer"]
            print(f"## (b) markup: {name}, {b['tags']} tags in {b['tagged_pairs']} of {b['pairs']} pairs\n")
            print(f"`{command}`\n\n{to_markdown_table(b['rows'], MARKUP_COLUMNS)}\n")
            print(
                f"Placed on the references written by a forced greedy search ({b['forced_mismatch']} references "
                f"not reproduced exactly). Translated: BLEU {t['bleu_tagged']:.2f} tagged, {t['bleu_untagged']:.2f} "
                f"untagged ({t['identical']} of {b['tagged_pairs']} outputs identical, {t['well_formed']:.1f}% "
                f"well-formed). AER ({aer['method']}, layer {aer['layer']}, {b['pairs']} pairs): the search's "
                f"links {aer['search']:.2f}, nmt-align's {aer['nmt_align']:.2f}.\n"
            )

    if "c" in sets:
        c = result["pieces"] = benchmark_pieces(translator, piece_lines(src, args.seed), src, ref, langs)
        plain = c["plain"]
        print(f"## (c) untranslatable pieces, one per line: {where}\n")
        print(f"`{command}`\n\n{to_markdown_table(c['rows'], ['kind', 'lines', 'kept_on', 'kept_off'])}\n")
        print(
            f"The plain test set: BLEU {plain['bleu_on']:.2f} with protection, {plain['bleu_off']:.2f} without; "
            f"{plain['with_piece']} of {plain['lines']} lines hold a protected piece, and of the others "
            f"{plain['identical_without_piece']} are translated identically.\n"
        )

    print(json.dumps(result["environment"]))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
