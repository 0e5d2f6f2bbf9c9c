"""`nmt-translate`: translate a file or stdin with a checkpoint, keeping one output line per input line."""

from __future__ import annotations

import select
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TextIO

from nmt.atomic import atomic_open, check_writable
from nmt.cli.hydra_config import entry_point
from nmt.config import TranslateConfig
from nmt.data.corpus import check_file, iter_lines
from nmt.decode.translator import Translation, Translator, format_translation
from nmt.device import set_threads


def check_output(cfg: TranslateConfig) -> None:
    """Refuse, before any work, an output that is the input or sits in a missing or read-only directory."""
    if cfg.output is None:
        return
    out = Path(cfg.output)
    if cfg.input is not None and out.exists() and out.resolve() == Path(cfg.input).resolve():
        raise ValueError(f"output {out} is the input file; choose another output path.")
    check_writable(out)


def available_lines(stream: TextIO, max_lines: int) -> Iterator[list[str]]:
    """Group stdin lines into chunks: as many as are already waiting (up to `max_lines`), at least one.

    A pipe from a file fills whole chunks (fast, batched); a person typing gets
    each line translated as soon as it is entered.
    """
    while True:
        line = stream.readline()
        if not line:
            return
        chunk = [line]
        while len(chunk) < max_lines and _ready(stream):
            line = stream.readline()
            if not line:
                break
            chunk.append(line)
        yield [x.rstrip("\r\n") for x in chunk]


def _ready(stream: TextIO) -> bool:
    try:
        return bool(select.select([stream], [], [], 0)[0])
    except (OSError, ValueError):  # not a selectable stream: read on, in whole chunks
        return True


def _write(out: IO[str], index: int, translation: Translation, n_best: int) -> None:
    out.write("\n".join(format_translation(index, translation, n_best)) + "\n")


def translate_stdin(translator: Translator, cfg: TranslateConfig) -> None:
    """stdin to stdout, flushing after each chunk so interactive use answers line by line."""
    index = 0
    for chunk in available_lines(sys.stdin, max_lines=cfg.buffer_size):
        for translation in translator.translate(chunk):
            _write(sys.stdout, index, translation, cfg.decode.n_best)
            index += 1
        sys.stdout.flush()


def translate_file(translator: Translator, cfg: TranslateConfig, out: IO[str]) -> None:
    """Translate the input file into `out`, with a progress bar when asked and stderr is a terminal."""
    translations = translator.translate_stream(iter_lines(cfg.input), cfg.buffer_size)
    if cfg.progress and sys.stderr.isatty():
        from tqdm import tqdm

        translations = tqdm(translations, unit="sent", file=sys.stderr)
    for index, translation in enumerate(translations):
        _write(out, index, translation, cfg.decode.n_best)


def run(cfg: TranslateConfig) -> None:
    """Translate `cfg.input` (or stdin) into `cfg.output` (or stdout) and print timing to stderr."""
    set_threads(cfg.num_threads)
    check_output(cfg)
    if cfg.input is not None:
        check_file(Path(cfg.input))  # before the model loads: fail fast on a missing input
    translator = Translator.from_checkpoint(cfg.ckpt, cfg.decode, cfg.device)
    if cfg.input is None and cfg.output is None:
        translate_stdin(translator, cfg)
    elif cfg.output is None:
        translate_file(translator, cfg, sys.stdout)
    else:
        with atomic_open(cfg.output) as out:
            if cfg.input is None:
                for index, t in enumerate(translator.translate_stream(sys.stdin, cfg.buffer_size)):
                    _write(out, index, t, cfg.decode.n_best)
            else:
                translate_file(translator, cfg, out)
    translator.warn_truncated()
    print(translator.stats.summary(), file=sys.stderr)


main = entry_point("translate", TranslateConfig, run)
