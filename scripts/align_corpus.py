"""Word links of a corpus's training pairs from eflomal, for guided alignment (`data.train_links`).

    python scripts/align_corpus.py --data multi30k_en_de --out runs/links/multi30k_en_de.train.align
    nmt-train experiment=multi30k_en_de data.root=../shared/data \
        data.train_links=runs/links/multi30k_en_de.train.align optim.align_weight=0.1

The pairs are aligned in both directions and the links found in both kept (`nmt.evaluate.silver_links`), one
Pharaoh line per training pair in the corpus's order (`pip install "eflomal>=2.0"`). eflomal samples without a
seed, so keep the file: a second run gives other links.
"""

from __future__ import annotations

import argparse
import time

from nmt.atomic import check_writable
from nmt.cli.hydra_config import corpus_config
from nmt.data.sources import get_corpus
from nmt.errors import UserError
from nmt.evaluate.silver_links import eflomal_links, write_links


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a corpus of conf/data (e.g. multi30k_en_de)")
    parser.add_argument("--data-root", default="../shared/data", help="the folder holding the corpora")
    parser.add_argument("--split", help="the split to align; default: the corpus's training split")
    parser.add_argument("--out", required=True, help="the links file to write")
    args = parser.parse_args()
    try:
        check_writable(args.out)
        data = corpus_config(args.data, args.data_root)
        corpus = get_corpus(data, args.split or data.train)
        start = time.perf_counter()
        links = eflomal_links(list(zip(corpus.src, corpus.tgt, strict=True)), [])
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    write_links(args.out, links)
    count = sum(len(pair.sure) for pair in links)
    print(f"{args.out}: {len(links):,} pairs, {count:,} links, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
