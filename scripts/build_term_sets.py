"""Build the terminology test sets of a Multi30k model (see `nmt.evaluate.terminology` and `term_sets`).

    python scripts/build_term_sets.py --ckpt runs/multi30k_en_de/model.pt --out runs/terms_en_de

Writes into --out, for the model's language pair on Multi30k's --split (default test2016):
`plain.txt` (the unconstrained beam-5 output the sets rest on), `constraints.jsonl` (1-3 reference phrases
per line that it misses), `avoid.jsonl` (1-3 of its words the reference does not use), `glossary.tsv`
(source/target words linked one-to-one in the references). For an en-fr model also `wmt21.en`, `wmt21.fr`
and `wmt21.jsonl` (the WMT21 terminology dev set, detokenized, its terms as constraints); for an en-de model
`iate.tsv` (Dinu et al.'s IATE term pairs as a glossary). The jsonl files are `nmt-translate
input_format=jsonl` input and `nmt-evaluate constraints=` files for the same lines.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from nmt.checkpoint import trained_on
from nmt.config import DecodeConfig
from nmt.data.sources import get_corpus
from nmt.decode.align import Aligner
from nmt.decode.terms import Segment
from nmt.decode.translator import Translator
from nmt.device import set_threads
from nmt.evaluate.constraint_files import write_glossary, write_segments
from nmt.evaluate.term_sets import dinu_glossary, read_dinu, read_wmt21, wmt21_test_set
from nmt.evaluate.terminology import reference_sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a Multi30k model (model.pt)")
    parser.add_argument("--out", required=True, type=Path, help="the directory to write the sets into")
    parser.add_argument("--data", default="../shared/data", help="the shared data directory")
    parser.add_argument("--split", default="test2016")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--align-layer", type=int, default=1, help="decoder layer whose attention links words")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    set_threads(args.threads)
    translator = Translator.from_checkpoint(args.ckpt, DecodeConfig(beam_size=5), device="cpu")
    data = dataclasses.replace(trained_on(args.ckpt), root=args.data)
    src_lang, tgt_lang = data.src_lang, data.tgt_lang
    corpus = get_corpus(data, args.split)
    aligner = Aligner(translator.model, translator.tokenizer, translator.engine.special_ids)
    sets = reference_sets(translator, aligner, corpus.src, corpus.tgt, args.seed, args.align_layer)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plain.txt").write_text("".join(line + "\n" for line in sets.plain), encoding="utf-8")
    lines = list(zip(corpus.src, sets.constraints, sets.avoid, strict=True))
    write_segments(args.out / "constraints.jsonl", [Segment(text, constraints=c) for text, c, _ in lines])
    write_segments(args.out / "avoid.jsonl", [Segment(text, avoid=a) for text, _, a in lines])
    write_glossary(args.out / "glossary.tsv", sets.glossary)
    print(f"{args.split}: {sum(map(len, sets.constraints))} constraints on {sum(map(bool, sets.constraints))} lines, "
          f"{sum(map(len, sets.avoid))} words to avoid, {len(sets.glossary)} glossary entries")  # fmt: skip

    terminology = Path(args.data) / "terminology"
    if (src_lang, tgt_lang) == ("en", "fr"):
        wmt = terminology / "wmt21-en-fr-dev"
        test = wmt21_test_set(read_wmt21(wmt / "dev.en-fr.en.sgm", wmt / "dev.en-fr.fr.sgm"))
        (args.out / "wmt21.en").write_text("".join(line + "\n" for line in test.src), encoding="utf-8")
        (args.out / "wmt21.fr").write_text("".join(line + "\n" for line in test.ref), encoding="utf-8")
        write_segments(args.out / "wmt21.jsonl", [Segment(s, c) for s, c in zip(test.src, test.include, strict=True)])
        print(f"wmt21: {len(test.src)} lines, {sum(map(len, test.accepted))} term annotations")
    if (src_lang, tgt_lang) == ("en", "de"):
        pairs = dinu_glossary(read_dinu(terminology / "dinu2019" / "iate.414.terminology.tsv"))
        write_glossary(args.out / "iate.tsv", pairs, exact_case=True)
        print(f"iate: {len(pairs)} glossary entries")


if __name__ == "__main__":
    main()
