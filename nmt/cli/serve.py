"""`nmt-serve`: serve a checkpoint over HTTP, batching the sentences of all concurrent requests together.

A native JSON API (`POST /api/translate`: n-best with scores, alignments, attention), LibreTranslate's API
(`POST /translate`, `GET /languages`, `POST /detect`), a web page at `/`, `GET /health`, `GET /health/ready` and
Prometheus `GET /metrics`. Needs the `serve` extra: pip install "nmt-toolkit[serve]". Listens on 127.0.0.1 unless
`host` says otherwise; SIGTERM finishes the queued requests (up to `shutdown_grace` seconds), then exits.

Examples:
    nmt-serve ckpt=runs/quickstart/model.pt
    nmt-serve ckpt=model.pt port=8080 decode=greedy max_wait_ms=10 api_keys='[secret1,secret2]'
    curl -s localhost:5000/translate -H 'Content-Type: application/json' \\
        -d '{"q": "the children buy twenty-one red apples.", "source": "en", "target": "de"}'
"""

from __future__ import annotations

from nmt.cli.hydra_config import entry_point
from nmt.config import ServeConfig
from nmt.device import retain_freed_memory, set_threads
from nmt.errors import MissingExtraError


def run(cfg: ServeConfig) -> None:
    """Load `cfg.ckpt` and serve it until SIGTERM or Ctrl-C."""
    try:
        from nmt.serve.server import serve
    except ImportError as err:
        raise MissingExtraError(
            f"nmt-serve needs the web stack ({err.name} is missing): pip install 'nmt-toolkit[serve]'."
        ) from None
    set_threads(cfg.num_threads)
    retain_freed_memory()
    serve(cfg)


main = entry_point("serve", ServeConfig, run, __doc__)
