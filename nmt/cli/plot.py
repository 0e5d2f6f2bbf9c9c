"""`nmt-plot`: learning curves, BLEU vs speed, a pruning curve, or the attention heatmaps of one sentence pair (PNG).

Examples:
    nmt-plot --run runs/multi30k_en_de --out curves.png
    nmt-plot --benchmark docs/benchmark_multi30k_en_de.json --out speed.png
    nmt-plot --pruning docs/pruning_multi30k_en_de.json --out pruning.png
    nmt-plot --attention runs/multi30k_en_de/model.pt --src "A man is riding a bike." --out attn.png
    nmt-plot --attention runs/multi30k_en_de/model.pt --src "A man is riding a bike." --harden dec_cross --out a.png
"""

from __future__ import annotations

import argparse

from nmt.config import DecodeConfig
from nmt.decode.align import METHODS
from nmt.errors import UserError
from nmt.evaluate.heatmaps import plot_attention
from nmt.evaluate.plots import plot_bleu_vs_speed, plot_learning_curves, plot_pruning_curve


def main(argv: list[str] | None = None) -> None:
    """Console entry point `nmt-plot`."""
    parser = argparse.ArgumentParser(
        prog="nmt-plot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--run", help="an nmt-train run directory: plot its learning curves")
    inputs.add_argument("--benchmark", help="an nmt-benchmark JSON file: plot BLEU against sentences/s")
    inputs.add_argument("--pruning", help="an nmt-prune curve JSON file: plot BLEU and speed against heads removed")
    inputs.add_argument("--attention", metavar="CKPT", help="a checkpoint: heatmaps of its attention on --src/--tgt")
    parser.add_argument("--out", required=True, help="PNG file to write (--attention: the stem of four files)")
    parser.add_argument("--title", help="figure title")
    heatmap = parser.add_argument_group("--attention")
    heatmap.add_argument("--src", help="the source sentence")
    heatmap.add_argument("--tgt", help="its target; default: the model's translation (beam 5)")
    heatmap.add_argument("--layer", type=int, default=-1, help="decoder layer the alignment is read from")
    heatmap.add_argument("--method", choices=METHODS, default="attention", help="how the alignment reads it")
    heatmap.add_argument("--font", help="a font file for the labels (CJK text needs one with CJK glyphs)")
    heatmap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    heatmap.add_argument(
        "--harden", nargs="+", default=[], metavar="SPEC",
        help="heads made hard first, drawn as one-hots: KIND[:LAYER[:HEAD]] (enc, dec_self, dec_cross; from 0)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.attention and args.src is None:
        parser.error("--attention needs --src (and optionally --tgt).")
    if args.harden and not args.attention:
        parser.error("--harden changes the attention --attention draws: give --attention too.")
    try:
        if args.run:
            paths = [plot_learning_curves(args.run, args.out, args.title)]
        elif args.benchmark:
            paths = [plot_bleu_vs_speed(args.benchmark, args.out, args.title)]
        elif args.pruning:
            paths = [plot_pruning_curve(args.pruning, args.out, args.title)]
        else:
            paths = plot_attention(
                args.attention, args.src, args.out, args.tgt, layer=args.layer, method=args.method,
                decode=DecodeConfig(), font=args.font, device=args.device, hardened=args.harden,
            )  # fmt: skip
    except (UserError, KeyError, ValueError, FileNotFoundError) as err:  # KeyError, ValueError: a malformed JSON
        raise SystemExit(f"error: {err}") from None
    for path in paths:
        print(f"wrote {path}")
