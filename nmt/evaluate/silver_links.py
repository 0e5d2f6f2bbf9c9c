"""Silver word links from a statistical aligner, for test sets without gold links (Multi30k).

The aligner is eflomal (Östling & Tiedemann 2016, a Bayesian IBM model with fertility and HMM distortion):
it learns from the sentence pairs themselves, so nothing is downloaded. The test pairs are aligned together with
the training pairs, in both directions, and only links found in both are kept (the intersection: fewer links,
more of them right). Words are the pairs' whitespace-separated tokens. eflomal samples without a settable seed,
so `write_links` keeps one run's links in a file that the benchmark reads back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from nmt.decode.align import Link
from nmt.errors import MissingExtraError
from nmt.evaluate.alignment import GoldAlignment, read_alignments


def eflomal_links(pairs: Sequence[tuple[str, str]], training: Sequence[tuple[str, str]]) -> list[GoldAlignment]:
    """The links of each of `pairs` (all sure), aligned together with `training`.

    Raises:
        MissingExtraError: eflomal is not installed.
    """
    try:
        from eflomal import Aligner
    except ImportError as err:
        raise MissingExtraError('silver links need the eflomal aligner: pip install "eflomal>=2.0".') from err
    everything = [*training, *pairs]
    with tempfile.TemporaryDirectory() as tmp:
        forward, reverse = Path(tmp) / "forward", Path(tmp) / "reverse"
        Aligner().align(
            [" ".join(src.split()) for src, _ in everything],
            [" ".join(tgt.split()) for _, tgt in everything],
            links_filename_fwd=str(forward),
            links_filename_rev=str(reverse),
        )
        both = zip(_links(forward), _links(reverse), strict=True)
        kept = [frozenset(one & other) for one, other in both][len(training) :]
    return [GoldAlignment(links, links) for links in kept]


def write_links(path: str | Path, alignments: Sequence[GoldAlignment]) -> None:
    """One line of 0-indexed `source-target` links per pair (Pharaoh format), readable by `read_alignments`."""
    lines = (" ".join(f"{s}-{t}" for s, t in sorted(a.sure)) for a in alignments)
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _links(path: Path) -> list[set[Link]]:
    return [set(a.sure) for a in read_alignments(path)]
