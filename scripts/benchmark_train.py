"""Training throughput of configurations side by side, each run in its own `nmt-train` process (own peak memory).

    python scripts/benchmark_train.py --steps 60 --repeats 2 \\
        --variant 'fp32=trainer.precision=32' --variant 'compiled=trainer.precision=32 trainer.compile=true' \\
        -- experiment=multi30k_en_de data.root=../shared/data

A variant is `NAME=OVERRIDES` (space-separated nmt-train overrides; a `KEY=VALUE` whose key is upper case sets an
environment variable instead, e.g. `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`). Runs are interleaved
(every variant once, then again), so a machine that slows down mid-benchmark slows all of them alike. Prints a
Markdown table of real (non-pad) source+target tokens/s of all ranks together (the mean over the measured steps),
rank 0's median, its peak resident memory, and the ratio to the first variant. No validation runs and no checkpoint
is kept (run dirs are temporary).

With `--before DIR` (another tree's package and configs, e.g. `git archive HEAD~1 nmt conf | tar -x -C DIR`), every
variant also runs on that code (`PYTHONPATH=DIR`), interleaved with this tree's: a change compared in one run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

THROUGHPUT = re.compile(
    r"throughput:\s+([\d,]+) real source\+target tokens/s \(median of \d+ steps; mean ([\d,]+)\); "
    r"peak memory ([\d.]+) GB(?:\nall \d+ ranks:\s+([\d,]+))?"
)


def measure(overrides: list[str], steps: int, tree: str | None = None) -> tuple[float, float, float]:
    """(all-rank mean tokens/s, rank-0 median tokens/s, rank-0 peak GB) of one `nmt-train` run, on the code of
    `tree` (a directory holding `nmt` and `conf`) or of the installed package; upper-case `KEY=VALUE` overrides
    are environment variables."""
    env = dict(os.environ, **({"PYTHONPATH": tree} if tree else {}))
    env.update(o.split("=", 1) for o in overrides if o.split("=", 1)[0].isupper())
    overrides = [o for o in overrides if not o.split("=", 1)[0].isupper()]
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            "nmt-train",
            *overrides,
            f"trainer.max_steps={steps}",
            f"trainer.val_check_interval={steps * 10}",
            "trainer.max_time=null",
            "trainer.progress_bar=false",
            f"hydra.run.dir={run_dir}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    match = THROUGHPUT.search(done.stdout)
    if done.returncode or match is None:
        sys.exit(f"no throughput line from {' '.join(command)}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    median, mean, peak, all_ranks = match.groups()
    return _number(all_ranks or mean), _number(median), float(peak)


def _number(text: str) -> float:
    """A printed figure such as 6,968 as a float."""
    return float(text.replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs of every variant")
    parser.add_argument("--variant", action="append", required=True, help="NAME=OVERRIDES, repeatable")
    parser.add_argument("--before", help="a directory with another tree's nmt and conf: every variant runs on it too")
    parser.add_argument("overrides", nargs="*", help="nmt-train overrides common to all variants (after --)")
    args = parser.parse_args()
    trees = {"": None} if args.before is None else {" (before)": args.before, "": None}
    variants = [
        (name + label, extra, tree)
        for name, extra in (v.split("=", 1) for v in args.variant)
        for label, tree in trees.items()
    ]
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in variants}
    for _ in range(args.repeats):
        for name, extra, tree in variants:
            runs[name].append(measure([*args.overrides, *extra.split()], args.steps, tree))
    first = max(r[0] for r in runs[variants[0][0]])
    print("| variant | real tokens/s, all ranks (each run) | rank 0 median | peak memory, rank 0 (GB) | vs first |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _, _ in variants:
        means = " / ".join(f"{r[0]:,.0f}" for r in runs[name])
        best = max(runs[name])
        print(f"| {name} | {means} | {best[1]:,.0f} | {max(r[2] for r in runs[name]):.2f} | {best[0] / first:.2f}x |")


if __name__ == "__main__":
    main()
