"""MkDocs hooks (mkdocs.yml `hooks: [docs/hooks.py]`): pages generated at build time, never committed."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `nmt` from this checkout, installed or not

from nmt.config.reference import configuration_markdown  # noqa: E402

CONFIGURATION_PAGE = "reference/configuration.md"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the configuration reference, generated from the config dataclasses' field metadata."""
    stale = files.get_file_from_path(CONFIGURATION_PAGE)
    if stale is not None:
        files.remove(stale)
    files.append(File.generated(config, CONFIGURATION_PAGE, content=configuration_markdown()))
    return files
