"""Back-translation: a synthetic parallel corpus from target-language monolingual text (Sennrich et al. 2016).

A reverse model (target -> source language) translates each monolingual line; the pair (translation,
original line) becomes a training pair for the forward model, its source optionally starting with a
tag (tagged back-translation, Caswell et al. 2019) so the model can tell synthetic sources from real
ones. Sampling instead of beam search gives more varied sources (Edunov et al. 2018).

The corpus is written once, atomically, as `train.{src}` and `train.{tgt}` beside `provenance.json`
(the reverse model's and the input's SHA-256, the decode options, the tag); asked again with the same
provenance, the existing corpus is reused, so a rerun of a workflow does not translate twice. A corpus
of other provenance in the same directory is replaced whole once the new one is complete.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nmt.atomic import atomic_directory, sha256_of
from nmt.checkpoint import load_checkpoint
from nmt.config import DecodeConfig
from nmt.data.corpus import iter_lines
from nmt.decode.translator import Translator
from nmt.errors import UserError

PROVENANCE = "provenance.json"
CHUNK_LINES = 2000  # monolingual lines translated at a time: memory stays flat on big inputs


def provenance(reverse_model: str | Path, monolingual: str | Path, decode: DecodeConfig, tag: str | None) -> dict:
    """What a back-translated corpus is a function of (besides the code): files by content, not by path."""
    ckpt = load_checkpoint(reverse_model)
    return {
        "reverse_model_sha256": sha256_of(Path(reverse_model)),
        "monolingual_sha256": sha256_of(Path(monolingual)),
        "decode": asdict(decode),
        "tag": tag,
        # the reverse model translates tgt -> src of the forward model
        "src_lang": ckpt.tgt_lang,
        "tgt_lang": ckpt.src_lang,
    }


def backtranslate(
    reverse_model: str | Path,
    monolingual: str | Path,
    output: str | Path,
    decode: DecodeConfig,
    tag: str | None = None,
    device: str = "auto",
) -> tuple[dict[str, Any], bool]:
    """Write (or reuse) the back-translated corpus of `monolingual` in `output`.

    Args:
        reverse_model: a checkpoint translating the monolingual text's language into the source language.
        monolingual: target-language text, one sentence per line (plain or .gz); empty lines are skipped.
        output: the directory to write: `train.{src_lang}` (synthetic, tagged), `train.{tgt_lang}`, provenance.
        decode: search or sampling options of the reverse model.
        tag: a word put before every synthetic source (reserve it in the forward model's tokenizer with
            `tokenizer.user_symbols`), or None for untagged back-translation.

    Returns:
        the provenance written, and whether the corpus was reused rather than translated.
    """
    output = Path(output)
    wanted = provenance(reverse_model, monolingual, decode, tag)
    earlier = _record(output)
    if earlier is not None and earlier["provenance"] == wanted:
        return earlier, True
    check_replaceable(output, monolingual)
    translator = Translator.from_checkpoint(reverse_model, decode, device)
    src_lang, tgt_lang = wanted["src_lang"], wanted["tgt_lang"]
    pairs = empty = 0
    with atomic_directory(output) as tmp:
        src_path, tgt_path = tmp / f"train.{src_lang}", tmp / f"train.{tgt_lang}"
        with src_path.open("w", encoding="utf-8") as src, tgt_path.open("w", encoding="utf-8") as tgt:
            lines = (line for line in (raw.strip() for raw in iter_lines(monolingual)) if line)
            while chunk := list(itertools.islice(lines, CHUNK_LINES)):
                for line, translation in zip(chunk, translator.translate(chunk), strict=True):
                    if not translation.best:  # nothing to learn from; the filter would drop it anyway
                        empty += 1
                        continue
                    src.write((translation.best if tag is None else f"{tag} {translation.best}") + "\n")
                    tgt.write(line + "\n")
                    pairs += 1
        record = {
            "provenance": wanted,
            "reverse_model": str(reverse_model),
            "monolingual": str(monolingual),
            "pairs": pairs,
            "empty_translations": empty,
        }
        (tmp / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record, False


def check_replaceable(output: Path, monolingual: str | Path) -> None:
    """Refuse to write the corpus over a directory it did not write: the whole directory is replaced.

    Raises:
        UserError: `output` holds files but no back-translation record, or holds the monolingual text.
    """
    if Path(monolingual).resolve().is_relative_to(output.resolve()):
        raise UserError(
            f"the monolingual text {monolingual} is inside output={output}, which is replaced whole: "
            "write the corpus to a directory of its own."
        )
    if output.is_dir() and any(output.iterdir()) and _record(output) is None:
        raise UserError(
            f"output={output} holds files but no {PROVENANCE} of an earlier back-translation; it is replaced "
            "whole, so name a new or empty directory."
        )


def _record(output: Path) -> dict[str, Any] | None:
    """The record of an earlier back-translation in `output`, or None when there is none readable."""
    try:
        record = json.loads((output / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "provenance" in record else None
