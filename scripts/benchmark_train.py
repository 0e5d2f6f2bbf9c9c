"""Training throughput of precisions side by side, each in its own `nmt-train` process (own peak memory).

    python scripts/benchmark_train.py --steps 150 -- experiment=multi30k_en_de data.root=../shared/data

Prints a Markdown table of median real (non-pad) source+target tokens/s, peak resident memory, and
the ratio to the first precision. No validation runs and no checkpoint is kept (run dirs are temporary).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile

THROUGHPUT = re.compile(r"throughput:\s+([\d,]+) real source\+target tokens/s .*peak memory ([\d.]+) GB")


def measure(precision: str, steps: int, overrides: list[str]) -> tuple[float, float]:
    """(median tokens/s, peak GB) of one `nmt-train` run."""
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            "nmt-train",
            *overrides,
            f"trainer.precision={precision}",
            f"trainer.max_steps={steps}",
            f"trainer.val_check_interval={steps * 10}",
            "trainer.max_time=null",
            "trainer.progress_bar=false",
            f"hydra.run.dir={run_dir}",
        ]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = THROUGHPUT.search(out)
    if match is None:
        sys.exit(f"no throughput line in the output of {' '.join(command)}:\n{out}")
    return float(match.group(1).replace(",", "")), float(match.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--precisions", nargs="+", default=["32", "bf16-mixed"])
    parser.add_argument("overrides", nargs="*", help="nmt-train overrides (after --)")
    args = parser.parse_args()
    rows = [(p, *measure(p, args.steps, args.overrides)) for p in args.precisions]
    print("| precision | real tokens/s (median) | peak memory (GB) | speed vs first |")
    print("| --- | ---: | ---: | ---: |")
    for precision, rate, peak in rows:
        print(f"| {precision} | {rate:,.0f} | {peak:.2f} | {rate / rows[0][1]:.2f}x |")


if __name__ == "__main__":
    main()
