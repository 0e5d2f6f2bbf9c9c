"""CTranslate2 (the `ctranslate2` extra): export a checkpoint to a model directory, and translate with it.

`export_ctranslate2` fills a `ctranslate2.specs.TransformerSpec` from the network as CTranslate2's own
fairseq converter does. What CTranslate2 would otherwise do differently is written into the model: our
position table, whose row p it reads for position p from 0 (its built-in sinusoids put sin and cos in two
halves, ours interleave them), EOS appended to every source (`add_source_eos`), our special pieces, and
PyTorch's LayerNorm epsilon. The directory also holds the SentencePiece models and `nmt_export.json`, so
it needs nothing else to translate.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nmt.atomic import atomic_directory, check_writable
from nmt.checkpoint import load_checkpoint
from nmt.config import DecodeConfig
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer
from nmt.decode.beam import length_penalty, max_lengths
from nmt.decode.engine import NBest, load_model
from nmt.decode.translator import Translator
from nmt.device import resolve_device
from nmt.errors import MissingExtraError, UserError
from nmt.model import MultiHeadAttention, Transformer
from nmt.model.embedding import Embedding
from nmt.model.layers import DecoderLayer, EncoderLayer
from nmt.model.prune import restore_heads

METADATA = "nmt_export.json"
FORMAT_VERSION = 1
_SPECIAL_IDS = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}
# decode.precision -> CTranslate2's compute type. On CUDA, int8 is int8_float16: int8 weights with the rest of
# the network in float16 rather than float32 (CTranslate2's fast int8 mode for GPUs).
COMPUTE_TYPES = {"32": "default", "bf16": "bfloat16", "fp16": "float16", "int8": "int8"}
CUDA_COMPUTE_TYPES = {**COMPUTE_TYPES, "int8": "int8_float16"}


class ExportError(UserError, ValueError):
    """A model CTranslate2 cannot represent, or a directory that is not an nmt CTranslate2 export."""


def _ctranslate2() -> Any:
    """The `ctranslate2` module, or a clear hint to install the extra."""
    try:
        import ctranslate2
    except ImportError as err:
        raise MissingExtraError('CTranslate2 needs ctranslate2: pip install "nmt-toolkit[ctranslate2]".') from err
    return ctranslate2


def is_export(path: str | Path) -> bool:
    """True for a directory written by `export_ctranslate2`."""
    return (Path(path) / METADATA).is_file()


# ---- export ----


def export_ctranslate2(ckpt: str | Path, output: str | Path, quantization: str = "float32") -> dict[str, Any]:
    """Write the checkpoint `ckpt` as a CTranslate2 model directory `output`, atomically.

    The directory is built beside `output` and renamed into place, replacing an earlier export there;
    any other existing `output` is refused. Returns the metadata written to `nmt_export.json`.

    Args:
        quantization: the weights' type, one of CTranslate2's (float32, int8, int8_float32, int16, ...).
    """
    ct2 = _ctranslate2()
    output = Path(output)
    _check_target(output, quantization, ct2.specs.model_spec.ACCEPTED_MODEL_TYPES)
    loaded = load_checkpoint(ckpt)
    if loaded.model_config.attention != "scaled_dot":
        raise ExportError(
            f"checkpoint {ckpt}: `model.attention` must be scaled_dot to export to CTranslate2 (its only "
            f"attention score), but is {loaded.model_config.attention!r} instead; translate it with backend=torch."
        )
    model, tokenizer = load_model(loaded, ckpt)
    spec = _spec(ct2, model, tokenizer)
    spec.validate()
    spec.optimize(quantization=quantization)
    tokenizer_files = {key: f"spm.{key}.model" for key in tokenizer.to_bytes()}
    meta = {
        "format": FORMAT_VERSION,
        "checkpoint": str(Path(ckpt).resolve()),
        "step": loaded.step,
        "nmt_version": _nmt_version(),
        "ctranslate2_version": ct2.__version__,
        "quantization": quantization,
        "src_lang": loaded.src_lang,
        "tgt_lang": loaded.tgt_lang,
        "max_positions": model.cfg.max_positions,  # sources are cut to max_positions - 1 tokens, plus EOS
        "source_eos": True,
        "special_tokens": {name: tokenizer.tgt_pieces()[i] for name, i in _SPECIAL_IDS.items()},
        "tokenizer": tokenizer_files,
        "model_config": asdict(model.cfg),
    }
    with atomic_directory(output) as tmp:
        spec.save(str(tmp))
        for key, model_bytes in tokenizer.to_bytes().items():
            (tmp / tokenizer_files[key]).write_bytes(model_bytes)
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def _check_target(output: Path, quantization: str, accepted: tuple[str, ...]) -> None:
    """Refuse, before any work, an unknown quantization or an output that is not ours to replace."""
    if quantization not in accepted:
        raise ExportError(f"`quantization` must be one of {', '.join(accepted)}, but is {quantization!r} instead.")
    if output.exists() and not is_export(output):
        raise ExportError(
            f"output {output} exists and is not an earlier CTranslate2 export (no {METADATA}); choose a new directory."
        )
    check_writable(output)


def _nmt_version() -> str:
    try:
        return version("nmt-toolkit")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _spec(ct2: Any, model: Transformer, tokenizer: Tokenizer) -> Any:
    """A `TransformerSpec` holding every weight of `model`, with our vocabularies and special pieces.

    A pruned model gets its heads back as zeros first: CTranslate2 has one head count for all layers.
    """
    model = restore_heads(model)
    cfg = model.cfg
    activation = {"relu": ct2.specs.Activation.RELU, "gelu": ct2.specs.Activation.GELU}[cfg.activation]
    spec = ct2.specs.TransformerSpec.from_config(
        (cfg.enc_layers, cfg.dec_layers), cfg.n_heads, pre_norm=cfg.norm == "pre", activation=activation
    )
    _set_embedding(spec.encoder, model.src_embed)
    for layer_spec, layer in zip(spec.encoder.layer, model.encoder, strict=True):
        _set_encoder_layer(layer_spec, layer)
    _set_embedding(spec.decoder, model.tgt_embed)
    for layer_spec, layer in zip(spec.decoder.layer, model.decoder, strict=True):
        _set_decoder_layer(layer_spec, layer)
    if cfg.norm == "pre":  # post-norm has no final LayerNorm, in either toolkit
        _set_norm(spec.encoder.layer_norm, model.enc_norm)
        _set_norm(spec.decoder.layer_norm, model.dec_norm)
    spec.decoder.projection.weight = model.output.weight.detach()  # tied or not; no bias
    spec.register_source_vocabulary(tokenizer.src_pieces())
    spec.register_target_vocabulary(tokenizer.tgt_pieces())
    # CTranslate2 finds its special tokens by name: name ours (the same ids in both vocabularies).
    pieces = tokenizer.tgt_pieces()
    spec.config.unk_token, spec.config.eos_token = pieces[UNK_ID], pieces[EOS_ID]
    spec.config.bos_token = spec.config.decoder_start_token = pieces[BOS_ID]
    spec.config.add_source_eos = True  # we train on `ids + [EOS]` sources
    spec.config.layer_norm_epsilon = model.encoder[0].self_res.norm.eps
    return spec


def _set_embedding(spec: Any, embedding: Embedding) -> None:
    """Token embeddings (CTranslate2 scales them by sqrt(D), as we do) and our position table."""
    tokens = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    tokens.weight = embedding.tokens.weight.detach()
    spec.scale_embeddings = True
    positions = torch.arange(embedding.max_positions)
    spec.position_encodings.encodings = embedding.positions(positions).detach()  # [P, D], row p for position p


def _set_encoder_layer(spec: Any, layer: EncoderLayer) -> None:
    _set_attention(spec.self_attention, layer.self_attn, self_attention=True)
    _set_norm(spec.self_attention.layer_norm, layer.self_res.norm)
    _set_ffn(spec.ffn, layer)


def _set_decoder_layer(spec: Any, layer: DecoderLayer) -> None:
    _set_attention(spec.self_attention, layer.self_attn, self_attention=True)
    _set_norm(spec.self_attention.layer_norm, layer.self_res.norm)
    _set_attention(spec.attention, layer.cross_attn, self_attention=False)
    _set_norm(spec.attention.layer_norm, layer.cross_res.norm)
    _set_ffn(spec.ffn, layer)


def _set_ffn(spec: Any, layer: EncoderLayer | DecoderLayer) -> None:
    _set_norm(spec.layer_norm, layer.ff_res.norm)
    _set_linear(spec.linear_0, layer.ff.up)
    _set_linear(spec.linear_1, layer.ff.down)


def _set_attention(spec: Any, attn: MultiHeadAttention, self_attention: bool) -> None:
    """Fused projections: [q|k|v] for self-attention, q and [k|v] for cross-attention, then the output."""
    projections = [attn.q_proj, attn.k_proj, attn.v_proj]
    groups = [projections] if self_attention else [projections[:1], projections[1:]]
    for linear_spec, group in zip(spec.linear, groups, strict=False):
        linear_spec.weight = torch.cat([p.weight.detach() for p in group])  # [n*D, D]
        linear_spec.bias = torch.cat([p.bias.detach() for p in group])
    _set_linear(spec.linear[-1], attn.out_proj)


def _set_linear(spec: Any, linear: nn.Linear) -> None:
    spec.weight = linear.weight.detach()
    if linear.bias is not None:
        spec.bias = linear.bias.detach()


def _set_norm(spec: Any, norm: nn.Module) -> None:
    spec.gamma = norm.weight.detach()
    spec.beta = norm.bias.detach()


# ---- translate ----


def load_ctranslate2(path: str | Path, decode: DecodeConfig, device: str = "auto", threads: int = 0) -> Translator:
    """A `Translator` over the exported directory `path`, with `threads` CPU threads (0: CTranslate2's choice)."""
    meta = read_metadata(path)
    tokenizer = Tokenizer.from_bytes({key: (Path(path) / name).read_bytes() for key, name in meta["tokenizer"].items()})
    engine = CTranslate2Engine(Path(path), tokenizer, meta["max_positions"], resolve_device(device), threads)
    return Translator(engine, tokenizer, decode)


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
        self.tgt_ids = {piece: i for i, piece in enumerate(tokenizer.tgt_pieces())}
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
                self._models[compute_type] = _ctranslate2().Translator(
                    str(self.path),
                    device=self.device.type,
                    device_index=self.device.index or 0,
                    compute_type=compute_type,
                    intra_threads=self.threads,
                )
            except ValueError as err:  # e.g. bfloat16 on a CPU without bf16 instructions
                raise ExportError(f"CTranslate2 cannot run {self.path} at decode.precision={precision}: {err}") from err
        return self._models[compute_type]

    def translate_ids(self, srcs: list[list[int]], cfg: DecodeConfig) -> list[NBest]:
        """Translate a batch with `search_options`; the scores are rescaled to our length normalisation."""
        options = search_options(srcs, cfg, self.max_positions)
        tokens = [[self.src_pieces[i] for i in ids] for ids in srcs]  # CTranslate2 appends EOS itself
        results = self.model_for(cfg.precision).translate_batch(tokens, suppress_sequences=self.never, **options)
        return [self._nbest(r.hypotheses, r.scores, options["length_penalty"], cfg) for r in results]

    def _nbest(self, hypotheses: list[list[str]], scores: list[float], exponent: float, cfg: DecodeConfig) -> NBest:
        """The `cfg.n_best` best hypotheses by our length normalisation, as ids without EOS, best first.

        CTranslate2's score is the summed log-prob over n^exponent (n tokens, EOS included); ours divides
        the same sum by `length_penalty(n, cfg)`.
        """
        ours = [s * len(h) ** exponent / length_penalty(len(h), cfg) for h, s in zip(hypotheses, scores, strict=True)]
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
