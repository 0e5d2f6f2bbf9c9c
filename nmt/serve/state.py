"""What every route reads: the service, the settings, the metrics, the language pair and the API keys."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from nmt.config import ServeConfig
from nmt.errors import UserError
from nmt.serve.errors import RequestError
from nmt.serve.metrics import Metrics
from nmt.serve.service import TranslationService

# English names of the languages the project's corpora cover (LibreTranslate's `/languages` gives names too).
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "it": "Italian", "ja": "Japanese", "nl": "Dutch", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip


def language(code: str) -> dict[str, str]:
    """`{"code": "de", "name": "German"}`; the code stands for the name where it is not in the table."""
    return {"code": code, "name": LANGUAGE_NAMES.get(code, code)}


def read_keys(cfg: ServeConfig) -> frozenset[str]:
    """The accepted API keys: `api_keys` and the lines of `api_keys_file` (blank lines and `#` comments skipped)."""
    keys = set(cfg.api_keys)
    if cfg.api_keys_file is not None:
        path = Path(cfg.api_keys_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"api_keys_file {path} cannot be read: {err}") from None
        keys |= {line.strip() for line in lines if line.strip() and not line.strip().startswith("#")}
    return frozenset(keys)


@dataclass
class ServerState:
    """Shared by the routes of one app (`app.state.server`)."""

    service: TranslationService
    cfg: ServeConfig
    metrics: Metrics
    languages: tuple[dict[str, str], dict[str, str]]  # source, target
    keys: frozenset[str]
    decoder_layers: int

    def check_key(self, request: Request, given: object) -> None:
        """With API keys configured, a request needs one: `api_key` in its parameters or `Authorization: Bearer`.

        Missing: 400 with LibreTranslate's message; unknown: 403 "Invalid API key".
        """
        if not self.keys:
            return
        auth = request.headers.get("authorization", "")
        key = given if given else auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not key:
            raise RequestError(400, "Please contact the server operator to get an API key", reason="auth")
        if not isinstance(key, str) or not any(
            hmac.compare_digest(key.encode("utf-8", "surrogatepass"), k.encode()) for k in self.keys
        ):
            raise RequestError(403, "Invalid API key")
