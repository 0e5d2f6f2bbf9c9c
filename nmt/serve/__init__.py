"""`nmt-serve`: a translation server on top of decoding, with dynamic batching across concurrent requests.

Read in this order: `batcher` (the queue and the worker thread that owns the model), `service` (texts to lines to
ids and back; alignments and attention), `inputs` (bodies, parameters and limits), `native` and `libretranslate`
(the two APIs), `metrics`, `state`, `app` (routes, errors, the per-request log line), `server` (uvicorn and the
graceful shutdown), and `static/` (the web page). The web stack (Starlette, uvicorn, prometheus-client) is
imported here and in `nmt.cli` only: it is the `serve` extra.
"""
