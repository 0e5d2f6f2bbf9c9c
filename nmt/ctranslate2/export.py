"""Export a checkpoint as a CTranslate2 model directory (the `ctranslate2` extra).

`export_ctranslate2` fills a `ctranslate2.specs.TransformerSpec` from the network as CTranslate2's own
fairseq converter does. What CTranslate2 would otherwise do differently is written into the model: our
position table, whose row p it reads for position p from 0 (its built-in sinusoids put sin and cos in two
halves, ours interleave them), EOS appended to every source (`add_source_eos`), our special pieces, and
PyTorch's LayerNorm epsilon. The directory also holds the SentencePiece models and `nmt_export.json`, so
it needs nothing else to translate (`nmt.ctranslate2.engine` translates with it).
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
from nmt.ctranslate2.directory import FORMAT_VERSION, METADATA, ExportError, import_ctranslate2, is_export
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer
from nmt.decode.engine import load_model
from nmt.decode.translator import trained_len
from nmt.model import MultiHeadAttention, Transformer
from nmt.model.embedding import Embedding
from nmt.model.head_removal import restore_heads
from nmt.model.layers import DecoderLayer, EncoderLayer

_SPECIAL_IDS = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}


def export_ctranslate2(ckpt: str | Path, output: str | Path, quantization: str = "float32") -> dict[str, Any]:
    """Write the checkpoint `ckpt` as a CTranslate2 model directory `output`, atomically.

    The directory is built beside `output` and renamed into place, replacing an earlier export there;
    any other existing `output` is refused. Returns the metadata written to `nmt_export.json`.

    Args:
        quantization: the weights' type, one of CTranslate2's (float32, int8, int8_float32, int16, ...).
    """
    ct2 = import_ctranslate2()
    output = Path(output)
    _check_target(output, quantization, ct2.specs.model_spec.ACCEPTED_MODEL_TYPES)
    loaded = load_checkpoint(ckpt)
    if loaded.model_config.attention != "scaled_dot":
        raise ExportError(
            f"checkpoint {ckpt}: `model.attention` must be scaled_dot to export to CTranslate2 (its only "
            f"attention score), but is {loaded.model_config.attention!r} instead; translate it with backend=torch."
        )
    if loaded.model_config.attention_weights != "softmax":
        raise ExportError(
            f"checkpoint {ckpt}: `model.attention_weights` must be softmax to export to CTranslate2 (its only "
            f"weighting), but is {loaded.model_config.attention_weights!r} instead; translate it with backend=torch."
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
        "trained_len": trained_len(loaded),  # the training data's longest sentence: longer ones are cut in chunks
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
    check_writable(output, directory=True)


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
