"""Training pairs beside what augmentation makes of them in one epoch: SwitchOut on both sides, synonyms on the
source, drawn exactly as `nmt-train` draws them for the pair with that index (`nmt.data.augment`,
`nmt.data.synonyms`).

    python scripts/show_augmentation.py --ckpt runs/aug/baseline_s1/model.pt --src runs/bt/corpus/half.en \\
        --tgt runs/bt/corpus/half.de --switchout 1.0 --synonyms runs/synonyms.en.txt --pairs 12

Pairs are numbered by their line in the files; a run numbers the pairs its length filter kept, so where the filter
dropped a line the numbers after it differ from the run's by as many lines (the draws are the same kind either
way). Prints the first `--pairs` pairs that an augmentation changed, each line of it that changed.
"""

from __future__ import annotations

import argparse

from nmt.checkpoint import load_checkpoint
from nmt.config import AugmentConfig
from nmt.data.augment import switchout
from nmt.data.batching import collate
from nmt.data.corpus import iter_lines
from nmt.data.synonyms import replace_synonyms, synonym_table
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a model.pt whose tokenizer the run used")
    parser.add_argument("--src", required=True, help="the training sources, one per line")
    parser.add_argument("--tgt", required=True, help="the training targets, one per line")
    parser.add_argument("--switchout", type=float, default=1.0, help="augment.switchout (tau); 0: off")
    parser.add_argument("--synonyms", help="augment.synonyms: a synonym file")
    parser.add_argument("--rate", type=float, default=AugmentConfig.synonym_rate, help="augment.synonym_rate")
    parser.add_argument("--min-count", type=int, default=AugmentConfig.synonym_min_count)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epoch", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=12, help="changed pairs to print")
    args = parser.parse_args()
    tokenizer = Tokenizer.from_bytes(load_checkpoint(args.ckpt).tokenizer)
    src_ids = tokenizer.encode_src(list(iter_lines(args.src)))
    tgt_ids = tokenizer.encode_tgt(list(iter_lines(args.tgt)))
    augment = AugmentConfig(synonyms=args.synonyms, synonym_rate=args.rate, synonym_min_count=args.min_count)
    table = synonym_table(augment, tokenizer, src_ids)
    sizes = (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size)
    shown = 0
    for start in range(0, len(src_ids), 256):
        index = list(range(start, min(start + 256, len(src_ids))))
        batch = collate([src_ids[i] for i in index], [tgt_ids[i] for i in index], PAD_ID, BOS_ID, EOS_ID, index)
        versions = {}
        if args.switchout > 0:
            versions["switchout"] = switchout(batch, args.switchout, args.seed, args.epoch, sizes)
        if table is not None:
            versions["synonyms"] = replace_synonyms(batch, table, args.rate, args.seed, args.epoch)
        for row, pair in enumerate(index):
            src, tgt = tokenizer.decode_src(src_ids[pair]), tokenizer.decode_tgt(tgt_ids[pair])
            lines = [f"pair {pair}", f"  source:           {src}", f"  target:           {tgt}"]
            for name, changed in versions.items():
                new_src = tokenizer.decode_src(changed.src[row].tolist())
                new_tgt = tokenizer.decode_tgt(changed.tgt_out[row].tolist())
                if new_src != src:
                    lines.append(f"  {name} source: {new_src}")
                if new_tgt != tgt:
                    lines.append(f"  {name} target: {new_tgt}")
            if len(lines) > 3:
                print("\n".join(lines))
                shown += 1
            if shown == args.pairs:
                return


if __name__ == "__main__":
    main()
