"""An exported CTranslate2 model directory: its `nmt_export.json`, and the checks both halves share.

The directory holds CTranslate2's model files, the SentencePiece models and `nmt_export.json` (`METADATA`,
format `FORMAT_VERSION`), so it needs nothing else to translate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nmt.errors import MissingExtraError, UserError

METADATA = "nmt_export.json"
FORMAT_VERSION = 1


class ExportError(UserError, ValueError):
    """A model CTranslate2 cannot represent, or a directory that is not an nmt CTranslate2 export."""


def import_ctranslate2() -> Any:
    """The `ctranslate2` module, or a clear hint to install the extra."""
    try:
        import ctranslate2
    except ImportError as err:
        raise MissingExtraError('CTranslate2 needs ctranslate2: pip install "nmt-toolkit[ctranslate2]".') from err
    return ctranslate2


def is_export(path: str | Path) -> bool:
    """True for a directory written by `nmt.ctranslate2.export.export_ctranslate2`."""
    return (Path(path) / METADATA).is_file()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `nmt_export.json` of an exported directory; anything else is refused, naming the backend it needs."""
    path = Path(path)
    if path.is_file():
        raise ExportError(
            f"ckpt {path} is a file, not a CTranslate2 model directory: translate it with backend=torch, "
            f"or export it first (nmt-export ckpt={path} output=DIR)."
        )
    if not is_export(path):
        reason = f"has no {METADATA}" if path.is_dir() else "does not exist"
        raise ExportError(f"CTranslate2 model directory {path} {reason}; write one with nmt-export.")
    try:
        meta = json.loads((path / METADATA).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path / METADATA} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise ExportError(f"{path / METADATA} is not format {FORMAT_VERSION}; export the checkpoint again.")
    return meta
