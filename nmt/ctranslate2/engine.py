"""Translate with an exported CTranslate2 model directory (the `ctranslate2` extra).

`load_ctranslate2` gives a `Translator` whose engine, `CTranslate2Engine`, passes our ids to a
`ctranslate2.Translator` as piece strings; `search_options` maps our decode options onto its own, and
says where they differ. Nothing here converts weights: `nmt.ctranslate2.export` writes the directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nmt.config import DecodeConfig
from nmt.ctranslate2.directory import ExportError, import_ctranslate2, read_metadata
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer
from nmt.decode.beam import length_penalty, max_lengths
from nmt.decode.constraints import Constraints
from nmt.decode.engine import NBest
from nmt.decode.translator import Translator
from nmt.device import resolve_device

# decode.precision -> CTranslate2's compute type. On CUDA, int8 is int8_float16: int8 weights with the rest of
# the network in float16 rather than float32 (CTranslate2's fast int8 mode for GPUs).
COMPUTE_TYPES = {"32": "default", "bf16": "bfloat16", "fp16": "float16", "int8": "int8"}
CUDA_COMPUTE_TYPES = {**COMPUTE_TYPES, "int8": "int8_float16"}


def load_ctranslate2(path: str | Path, decode: DecodeConfig, device: str = "auto", threads: int = 0) -> Translator:
    """A `Translator` over the exported directory `path`, with `threads` CPU threads (0: CTranslate2's choice)."""
    meta = read_metadata(path)
    tokenizer = Tokenizer.from_bytes({key: (Path(path) / name).read_bytes() for key, name in meta["tokenizer"].items()})
    engine = CTranslate2Engine(Path(path), tokenizer, meta["max_positions"], resolve_device(device), threads)
    langs = (meta.get("src_lang", ""), meta.get("tgt_lang", ""))
    return Translator(engine, tokenizer, decode, langs=langs, trained_len=meta.get("trained_len"))


class CTranslate2Engine:
    """A `ctranslate2.Translator` as an `Engine`: our ids in and out, passed to it as piece strings.

    `decode.precision` picks CTranslate2's compute type (`compute_type_for`): `32` the export's own weight type,
    the others a conversion at load (one loaded model per compute type, kept).

    Args:
        path: the exported model directory.
        tokenizer: the SentencePiece models exported with it (their pieces are its vocabularies).
        max_positions: the position table's size; sources get EOS, so they hold at most one less.
        device: where it runs.
        threads: CPU threads per translation (0: CTranslate2's choice).
    """

    def __init__(self, path: Path, tokenizer: Tokenizer, max_positions: int, device: torch.device, threads: int):
        self.path, self.threads = path, threads
        self.src_pieces = tokenizer.src_pieces()
        self.tgt_pieces = tokenizer.tgt_pieces()
        self.tgt_ids = {piece: i for i, piece in enumerate(self.tgt_pieces)}
        self.eos = tokenizer.tgt_pieces()[EOS_ID]
        self.never = [[tokenizer.tgt_pieces()[BOS_ID]], [tokenizer.tgt_pieces()[PAD_ID]]]
        self.max_positions = max_positions
        self.max_src_len = max_positions - 1
        self.device = device
        self._models: dict[str, Any] = {}
        self.model = self.model_for("32")  # load now: a broken directory fails before any input is read

    def model_for(self, precision: str) -> Any:
        """The loaded model computing at `precision` (see the class docstring)."""
        compute_type = compute_type_for(precision, self.device)
        if compute_type not in self._models:
            try:
                self._models[compute_type] = import_ctranslate2().Translator(
                    str(self.path),
                    device=self.device.type,
                    device_index=self.device.index or 0,
                    compute_type=compute_type,
                    intra_threads=self.threads,
                )
            except ValueError as err:  # e.g. bfloat16 on a CPU without bf16 instructions
                raise ExportError(f"CTranslate2 cannot run {self.path} at decode.precision={precision}: {err}") from err
        return self._models[compute_type]

    def translate_ids(
        self, srcs: list[list[int]], cfg: DecodeConfig, constraints: list[Constraints | None] | None = None
    ) -> list[NBest]:
        """Translate a batch with `search_options`; the scores are rescaled to our length normalisation.

        Of `constraints`, prefixes become CTranslate2's `target_prefix` and phrases to avoid its
        `suppress_sequences` (one call per group of sentences that avoid the same phrases: CTranslate2 takes
        one list per call); positive constraints, which it has no counterpart for, are refused."""
        if constraints is not None and any(c is not None and c.include for c in constraints):
            raise ExportError("backend=ctranslate2 supports `prefix` and `avoid` only; constraints need backend=torch.")
        options = search_options(srcs, cfg, self.max_positions)
        model = self.model_for(cfg.precision)
        groups: dict[tuple[tuple[int, ...], ...], list[int]] = {}  # phrases to avoid -> the rows avoiding them
        for row, c in enumerate(constraints or [None] * len(srcs)):
            groups.setdefault(tuple(map(tuple, c.avoid)) if c else (), []).append(row)
        found: list[NBest] = [([], [])] * len(srcs)
        for avoid, rows in groups.items():
            batch = [constraints[row] if constraints else None for row in rows]
            nbests = self._translate(model, [srcs[row] for row in rows], batch, avoid, options, cfg)
            for row, nbest in zip(rows, nbests, strict=True):
                found[row] = nbest
        return found

    def _translate(
        self,
        model: Any,
        srcs: list[list[int]],
        constraints: list[Constraints | None],
        avoid: tuple[tuple[int, ...], ...],
        options: dict[str, Any],
        cfg: DecodeConfig,
    ) -> list[NBest]:
        """One `translate_batch` call: sentences that all avoid the phrases `avoid`, each with its prefix."""
        tokens = [[self.src_pieces[i] for i in ids] for ids in srcs]  # CTranslate2 appends EOS itself
        prefixes = [[self.tgt_pieces[i] for i in c.prefix] if c else [] for c in constraints]
        suppress = self.never + [[self.tgt_pieces[i] for i in phrase] for phrase in avoid]
        extra = {"target_prefix": prefixes} if any(prefixes) else {}
        results = model.translate_batch(tokens, suppress_sequences=suppress, **options, **extra)
        forced = self._prefix_log_probs(model, tokens, prefixes) if any(prefixes) else [0.0] * len(srcs)
        return [
            self._nbest(r.hypotheses, r.scores, options["length_penalty"], cfg, prefix)
            for r, prefix in zip(results, forced, strict=True)
        ]

    @staticmethod
    def _prefix_log_probs(model: Any, tokens: list[list[str]], prefixes: list[list[str]]) -> list[float]:
        """The summed log-probs of each forced prefix (0 for none): CTranslate2 leaves them out of its scores,
        where ours count them (the prefix's tokens are part of the output)."""
        rows = [i for i, p in enumerate(prefixes) if p]
        scored = model.score_batch([tokens[i] for i in rows], [prefixes[i] for i in rows])
        out = [0.0] * len(prefixes)
        for i, result in zip(rows, scored, strict=True):
            out[i] = sum(result.log_probs[: len(prefixes[i])])  # the last log-prob is EOS's: not forced
        return out

    def _nbest(
        self, hypotheses: list[list[str]], scores: list[float], exponent: float, cfg: DecodeConfig, prefix: float
    ) -> NBest:
        """The `cfg.n_best` best hypotheses by our length normalisation, as ids without EOS, best first.

        CTranslate2's score is the summed log-prob over n^exponent (n tokens, EOS and a forced prefix included),
        the prefix's log-probs (`prefix`) left out of the sum; ours divides the whole sum by
        `length_penalty(n, cfg)`.
        """
        ours = [
            (s * len(h) ** exponent + prefix) / length_penalty(len(h), cfg)
            for h, s in zip(hypotheses, scores, strict=True)
        ]
        best = sorted(range(len(ours)), key=ours.__getitem__, reverse=True)[: cfg.n_best]
        ids = [[self.tgt_ids[piece] for piece in hypotheses[i] if piece != self.eos] for i in best]
        return ids, [ours[i] for i in best]


def compute_type_for(precision: str, device: torch.device) -> str:
    """CTranslate2's compute type for `decode.precision` on `device` (`COMPUTE_TYPES`, `CUDA_COMPUTE_TYPES`).

    Raises:
        ExportError: fp16 off CUDA (CTranslate2 has no float16 on CPU), in the PyTorch engine's words.
    """
    if device.type == "cuda":
        return CUDA_COMPUTE_TYPES[precision]
    if precision == "fp16":
        raise ExportError(
            f"`decode.precision=fp16` runs on CUDA only, but the device is {device}; use 32, bf16 or int8 there."
        )
    return COMPUTE_TYPES[precision]


def search_options(srcs: list[list[int]], cfg: DecodeConfig, max_positions: int) -> dict[str, Any]:
    """`translate_batch` options closest to our search rules (`nmt.decode.search`, `nmt.decode.beam`).

    Exact: beam_size, min_len (min_decoding_length) and no_repeat_ngram (no_repeat_ngram_size) count as
    ours do; BOS and PAD are never emitted (suppress_sequences). CTranslate2 masks before its softmax,
    though, so where these rules bite its log-probs are renormalised and the scores differ from ours.

    Per batch: our longest output, max_len_a * src_len + max_len_b tokens before EOS (src_len with EOS, at
    most max_positions - 1), is one `max_decoding_length` per call here: the batch's largest, so a
    sentence batched with longer ones may run past its own limit. At the limit CTranslate2 stops without
    EOS where we force one: the same tokens, another score.

    Length normalisation: CTranslate2 divides summed log-probs by n^length_penalty (n tokens, EOS
    included): `average` is 1 and `none` is 0, exactly; `gnmt`'s ((5 + n) / 6)^alpha has no equal, and
    alpha is passed as the exponent, so the beams may differ (greedy search cannot). It returns its
    beam_size finished hypotheses (num_hypotheses); `CTranslate2Engine` ranks them our way and keeps n_best
    (on 600 built-in sentences, beam 5 with `gnmt`: 597 best hypotheses as ours, against 591 in its order).

    Stopping: CTranslate2 ends a sentence when beam_size hypotheses are finished (patience=1, fairseq's rule);
    ours goes on while an active hypothesis could still beat the worst finished one (Hugging Face's
    early_stopping=False). patience=2 comes closer (on 600 built-in sentences, beam 5 with `average`: 600
    of 600 best hypotheses as ours against 596) for about 30% more time; we keep CTranslate2's default.
    """
    longest = torch.zeros(1, max(len(ids) for ids in srcs) + 1, dtype=torch.bool)  # [1, S]: with EOS, no padding
    max_len = min(int(max_lengths(longest, cfg)), max_positions - 1)
    exponent = {"gnmt": cfg.length_penalty, "average": 1.0, "none": 0.0}[cfg.length_norm]
    return {
        "beam_size": cfg.beam_size,
        "num_hypotheses": cfg.beam_size,
        "length_penalty": exponent,
        "max_decoding_length": max_len,
        "min_decoding_length": cfg.min_len,
        "no_repeat_ngram_size": cfg.no_repeat_ngram,
        "max_input_length": 0,  # `Translator` already cut the sources to fit
        "return_scores": True,
        "return_end_token": True,  # tells a hypothesis that ended from one cut at the limit, for its score
    }
