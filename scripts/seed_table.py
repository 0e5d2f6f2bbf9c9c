"""The results of an experiment run with several seeds, as a Markdown table: mean ± standard deviation per metric,
the difference to the baseline (the first arm), whether it is within two standard deviations (then run another
seed), and each seed's paired bootstrap p-value (`nmt.evaluate.seeds`).

    python scripts/seed_table.py --runs runs/aug baseline duplicated switchout synonyms bt switchout_bt

reads `RUNS/ARM_s1/scores.json`, `RUNS/ARM_s2/scores.json`, ... (`nmt-evaluate ... json=true > RUN/scores.json`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from nmt.evaluate.seeds import markdown_table, read_arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arms", nargs="+", help="arm names, the baseline first")
    parser.add_argument("--runs", required=True, help="the folder holding ARM_sSEED run directories")
    parser.add_argument("--metrics", nargs="+", default=["BLEU", "chrF2"], help="metrics as the reports name them")
    args = parser.parse_args()
    arms = []
    for name in args.arms:
        runs = [p for p in Path(args.runs).glob(f"{name}_s*") if re.fullmatch(rf"{re.escape(name)}_s\d+", p.name)]
        runs = sorted((p for p in runs if (p / "scores.json").exists()), key=lambda p: int(p.name.rsplit("_s", 1)[1]))
        if not runs:
            raise SystemExit(f"no {args.runs}/{name}_sN/scores.json found")
        arms.append(read_arm(name, runs))
    print(markdown_table(arms, args.metrics))


if __name__ == "__main__":
    main()
