"""`nmt-translate`: translate a file or stdin with a checkpoint, keeping one output line per input line.

Reads `input` (plain or .gz UTF-8, one sentence per line; stdin without it) and writes one
translation per line to `output` (atomically; stdout without it). Typed lines are answered as
soon as they are entered. Bad input stops with the file (or <stdin>) and line named; the
translations of the lines before it are kept on stdout. With backend=ctranslate2, `ckpt` is a
model directory written by nmt-export, translated by CTranslate2 with the same line handling.
With alignments=true each line is `translation ||| 0-0 1-2 ...`: the words linked by the model's
cross-attention (align_method, align_layer; as nmt-align).

Examples:
    nmt-translate ckpt=runs/quickstart/model.pt input=test.en output=test.de
    cat test.en | nmt-translate ckpt=runs/quickstart/model.pt decode=greedy > test.de
    nmt-translate ckpt=runs/quickstart/model.pt input=test.en alignments=true
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO

from nmt.atomic import atomic_open, check_writable
from nmt.cli.hydra_config import entry_point
from nmt.config import ConfigError, TranslateConfig
from nmt.data.corpus import check_file, check_lines, iter_lines
from nmt.decode.align import Aligner
from nmt.decode.translator import Translation, Translator, format_translation
from nmt.device import retain_freed_memory, set_threads
from nmt.export.ctranslate2 import is_export, load_ctranslate2


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


def translate_stdin(translator: Translator, cfg: TranslateConfig) -> None:
    """stdin to stdout, flushing after each chunk so interactive use answers line by line."""
    index = 0
    for chunk in available_lines(stdin_lines(), lambda: _ready(sys.stdin.buffer), max_lines=cfg.buffer_size):
        for translation in translator.translate(chunk):
            _write(sys.stdout, index, translation, cfg)
            index += 1
        sys.stdout.flush()


def translate_file(translator: Translator, cfg: TranslateConfig, out: IO[str]) -> None:
    """Translate the input file into `out`, with a progress bar when asked and stderr is a terminal."""
    translations = translator.translate_stream(iter_lines(cfg.input), cfg.buffer_size)
    if cfg.progress and sys.stderr.isatty():
        from tqdm import tqdm

        # The file's line count (one fast pass over its bytes) gives the bar a total and an ETA.
        total = sum(1 for _ in iter_lines(cfg.input))
        translations = tqdm(translations, total=total, unit="sent", file=sys.stderr)
    for index, translation in enumerate(translations):
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
    if cfg.alignments:
        engine = translator.engine
        translator.aligner = Aligner(
            translator.model, translator.tokenizer, (engine.pad_id, engine.bos_id, engine.eos_id)
        )
        translator.align = (cfg.align_method, cfg.align_layer)
    return translator


def run(cfg: TranslateConfig) -> None:
    """Translate `cfg.input` (or stdin) into `cfg.output` (or stdout) and print timing to stderr."""
    threads = set_threads(cfg.num_threads)
    retain_freed_memory()
    check_output(cfg)
    if cfg.input is not None:
        check_file(Path(cfg.input))  # before the model loads: fail fast on a missing input
    translator = load_translator(cfg, threads)
    if cfg.input is None and cfg.output is None:
        translate_stdin(translator, cfg)
    elif cfg.output is None:
        translate_file(translator, cfg, sys.stdout)
    else:
        with atomic_open(cfg.output) as out:
            if cfg.input is None:
                for index, t in enumerate(translator.translate_stream(stdin_lines(), cfg.buffer_size)):
                    _write(out, index, t, cfg)
            else:
                translate_file(translator, cfg, out)
    translator.warn_truncated()
    print(translator.stats.summary(), file=sys.stderr)


main = entry_point("translate", TranslateConfig, run, __doc__)
