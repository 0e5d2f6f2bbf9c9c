"""`nmt-translate`: translate a file or stdin with a checkpoint, keeping one output line per input line.

Reads `input` (plain or .gz UTF-8, one sentence per line; stdin without it) and writes one
translation per line to `output` (atomically; stdout without it). Typed lines are answered as
soon as they are entered. Bad input stops with the file (or <stdin>) and line named; the
translations of the lines before it are kept on stdout. With backend=ctranslate2, `ckpt` is a
model directory written by nmt-export, translated by CTranslate2 with the same line handling.
With alignments=true each line is `translation ||| 0-0 1-2 ...`: the words linked by the cross-attention
of the search that wrote the translation (align_method, align_layer; read as nmt-align reads it).

A line may hold several sentences (split=sentences: translated one by one, in the same batches, and
rejoined); a sentence longer than the training data's is cut at clause punctuation into chunks; URLs,
e-mail addresses, numbers, placeholders and `code` pass through verbatim (protect). Other formats (html,
xml, srt, vtt, docx; by the input's suffix or format=) are read whole, translated segment by segment with
their markup placed back along the search's alignment, and written in the same format.

Examples:
    nmt-translate ckpt=runs/quickstart/model.pt input=test.en output=test.de
    cat test.en | nmt-translate ckpt=runs/quickstart/model.pt decode=greedy > test.de
    nmt-translate ckpt=runs/quickstart/model.pt input=test.en alignments=true
    nmt-translate ckpt=runs/quickstart/model.pt input=test.en glossary=terms.tsv
    nmt-translate ckpt=runs/quickstart/model.pt input=test.jsonl input_format=jsonl
    nmt-translate ckpt=runs/quickstart/model.pt input=page.html output=page.de.html
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO, BinaryIO

from nmt.atomic import atomic_open, check_writable
from nmt.cli.hydra_config import entry_point
from nmt.config import ConfigError, TranslateConfig
from nmt.config.check import line_modes
from nmt.config.commands import PROTECTED
from nmt.ctranslate2.directory import is_export
from nmt.ctranslate2.engine import load_ctranslate2
from nmt.data.corpus import check_file, check_lines, iter_lines
from nmt.decode.align import default_layer
from nmt.decode.terms import Term, read_glossary, segments, translate_segments
from nmt.decode.translator import Translation, Translator, format_translation, line_chunks
from nmt.device import retain_freed_memory, set_threads
from nmt.documents.formats import format_of, read_document
from nmt.documents.pipeline import DocumentOptions, DocumentTranslator
from nmt.documents.segment import Segment, render
from nmt.model.hard_attention import harden


def check_output(cfg: TranslateConfig) -> None:
    """Refuse, before any work, an output that is the input or sits in a missing or read-only directory."""
    if cfg.output is None:
        return
    out = Path(cfg.output)
    if cfg.input is not None and out.exists() and out.resolve() == Path(cfg.input).resolve():
        raise ConfigError(f"output {out} is the input file; choose another output path.")
    check_writable(out)


def available_lines(lines: Iterator[str], ready: Callable[[], bool], max_lines: int) -> Iterator[list[str]]:
    """Group lines into chunks: as many as are already waiting (`ready()`, up to `max_lines`), at least one.

    A pipe from a file fills whole chunks (fast, batched); a person typing gets
    each line translated as soon as it is entered. When `lines` raises (a bad
    line), the chunk read so far is yielded first, so no good line is lost.
    """
    for line in lines:
        chunk = [line]
        try:
            while len(chunk) < max_lines and ready():
                line = next(lines, None)
                if line is None:
                    break
                chunk.append(line)
        except Exception:
            yield chunk
            raise
        yield chunk


def stdin_lines() -> Iterator[str]:
    """stdin's lines, checked like a file's: invalid UTF-8 or a NUL byte stops with "<stdin>, line N"."""
    return check_lines(sys.stdin.buffer, "<stdin>")


def _ready(stream: BinaryIO) -> bool:
    try:
        return bool(select.select([stream], [], [], 0)[0])
    except (OSError, ValueError):  # not a selectable stream: read on, in whole chunks
        return True


def _write(out: IO[str], index: int, translation: Translation, cfg: TranslateConfig) -> None:
    out.write("\n".join(format_translation(index, translation, cfg.decode.n_best, cfg.alignments)) + "\n")


def _constrained(cfg: TranslateConfig) -> bool:
    return cfg.input_format == "jsonl" or cfg.glossary is not None


def translations(
    translator: Translator, cfg: TranslateConfig, lines: Iterator[str], name: str, terms: list[Term]
) -> Iterator[Translation]:
    """Translate `lines` (from `name`) a chunk at a time; jsonl lines and glossary terms give constraints.

    A bad line stops with its file and line, after the lines before it are translated and yielded.
    """
    if not _constrained(cfg):
        yield from translator.translate_stream(lines, cfg.buffer_size)
        return
    chunk = []
    try:
        for segment in segments(lines, name, cfg.input_format == "jsonl", terms, translator.textless):
            chunk.append(segment)
            if len(chunk) >= cfg.buffer_size:
                full, chunk = chunk, []  # a failure translating it is not a bad line: never translated twice
                yield from translate_segments(translator, full)
    except Exception:
        if chunk:
            yield from translate_segments(translator, chunk)
        raise
    if chunk:
        yield from translate_segments(translator, chunk)


def translate_stdin(translator: Translator, cfg: TranslateConfig, terms: list[Term]) -> None:
    """stdin to stdout, flushing after each chunk so interactive use answers line by line."""
    index = 0
    jsonl = cfg.input_format == "jsonl"
    lines = segments(stdin_lines(), "<stdin>", jsonl, terms, translator.textless) if _constrained(cfg) else None
    chunks = available_lines(lines or stdin_lines(), lambda: _ready(sys.stdin.buffer), max_lines=cfg.buffer_size)
    for chunk in chunks:
        found = translate_segments(translator, chunk) if lines else translator.translate(chunk)
        for translation in found:
            _write(sys.stdout, index, translation, cfg)
            index += 1
        sys.stdout.flush()


def text_lines(documents: DocumentTranslator, lines: Iterator[str], size: int) -> Iterator[str]:
    """The translation of each line, sentence by sentence (`nmt.documents.pipeline`), `size` lines at a time.

    A bad line stops with its file and line, after the lines before it are translated and yielded."""
    for chunk in line_chunks(lines, size):
        for segment in documents.translate([Segment(line) for line in chunk]):
            yield render(segment).replace("\n", " ")


def text_stdin(documents: DocumentTranslator, size: int) -> None:
    """stdin to stdout sentence by sentence, flushing after each chunk so interactive use answers line by line."""
    for chunk in available_lines(stdin_lines(), lambda: _ready(sys.stdin.buffer), max_lines=size):
        for line in text_lines(documents, iter(chunk), size):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()


def text_file(documents: DocumentTranslator, cfg: TranslateConfig, out: IO[str]) -> None:
    """Translate the input file into `out` line by line, with a progress bar when asked and stderr is a terminal."""
    found = text_lines(documents, iter_lines(cfg.input), cfg.buffer_size)
    if cfg.progress and sys.stderr.isatty():
        from tqdm import tqdm

        total = sum(1 for _ in iter_lines(cfg.input))  # one fast pass over the bytes gives the bar an ETA
        found = tqdm(found, total=total, unit="line", file=sys.stderr)
    for line in found:
        out.write(line + "\n")


def document_options(cfg: TranslateConfig, translator: Translator) -> DocumentOptions:
    """The document pipeline's options from the config; `max_len` None takes the model's training length."""
    max_len = translator.trained_len if cfg.max_len is None else cfg.max_len or None
    protect = cfg.protect if cfg.protect is not None else PROTECTED if cfg.backend == "torch" else []
    split = cfg.split == "sentences"
    align = (cfg.align_method, default_layer(cfg.align_layer, translator.aligned_layer))
    return DocumentOptions(split, cfg.splitter, tuple(protect), max_len, align)


def translate_document(documents: DocumentTranslator, document, output: str | None) -> None:
    """Translate a document read whole and write it (atomically, or to stdout) in its own format."""
    data = document.render(documents.translate(document.segments))
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    with atomic_open(output, "wb") as out:
        out.write(data)


def translate_file(translator: Translator, cfg: TranslateConfig, out: IO[str], terms: list[Term]) -> None:
    """Translate the input file into `out`, with a progress bar when asked and stderr is a terminal."""
    found = translations(translator, cfg, iter_lines(cfg.input), f"file {cfg.input}", terms)
    if cfg.progress and sys.stderr.isatty():
        from tqdm import tqdm

        # The file's line count (one fast pass over its bytes) gives the bar a total and an ETA.
        total = sum(1 for _ in iter_lines(cfg.input))
        found = tqdm(found, total=total, unit="sent", file=sys.stderr)
    for index, translation in enumerate(found):
        _write(out, index, translation, cfg)


def load_translator(cfg: TranslateConfig, threads: int) -> Translator:
    """The translator of `cfg.backend`; a model for the other backend is refused, naming the one it needs."""
    if cfg.alignments and (isinstance(cfg.ckpt, list) or cfg.backend != "torch"):
        raise ConfigError("alignments=true reads one PyTorch model's attention: give one checkpoint, backend=torch.")
    if cfg.backend == "ctranslate2":  # one model (`check` refuses an ensemble here)
        return load_ctranslate2(cfg.ckpt, cfg.decode, cfg.device, threads)
    for path in cfg.ckpt if isinstance(cfg.ckpt, list) else [cfg.ckpt]:
        if is_export(path):
            raise ConfigError(
                f"ckpt {path} is a CTranslate2 model directory (written by nmt-export); "
                "translate it with backend=ctranslate2."
            )
    translator = Translator.load(cfg.ckpt, cfg.decode, cfg.device)
    harden(translator.model, cfg.harden)  # before the first search copies the model
    if cfg.alignments:
        translator.align = (cfg.align_method, default_layer(cfg.align_layer, translator.aligned_layer))
    return translator


def run(cfg: TranslateConfig) -> None:
    """Translate `cfg.input` (or stdin) into `cfg.output` (or stdout) and print timing to stderr."""
    threads = set_threads(cfg.num_threads)
    retain_freed_memory()
    check_output(cfg)
    fmt = format_of(cfg.input or "<stdin>", cfg.format)
    if fmt != "text" and cfg.input is None:
        raise ConfigError(f"format={fmt} reads a whole document: give it as input=FILE.")
    if fmt != "text" and cfg.backend != "torch":
        raise ConfigError(
            f"{cfg.input} is {fmt}: its markup is placed along the search's attention: use backend=torch."
        )
    if fmt != "text" and line_modes(cfg):
        raise ConfigError(f"{', '.join(line_modes(cfg))} translate(s) lines of text, but {cfg.input} is {fmt}.")
    if cfg.input is not None:
        check_file(Path(cfg.input))  # before the model loads: fail fast on a missing input
    document = read_document(Path(cfg.input), fmt) if fmt != "text" else None  # fail fast on a bad one too
    terms = read_glossary(cfg.glossary) if cfg.glossary is not None else []  # before the model: fail fast
    translator = load_translator(cfg, threads)
    if line_modes(cfg):
        translate_lines(translator, cfg, terms)
    else:
        documents = DocumentTranslator(translator, document_options(cfg, translator), translator.langs)
        if document is not None:
            translate_document(documents, document, cfg.output)
        elif cfg.input is None and cfg.output is None:
            text_stdin(documents, cfg.buffer_size)
        else:
            with atomic_open(cfg.output) if cfg.output is not None else nullcontext(sys.stdout) as out:
                if cfg.input is None:
                    out.writelines(line + "\n" for line in text_lines(documents, stdin_lines(), cfg.buffer_size))
                else:
                    text_file(documents, cfg, out)
        documents.warn_chunked()
    translator.warn_truncated()
    print(translator.stats.summary(), file=sys.stderr)


def translate_lines(translator: Translator, cfg: TranslateConfig, terms: list[Term]) -> None:
    """Whole lines of text, one translation (or n-best list) each: the line modes and their constraints."""
    if cfg.input is None and cfg.output is None:
        translate_stdin(translator, cfg, terms)
    elif cfg.output is None:
        translate_file(translator, cfg, sys.stdout, terms)
    else:
        with atomic_open(cfg.output) as out:
            if cfg.input is None:
                for index, t in enumerate(translations(translator, cfg, stdin_lines(), "<stdin>", terms)):
                    _write(out, index, t, cfg)
            else:
                translate_file(translator, cfg, out, terms)


main = entry_point("translate", TranslateConfig, run, __doc__)
