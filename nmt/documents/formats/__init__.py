"""Documents read as segments and written back with their structure intact.

`read_document` turns a file into a `Document`: its `segments` (what to translate, in document order) and
`render`, which writes the document back with segment i replaced by the i-th translated segment and
everything else as read. A segment whose translation equals it is written exactly as read, so reading a
document and rendering its own segments gives the same bytes (for .docx, whose zip container is rewritten,
the same paragraphs, runs and formatting).

Formats: `html` and `xml` (`html_tree` and `xml_tree` read them, `markup` cuts them into segments), `srt` and
`vtt` (`subtitles`), `docx`; the subtitle and .docx readers need the `documents` extra (srt, webvtt-py,
python-docx). Plain `text` is not read whole: `nmt-translate`
streams it line by line, a segment per line, so memory stays flat however long the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nmt.documents.segment import DocumentError, Segment, render

FORMATS = ("text", "html", "xml", "srt", "vtt", "docx")
_BY_SUFFIX = {
    ".html": "html",
    ".htm": "html",
    ".xml": "xml",
    ".xhtml": "xml",
    ".srt": "srt",
    ".vtt": "vtt",
    ".docx": "docx",
}


class Document(Protocol):
    """A document read as segments."""

    segments: list[Segment]

    def render(self, translated: list[Segment]) -> bytes:
        """The document's bytes with segment i replaced by `translated[i]`, everything else as read."""
        ...


def format_of(path: str, given: str | None = None) -> str:
    """The format of `path`: `given` when set, else by suffix (.html/.htm, .xml/.xhtml, .srt, .vtt, .docx; any
    other, .gz included, is text).

    Raises:
        DocumentError: `given` is not one of `FORMATS`.
    """
    if given is None:
        return _BY_SUFFIX.get(Path(path).suffix.lower(), "text")
    if given not in FORMATS:
        raise DocumentError(f"`format` must be one of {', '.join(FORMATS)}, but is {given!r} instead.")
    return given


def read_document(path: Path, fmt: str) -> Document:
    """Read `path` as format `fmt` (see `format_of`), any but `text`.

    Raises:
        DocumentError: the file is missing or is not a valid document of its format; the message names the
            file and the line (or the part) that is wrong.
        MissingExtraError: the format needs the `documents` extra and it is not installed.
    """
    # The readers import this package (for `Skeleton`), so they are imported here, not at the top.
    from nmt.documents.formats import docx, html_tree, subtitles, xml_tree

    if fmt == "text":
        raise ValueError("plain text is translated line by line as it streams, not read as a document.")
    readers: dict[str, Callable[[Path], Document]] = {
        "html": html_tree.read_html,
        "xml": xml_tree.read_xml,
        "srt": subtitles.read_srt,
        "vtt": subtitles.read_vtt,
        "docx": docx.read_docx,
    }
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"file {path} {'is not a regular file' if path.exists() else 'does not exist'}.")
    return readers[format_of(str(path), fmt)](path)


@dataclass
class Skeleton:
    """A document as verbatim text around its segments: each part is text written as it is, or the index of a
    segment, written as the segment rendered with `escape` (or as `verbatim[i]` when it is unchanged).

    `encoding` and `errors` turn the text into bytes (`xmlcharrefreplace` writes what an 8-bit encoding
    lacks as character references).
    """

    segments: list[Segment]
    parts: list[str | int]
    verbatim: list[str]
    escape: Callable[[str], str] = str
    encoding: str = "utf-8"
    errors: str = "strict"

    def render(self, translated: list[Segment]) -> bytes:
        """The document with segment i replaced by `translated[i]` (see the class docstring)."""
        check_count(self.segments, translated)
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif translated[part] == self.segments[part]:
                out.append(self.verbatim[part])
            else:
                out.append(render(translated[part], self.escape))
        return "".join(out).encode(self.encoding, self.errors)


def check_count(segments: list[Segment], translated: list[Segment]) -> None:
    """Raise `ValueError` unless there is one translated segment per segment read."""
    if len(translated) != len(segments):
        raise ValueError(
            f"`translated` must have one segment per segment read ({len(segments)}), but has {len(translated)}."
        )


def decode(data: bytes, encoding: str, name: str) -> str:
    """`data` decoded, or a `DocumentError` naming `name` (e.g. "file a.html") and the line that is not `encoding`.

    Raises:
        DocumentError: the bytes are not valid in `encoding` (e.g. a file of mixed encodings), or the encoding
            is unknown.
    """
    try:
        return data.decode(encoding)
    except LookupError as e:
        raise DocumentError(f"{name}: unknown encoding {encoding!r}.") from e
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DocumentError(
            f"{name}, line {line}: invalid {encoding} at byte offset {e.start} ({e.reason}); "
            "is the file in one encoding?"
        ) from e
