"""The hard-attention probe: BLEU and chrF of a model with heads made hard, per layer and per head, against soft.

    python scripts/harden_heads.py --ckpt runs/multi30k_en_de/model.pt --data multi30k_en_de --split test2016 \
        [--gold-pairs ../shared/data/alignment/enfr.src-tgt --gold ../shared/data/alignment/enfr.gold \
         --align-ckpt runs/multi30k_en_fr/model.pt] [--beam-size 1] [--json docs/hard_heads.json]

Each configuration (every cross-attention head; each layer's; each head alone; each layer's encoder and decoder
self-attention; or those given with --config) translates the split, scored against the soft model with paired
bootstrap, beside the heads' confidence and importance from nmt-prune's head table (on the validation split) and,
with a gold set, the AER of the hardened cross-attention heads of --align-ckpt (by default --ckpt itself), whose
heads the same specs name (`nmt.evaluate.hard_heads`). Prints a Markdown table; --json also writes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from functools import partial

from nmt.atomic import atomic_open, check_writable
from nmt.checkpoint import load_checkpoint, trained_on
from nmt.cli.hydra_config import corpus_config
from nmt.config import DataConfig, DecodeConfig
from nmt.data.sources import describe, get_corpus
from nmt.decode.align import METHODS, Aligner
from nmt.decode.engine import load_model
from nmt.decode.translator import check_langs
from nmt.device import resolve_device, set_threads
from nmt.errors import UserError
from nmt.evaluate.alignment import read_alignments, read_pairs
from nmt.evaluate.hard_heads import GoldSet, ProbeData, hard_probe, probe_configurations


def data_config(name: str | None, ckpt: str, root: str) -> DataConfig:
    """The corpus `conf/data/NAME.yaml` describes (None: the one the checkpoint was trained on), read from `root`."""
    if name is None:
        return dataclasses.replace(trained_on(ckpt), root=root)
    return corpus_config(name, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="the model (model.pt) to probe")
    parser.add_argument("--data", help="a corpus of conf/data (e.g. multi30k_en_de); default: the checkpoint's")
    parser.add_argument("--data-root", default="../shared/data", help="the folder holding the corpora")
    parser.add_argument("--split", help="the split translated and scored; default: the corpus's test split")
    parser.add_argument("--heads-split", help="the split of nmt-prune's head table; default: the validation split")
    parser.add_argument("--beam-size", type=int, default=5, help="1: greedy search")
    parser.add_argument(
        "--config", action="append", default=[], metavar="SPEC[,SPEC]", help="one configuration; repeat for more"
    )
    parser.add_argument("--samples", type=int, default=10000, help="paired bootstrap resamples (Holm needs many)")
    parser.add_argument("--gold-pairs", help="`source ||| target` pairs with gold links (the Hansards en-fr set)")
    parser.add_argument("--gold", help="their gold links (`i-j` sure, `ipj` possible)")
    parser.add_argument("--gold-one-indexed", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--align-ckpt", help="the model whose heads align the gold pairs; default: --ckpt")
    parser.add_argument("--align-method", choices=METHODS, default="attention")
    parser.add_argument("--json", help="also write the table as JSON here")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-threads", type=int, default=0)
    args = parser.parse_args()
    if (args.gold is None) != (args.gold_pairs is None):
        parser.error("--gold and --gold-pairs go together.")
    try:
        run(args)
    except UserError as err:
        raise SystemExit(f"error: {err}") from None


def run(args: argparse.Namespace) -> None:
    set_threads(args.num_threads)
    if args.json:
        check_writable(args.json)
    data = data_config(args.data, args.ckpt, args.data_root)
    ckpt = load_checkpoint(args.ckpt)
    check_langs(args.ckpt, (ckpt.src_lang, ckpt.tgt_lang), (data.src_lang, data.tgt_lang))
    model, tokenizer = load_model(ckpt, args.ckpt)
    model.to(resolve_device(args.device))
    split, heads_split = args.split or data.test, args.heads_split or data.valid
    test = get_corpus(data, split)
    probed = ProbeData(tokenizer, ckpt.special_ids, test, data.tgt_lang, get_corpus(data, heads_split))
    gold = None
    if args.gold is not None:
        aligner = Aligner.from_checkpoint(args.align_ckpt or args.ckpt, args.device)
        pairs, links = read_pairs(args.gold_pairs), read_alignments(args.gold, args.gold_one_indexed)
        gold = GoldSet(aligner, pairs, links, args.align_method)
    configurations = [config.split(",") for config in args.config] or probe_configurations(model)
    decode = DecodeConfig(beam_size=args.beam_size)
    log = partial(print, file=sys.stderr)
    result = hard_probe(model, probed, decode, configurations, gold, args.samples, log)
    scored = describe(data, split, len(test))
    print(f"## {args.ckpt}: {scored}, beam {args.beam_size}; head table on {heads_split}\n")
    print(result.to_markdown())
    if args.json:
        meta = {"ckpt": args.ckpt, "scored": scored, "heads_on": heads_split, "beam_size": args.beam_size}
        meta |= {"samples": args.samples, "gold": args.gold, "align_ckpt": args.align_ckpt or args.ckpt}
        with atomic_open(args.json) as out:
            json.dump({**meta, **result.to_json()}, out, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
