"""Shared fixtures: the real corpora in `shared/data` next to the repository."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`shared/data` (Multi30k, Tatoeba en-zh); tests needing it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no local corpora at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spm_cache(tmp_path_factory) -> Path:
    """One SentencePiece cache per test session: a model trained twice on the same text is loaded."""
    return tmp_path_factory.mktemp("spm-cache")
