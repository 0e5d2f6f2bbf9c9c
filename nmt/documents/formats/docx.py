"""Word documents (.docx, with python-docx) as segments: one per paragraph with text, its runs as spans.

The paragraphs are the body's (table cells and text boxes included), then the headers' and footers' (by part
name). A paragraph's segment is the text of its runs (a tab is "\\t", a line break "\\n"); each run is an
`element` span whose `Tag.open` is the run's key ("r3": the paragraph's child 3). Writing a translated
paragraph rebuilds its runs from the translation's spans: the text under each span becomes a run with that
run's formatting (a key used twice gives two runs formatted alike; text under no span takes the formatting
of the paragraph's first run), and the paragraph's properties stay.

What cannot be rebuilt from text stays as read, untranslated, as a `void` point keyed "x5" that the writer
puts back at the point's place (or, if the translation lost it, at the paragraph's end): hyperlinks, simple
and complex fields (every run from a field's begin to its end), content controls, tracked changes,
bookmarks, and runs holding anything but text, tabs and line breaks (pictures, page breaks, footnote
references). Spell-check marks are dropped from translated paragraphs. Footnotes, endnotes and comments are
not read. A paragraph whose translation is unchanged is left exactly as read.
"""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

from nmt.documents.formats import check_count
from nmt.documents.segment import DocumentError, Segment, Span, Tag
from nmt.errors import MissingExtraError

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADER_FOOTER = (
    "application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml",
)
_TEXT_RUN_CHILDREN = {_W + name for name in ("rPr", "t", "tab", "br", "cr", "lastRenderedPageBreak")}


@dataclass
class WordDocument:
    """A .docx file read as segments (see the module docstring)."""

    segments: list[Segment]
    data: bytes  # the file as read
    paragraphs: list[int]  # the paragraph (in `_paragraphs` order) of each segment
    name: str

    def render(self, translated: list[Segment]) -> bytes:
        """The .docx with each changed paragraph's runs rebuilt from its translation, all else as read."""
        check_count(self.segments, translated)
        document = _open(self.data, self.name)
        paragraphs = _paragraphs(document)
        for index, source, target in zip(self.paragraphs, self.segments, translated, strict=True):
            if target != source:
                _rebuild(paragraphs[index], source, target)
        out = io.BytesIO()
        document.save(out)
        return out.getvalue()


def read_docx(path: Path) -> WordDocument:
    """Read a .docx file, one segment per paragraph with text.

    Raises:
        DocumentError: the file is not a .docx (not a zip, no Word document in it).
        MissingExtraError: python-docx is not installed.
    """
    data = path.read_bytes()
    name = f"file {path}"
    segments, paragraphs = [], []
    for index, paragraph in enumerate(_paragraphs(_open(data, name))):
        segment = _segment(paragraph)
        if segment.text.strip():
            segments.append(segment)
            paragraphs.append(index)
    return WordDocument(segments, data, paragraphs, name)


def _open(data: bytes, name: str):
    """The python-docx document of a .docx file's bytes."""
    try:
        import docx
        from docx.opc.exceptions import PackageNotFoundError
    except ImportError as err:
        raise MissingExtraError('reading .docx files needs python-docx: pip install "nmt-toolkit[documents]".') from err
    try:
        return docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, SyntaxError) as e:
        reason = e.args[0] if e.args else type(e).__name__
        raise DocumentError(f"{name}: not a .docx file ({reason}).") from e


def _paragraphs(document) -> list:
    """Every paragraph (`w:p` element) of the body, then of the headers and footers, in document order."""
    parts = [document.part] + sorted(
        (part for part in document.part.package.iter_parts() if part.content_type in _HEADER_FOOTER),
        key=lambda part: str(part.partname),
    )
    return [paragraph for part in parts for paragraph in part.element.iter(_W + "p")]


def _segment(paragraph) -> Segment:
    """A paragraph's text, each text run an `element` span keyed "r<child>", anything else a point "x<child>"."""
    text, spans, field_depth = "", [], 0
    for index, child in enumerate(paragraph):
        if child.tag in (_W + "pPr", _W + "proofErr"):
            continue
        change = _field_change(child)
        if field_depth == 0 and change == 0 and _is_text_run(child):
            if child.text:
                spans.append(Span(len(text), len(text) + len(child.text), Tag(f"r{index}")))
                text += child.text
        else:
            spans.append(Span(len(text), len(text), Tag(f"x{index}", kind="void")))
        field_depth += change
    return Segment(text, spans)


def _field_change(child) -> int:
    """+1 for a run that begins a complex field, -1 for one that ends it."""
    kinds = [mark.get(_W + "fldCharType") for mark in child.iter(_W + "fldChar")]
    return kinds.count("begin") - kinds.count("end")


def _is_text_run(child) -> bool:
    """A run of text, tabs and line breaks only, which can be rebuilt from its text."""
    return child.tag == _W + "r" and all(
        part.tag in _TEXT_RUN_CHILDREN and part.get(_W + "type", "textWrapping") == "textWrapping" for part in child
    )


def _rebuild(paragraph, source: Segment, target: Segment) -> None:
    """Replace a paragraph's runs and points by those of `target` (see the module docstring)."""
    children = list(paragraph)
    keyed = {span.tag.open: children[int(span.tag.open[1:])] for span in source.spans}
    template = next(keyed[span.tag.open] for span in source.spans if span.tag.kind == "element")
    for child in children:
        if child.tag != _W + "pPr":
            paragraph.remove(child)
    placed = set()
    for kind, key, text in _pieces(target):
        if kind == "run":
            run = deepcopy(keyed[key] if key in keyed and key.startswith("r") else template)
            run.text = text
            paragraph.append(run)
        elif key in keyed and key.startswith("x"):
            paragraph.append(deepcopy(keyed[key]) if key in placed else keyed[key])
            placed.add(key)
    for span in source.spans:
        if span.tag.kind == "void" and span.tag.open not in placed:
            paragraph.append(keyed[span.tag.open])


def _pieces(segment: Segment) -> list[tuple[str, str | None, str]]:
    """The segment as ("run", key, text) for the text under each innermost element span (key None: under
    none) and ("point", key, "") for each point, in order. A `text` span's text joins the run it falls in: the
    one it ends when `held` there, else the one it starts (or, if none, the one before it)."""
    elements = [span for span in segment.spans if span.tag.kind == "element"]
    points = defaultdict(list)
    for span in segment.spans:
        if span.tag.kind != "element":
            points[span.start].append(span)

    def key_at(position: int) -> str | None:
        covering = [span.tag.open for span in elements if span.start <= position < span.end]
        return covering[-1] if covering else None

    pieces: list[tuple[str, str | None, str]] = []
    for position in range(len(segment.text) + 1):
        for span in points[position]:
            if span.tag.kind == "text":
                key = key_at(position - 1) if span.held else key_at(position) or key_at(position - 1)
                pieces.append(("run", key, span.tag.open))
            elif span.tag.kind == "void":
                pieces.append(("point", span.tag.open, ""))
        if position < len(segment.text):
            pieces.append(("run", key_at(position), segment.text[position]))
    merged: list[tuple[str, str | None, str]] = []
    for piece in pieces:
        if merged and piece[0] == merged[-1][0] == "run" and piece[1] == merged[-1][1]:
            merged[-1] = ("run", piece[1], merged[-1][2] + piece[2])
        else:
            merged.append(piece)
    return merged
