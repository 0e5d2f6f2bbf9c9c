"""Test set (c) of document translation: test lines with one untranslatable piece (URL, e-mail address,
number, placeholder, inline code) at a word boundary, scored by the share of outputs that hold the piece
verbatim exactly once.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

from nmt.decode.translator import Translator
from nmt.documents.pipeline import DocumentOptions
from nmt.documents.protect import protect
from nmt.documents.segment import Segment, render
from nmt.evaluate.documents import bleu_chrf, translated_segments

KINDS = ("url", "email", "number", "placeholder", "code")  # set (c), one kind per line in turn
_NAMES = ("anna", "photo", "street", "river", "camera", "city", "garden", "music", "team", "studio", "beach")
_TEMPLATES: dict[str, tuple[Callable[[random.Random], str], ...]] = {
    "url": (
        lambda r: (
            f"https://www.{r.choice(_NAMES)}{r.randint(1, 99)}.org/img/{r.randint(1, 999)}?size=l&p={r.randint(1, 9)}"
        ),
        lambda r: f"http://{r.choice(_NAMES)}.example.com/{r.choice(_NAMES)}/{r.randint(1, 999)}.html",
        lambda r: f"www.{r.choice(_NAMES)}{r.randint(1, 999)}.net/view?id={r.randint(1, 9999)}",
    ),
    "email": (
        lambda r: f"{r.choice(_NAMES)}.{r.choice(_NAMES)}{r.randint(1, 99)}@example.org",
        lambda r: f"{r.choice(_NAMES)}_{r.randint(1, 999)}@mail.{r.choice(_NAMES)}.com",
    ),
    "number": (
        lambda r: f"{r.randint(1, 99)}.{r.randint(1, 9)}",
        lambda r: f"{r.randint(1, 99)},{r.randint(0, 999):03d}",
        lambda r: f"{r.randint(1, 99)}%",
        lambda r: f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    ),
    "placeholder": (
        lambda r: f"{{{r.choice(_NAMES)}_{r.randint(1, 99)}}}",
        lambda r: f"%{r.choice(['', '-', '0'])}{r.randint(1, 20)}{r.choice('sdf')}",
        lambda r: f"%({r.choice(_NAMES)}{r.randint(1, 99)}){r.choice('sd')}",
        lambda r: f"{{{{{r.choice(_NAMES)}{r.randint(1, 99)}}}}}",
        lambda r: f"${{{r.choice(_NAMES).upper()}_{r.randint(1, 99)}}}",
    ),
    "code": (
        lambda r: f"`{r.choice(_NAMES)} = {r.randint(0, 999)}`",
        lambda r: f"`ls -la /tmp/{r.choice(_NAMES)}{r.randint(1, 99)}`",
        lambda r: f"`{r.choice(_NAMES)}.get({r.randint(0, 99)})`",
    ),
}


@dataclass(frozen=True)
class PieceLine:
    """A test line with one untranslatable `piece` of `kind` inserted at a word boundary."""

    text: str
    piece: str
    kind: str


def piece_lines(lines: list[str], seed: int) -> list[PieceLine]:
    """Set (c): each line with a piece of the kinds in `KINDS` in turn, drawn from their templates with `seed`, at
    a word boundary drawn likewise; no two lines get the same piece and none holds its piece already."""
    rng = random.Random(seed)
    used: set[str] = set()
    out = []
    for i, line in enumerate(lines):
        kind = KINDS[i % len(KINDS)]
        piece = rng.choice(_TEMPLATES[kind])(rng)
        while piece in used or piece in line:
            piece = rng.choice(_TEMPLATES[kind])(rng)
        used.add(piece)
        words = line.split()
        at = rng.randint(0, len(words))
        out.append(PieceLine(" ".join([*words[:at], piece, *words[at:]]), piece, kind))
    return out


def benchmark_pieces(
    translator: Translator, lines: list[PieceLine], plain: list[str], refs: list[str], langs: tuple[str, str]
) -> dict:
    """Set (c) with protection on (every kind) and off: per kind, the share of outputs holding their piece
    exactly once; and the plain test lines' BLEU both ways, with the lines protection touches counted."""
    on = DocumentOptions(max_len=translator.trained_len)
    settings = {"on": on, "off": dataclasses.replace(on, protect=())}
    found = {name: _rendered(translator, [x.text for x in lines], options, langs) for name, options in settings.items()}
    rows = []
    for kind in (*KINDS, "all"):
        chosen = [i for i, x in enumerate(lines) if kind in ("all", x.kind)]
        row: dict = {"kind": kind, "lines": len(chosen)}
        for name, outputs in found.items():
            row[f"kept_{name}"] = 100 * sum(outputs[i].count(lines[i].piece) == 1 for i in chosen) / max(len(chosen), 1)
        rows.append(row)
    plain_on, plain_off = (_rendered(translator, plain, options, langs) for options in settings.values())
    touched = [bool(protect(Segment(line)).spans) for line in plain]
    return {
        "rows": rows,
        "plain": {
            "lines": len(plain),
            "with_piece": sum(touched),
            "bleu_on": bleu_chrf(plain_on, refs, langs[1])["bleu"],
            "bleu_off": bleu_chrf(plain_off, refs, langs[1])["bleu"],
            "identical_without_piece": sum(
                a == b for a, b, t in zip(plain_on, plain_off, touched, strict=True) if not t
            ),
        },
    }


def _rendered(translator: Translator, lines: list[str], options: DocumentOptions, langs: tuple[str, str]) -> list[str]:
    """Plain lines through `DocumentTranslator`, the translations rendered with their pieces."""
    return [render(s) for s in translated_segments(translator, [Segment(line) for line in lines], options, langs)]
