"""Subtitles (.srt with `srt`, .vtt with `webvtt-py`) as segments, written back with every cue's number,
timing and settings as read.

A cue's lines are joined by spaces; its markup (`<i>`, `<b>`, `<font color=...>`, `<c.x>`, `<v Name>`, a
VTT timestamp `<00:01.000>`, an SRT `{\\an8}`) becomes spans, so the tags survive translation (in .vtt,
entities such as `&amp;` are decoded too). Consecutive cues whose text does not end a sentence (with
`SENTENCE_END` ignoring closing quotes and brackets) are merged into one segment, so a sentence split over
cues is translated whole; a `break` point marks where each later cue's text starts.

Writing cuts each translated segment at its break points (which the pipeline places along the alignment)
back into the cues, moving a cut to a word start (a character in Chinese and Japanese); when a cue would be
left empty although its source text was not, it takes a share of its neighbour's text (a word, or a
character where there are fewer words than cues), the cuts moving as little as they can. A cue whose text
is unchanged is written as read; any other cue is written in lines of at most `WIDTH` characters (a longer
word keeps its own line). Without one break point per cue boundary, the cuts fall at the cue boundaries'
share of the source text.
An empty cue stays empty.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

from nmt.documents.formats import check_count, decode
from nmt.documents.segment import DocumentError, Segment, Span, Tag, render
from nmt.errors import MissingExtraError

WIDTH = 42  # characters per subtitle line, the common broadcast limit
SENTENCE_END = re.compile(r"[.!?…。！？‼⁇⁈⁉؟।][\"'’”»)\]」』]*\s*$")
_MARKUP = re.compile(r"<[^<>\n]*>|\{\\[^{}\n]*\}")
_TAG_NAME = re.compile(r"</?\s*([A-Za-z][A-Za-z0-9]*)")
_SRT_LINE_END = re.compile(r"\r?\n")
_VTT_LINE_END = re.compile(r"\r\n|\r|\n")
_QUOTED = re.compile(r"'([^'\n]+)'")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana and ideographs: text without spaces
_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")  # a word, or one character of text without spaces


@dataclass
class _Cue:
    segment: Segment  # the cue's text (its lines joined by spaces) with its markup as spans
    source: str  # its text lines as written
    start: int  # where `source` lies in the file's text
    end: int


@dataclass
class SubtitleDocument:
    """A subtitle file: segments of whole sentences over its cues (see the module docstring)."""

    segments: list[Segment]
    text: str  # the file, decoded
    cues: list[_Cue]
    groups: list[range]  # the cues of each segment
    newline: str
    entities: bool  # .vtt: entities decoded in the text and escaped when written

    def render(self, translated: list[Segment]) -> bytes:
        """The file with each segment's cues replaced by the pieces of `translated[i]`, all else as read."""
        check_count(self.segments, translated)
        written = []
        for group, segment in zip(self.groups, translated, strict=True):
            cues = [self.cues[index] for index in group]
            written += [self._cue_text(cue, piece) for cue, piece in zip(cues, _cut(segment, cues), strict=True)]
        out, position = [], 0
        for cue, text in zip(self.cues, written, strict=True):
            out += [self.text[position : cue.start], text]
            position = cue.end
        out.append(self.text[position:])
        return "".join(out).encode("utf-8")

    def _cue_text(self, cue: _Cue, piece: Segment) -> str:
        """A cue's lines for its piece of a translation."""
        if not cue.segment.text or piece == cue.segment:
            return cue.source
        one_line = piece.text.replace("\r", " ").replace("\n", " ")
        escape = _escape if self.entities else str
        return render(Segment(wrap(one_line), piece.spans), escape).replace("\n", self.newline)


def read_srt(path: Path) -> SubtitleDocument:
    """Read a UTF-8 .srt file (see the module docstring).

    Raises:
        DocumentError: the file is not UTF-8 or not SRT (the message names the file and the line).
        MissingExtraError: `srt` is not installed.
    """
    try:
        import srt
    except ImportError as err:
        raise MissingExtraError('reading .srt files needs srt: pip install "nmt-toolkit[documents]".') from err
    name = f"file {path}"
    text = decode(path.read_bytes(), "utf-8", name)
    try:
        subtitles = list(srt.parse(text))
    except srt.SRTParseError as e:
        line = text.count("\n", 0, e.expected_start) + 1
        raise DocumentError(f"{name}, line {line}: not a subtitle: {e.unmatched_content.strip()[:60]!r}.") from e
    except srt.TimestampParseError as e:
        raise DocumentError(f"{name}{_line_named(text, str(e))}: {e}.") from e
    cue_lines = [subtitle.content.split("\n") if subtitle.content else [] for subtitle in subtitles]
    return _document(text, cue_lines, _SRT_LINE_END, entities=False, name=name)


def read_vtt(path: Path) -> SubtitleDocument:
    """Read a UTF-8 .vtt file (see the module docstring); the header, notes, styles and regions stay as read.

    Raises:
        DocumentError: the file is not UTF-8 or not WebVTT (the message names the file and the line).
        MissingExtraError: `webvtt-py` is not installed.
    """
    try:
        import webvtt
        from webvtt.errors import MalformedCaptionError, MalformedFileError
    except ImportError as err:
        raise MissingExtraError('reading .vtt files needs webvtt-py: pip install "nmt-toolkit[documents]".') from err
    name = f"file {path}"
    text = decode(path.read_bytes(), "utf-8", name)
    try:
        captions = webvtt.from_string(text, strict=True).captions
    except MalformedFileError as e:
        raise DocumentError(f"{name}, line 1: not WebVTT (the first line must start with WEBVTT).") from e
    except MalformedCaptionError as e:
        raise DocumentError(f"{name}{_line_named(text, str(e))}: {e}.") from e
    cue_lines = [list(caption.lines) for caption in captions]
    return _document(text, cue_lines, _VTT_LINE_END, entities=True, name=name)


def _line_named(text: str, message: str) -> str:
    """ ", line N" for the first line holding the first quoted piece of a library's message, else ""."""
    quoted = _QUOTED.search(message)
    if quoted:
        for number, line in enumerate(text.split("\n"), start=1):
            if quoted.group(1) in line:
                return f", line {number}"
    return ""


def _document(
    text: str, cue_lines: list[list[str]], line_end: re.Pattern[str], entities: bool, name: str
) -> SubtitleDocument:
    """The document of a subtitle file whose cues (their text lines, as the library read them) are found in
    `text` after their timing lines."""
    lines = _lines(text, line_end)
    cues, index = [], 0
    for number, wanted in enumerate(cue_lines, start=1):
        while index < len(lines) and not (
            "-->" in lines[index][1] and [line for _, line in lines[index + 1 : index + 1 + len(wanted)]] == wanted
        ):
            index += 1
        if index == len(lines):
            raise DocumentError(f"{name}: the text of cue {number} is not where its timing line says.")
        after = lines[index + 1][0] if index + 1 < len(lines) else len(text)  # where the text starts
        start, end = after, after
        if wanted:
            last_offset, last_line = lines[index + len(wanted)]
            end = last_offset + len(last_line)
        cues.append(_Cue(_cue_segment(wanted, entities), text[start:end], start, end))
        index += len(wanted) + 1
    groups = _groups(cues)
    segments = [_join([cues[index].segment for index in group]) for group in groups]
    newline = line_end.search(text).group() if line_end.search(text) else "\n"
    return SubtitleDocument(segments, text, cues, groups, newline, entities)


def _lines(text: str, line_end: re.Pattern[str]) -> list[tuple[int, str]]:
    """(offset, line without its end) of each line of `text`."""
    lines, position = [], 0
    for match in line_end.finditer(text):
        lines.append((position, text[position : match.start()]))
        position = match.end()
    if position < len(text):
        lines.append((position, text[position:]))
    return lines


def _cue_segment(lines: list[str], entities: bool) -> Segment:
    """A cue's lines as one segment: joined by spaces, markup as spans (paired tags as `element` spans,
    any other as `void` points)."""
    joined = " ".join(line.strip() for line in lines if line.strip())
    text: list[str] = []
    spans: list[Span | None] = []
    opened: list[tuple[str, int, int, str]] = []  # (tag name, slot in spans, start, tag)
    length, position = 0, 0
    for match in _MARKUP.finditer(joined + "<>"):  # the sentinel "<>" flushes the text after the last tag
        piece = joined[position : match.start()]
        piece = html.unescape(piece) if entities else piece
        text.append(piece)
        length += len(piece)
        position = match.end()
        tag, named = match.group(), _TAG_NAME.match(match.group())
        if match.start() == len(joined):
            break
        if named and not tag.startswith("</"):
            opened.append((named.group(1).lower(), len(spans), length, tag))
            spans.append(None)
        elif named and opened and opened[-1][0] == named.group(1).lower():
            _, slot, start, open_tag = opened.pop()
            spans[slot] = Span(start, length, Tag(open_tag, tag))
        else:
            spans.append(Span(length, length, Tag(tag, kind="void")))
    for _, slot, start, open_tag in opened:  # never closed (as VTT allows for <v Name>): a point
        spans[slot] = Span(start, start, Tag(open_tag, kind="void"))
    return Segment("".join(text), [span for span in spans if span is not None])


def _groups(cues: list[_Cue]) -> list[range]:
    """The cues of each segment: a cue joins the next unless its text ends a sentence or either is empty."""
    groups, start = [], 0
    for index, cue in enumerate(cues):
        following = cues[index + 1].segment.text if index + 1 < len(cues) else ""
        if not cue.segment.text or not following or SENTENCE_END.search(cue.segment.text):
            groups.append(range(start, index + 1))
            start = index + 1
    return groups


def _join(segments: list[Segment]) -> Segment:
    """Cue segments joined by spaces, with a `break` point where each later one starts."""
    text, spans = "", []
    for index, segment in enumerate(segments):
        if index:
            text += " "
            spans.append(Span(len(text), len(text), Tag("", kind="break")))
        spans += [Span(span.start + len(text), span.end + len(text), span.tag) for span in segment.spans]
        text += segment.text
    return Segment(text, spans)


def _cut(segment: Segment, cues: list[_Cue]) -> list[Segment]:
    """A (translated) segment cut into one piece per cue at its break points (see the module docstring);
    without one break point per cue boundary, at the cue boundaries' share of the source text."""
    breaks = sorted(span.start for span in segment.spans if span.tag.kind == "break")
    spans = [span for span in segment.spans if span.tag.kind != "break"]
    if len(breaks) != len(cues) - 1:
        lengths = [len(cue.segment.text) + 1 for cue in cues]
        total = sum(lengths)
        breaks = [round(len(segment.text) * sum(lengths[:index]) / total) for index in range(1, len(cues))]
    needs = [bool(cue.segment.text) for cue in cues]
    bounds = _fill(segment.text, breaks, needs)
    last = len(cues) - 1
    return [_piece(segment.text, spans, a, b, index == last) for index, (a, b) in enumerate(pairwise(bounds))]


def _fill(text: str, breaks: list[int], needs: list[bool]) -> list[int]:
    """The bounds of each cue's piece: the breaks moved to word starts (in Chinese and Japanese, character
    starts) so that each cue that `needs` text has a word (a character where there are fewer words than such
    cues), moving as few words as they can."""
    units = [match.start() for match in _WORD.finditer(text)]
    if len(units) < sum(needs):
        units = [match.start() for match in re.finditer(r"\S", text)]
    counts = [0] + [sum(1 for unit in units if unit < position) for position in breaks] + [len(units)]
    for index in range(1, len(counts) - 1):  # each cue after the one before has what it needs ...
        counts[index] = min(max(counts[index], counts[index - 1] + needs[index - 1]), len(units))
    for index in range(len(counts) - 2, 0, -1):  # ... and leaves what the ones after it need
        counts[index] = max(min(counts[index], counts[index + 1] - needs[index]), 0)
    return [0] + [units[count] if count < len(units) else len(text) for count in counts[1:-1]] + [len(text)]


def _piece(text: str, spans: list[Span], a: int, b: int, last: bool) -> Segment:
    """`text[a:b]` without its surrounding whitespace, with the spans that fall in it (clipped to it)."""
    start = a + len(text[a:b]) - len(text[a:b].lstrip())
    end = max(start, b - (len(text[a:b]) - len(text[a:b].rstrip())))

    def clip(position: int) -> int:
        return min(max(position, start), end) - start

    kept = []
    for span in spans:
        if span.end > span.start and span.tag.kind == "element":
            inside = span.start < b and span.end > a
        else:
            inside = a <= span.start < b or (last and span.start == b)
        if inside:
            kept.append(replace(span, start=clip(span.start), end=clip(span.end)))
    return Segment(text[start:end], kept)


def wrap(text: str, width: int = WIDTH) -> str:
    """`text` with spaces made line breaks so that lines are at most `width` characters (a longer word keeps
    a line of its own); never a blank line. The text keeps its length, so spans over it stay in place."""
    out, start, space = list(text), 0, None
    for index, char in enumerate(text + " "):
        if char != " ":
            continue
        if index - start > width and space is not None and space >= start:
            out[space] = "\n"
            start = space + 1
        if index < len(text) and index and text[index - 1] != " ":
            space = index
    return "".join(out)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)
