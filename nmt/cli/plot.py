"""`nmt-plot`: learning curves of a run directory, or BLEU vs speed from `nmt-benchmark` JSON (PNG files)."""

from __future__ import annotations

import argparse

from nmt.errors import UserError
from nmt.evaluate.plots import plot_bleu_vs_speed, plot_learning_curves


def main(argv: list[str] | None = None) -> None:
    """Console entry point `nmt-plot`."""
    parser = argparse.ArgumentParser(prog="nmt-plot", description=__doc__)
    parser.add_argument("--run", help="an nmt-train run directory: plot its learning curves")
    parser.add_argument("--benchmark", help="an nmt-benchmark JSON file: plot BLEU against sentences/s")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", help="figure title")
    args = parser.parse_args(argv)
    if (args.run is None) == (args.benchmark is None):
        parser.error("give exactly one of --run and --benchmark.")
    try:
        if args.run:
            path = plot_learning_curves(args.run, args.out, args.title)
        else:
            path = plot_bleu_vs_speed(args.benchmark, args.out, args.title)
    except (UserError, KeyError, ValueError) as err:  # KeyError, ValueError: a malformed benchmark JSON
        raise SystemExit(f"error: {err}") from None
    print(f"wrote {path}")
