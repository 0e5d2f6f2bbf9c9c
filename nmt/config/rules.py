"""The rules of single config dataclasses (each group and command on its own), as messages naming key, rule and value;
`nmt.config.check` adds the rules that join several and raises them all at once."""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from importlib.util import find_spec
from typing import Any

from nmt.config.commands import AlignConfig, PruneConfig
from nmt.config.groups import (
    AugmentConfig,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    OptimConfig,
    TokenizerConfig,
    TrainerConfig,
)


def field_problems(cfg: Any, prefix: str) -> list[str]:
    """Rule violations in one dataclass, as messages naming key, rule and value."""
    out: list[str] = []

    def need(ok: bool, key: str, rule: str) -> None:
        if not ok:
            out.append(f"`{prefix}{key}` must be {rule}, but is {getattr(cfg, key)!r} instead.")

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        choices = f.metadata.get("choices")
        if is_dataclass(value):
            out += field_problems(value, f"{prefix}{f.name}.")
        elif choices is not None and isinstance(value, list):
            need(bool(value) and set(value) <= set(choices), f.name, "a non-empty list of " + ", ".join(choices))
        elif choices is not None:
            need(value in choices, f.name, "one of " + ", ".join(map(str, choices)))
    if isinstance(cfg, ModelConfig):
        for key in ("n_heads", "d_model", "d_ff"):
            need(getattr(cfg, key) >= 1, key, ">= 1")
        if cfg.n_heads >= 1:
            need(cfg.d_model % cfg.n_heads == 0, "d_model", f"divisible by n_heads ({cfg.n_heads})")
        need(cfg.enc_layers >= 1, "enc_layers", ">= 1")
        need(cfg.dec_layers >= 1, "dec_layers", ">= 1")
        need(cfg.attention_topk >= 1, "attention_topk", ">= 1")
        need(
            cfg.attention_weights not in ("entmax15", "sparsemax") or find_spec("entmax") is not None,
            "attention_weights",
            'softmax, topk or hard without the entmax package (pip install "nmt-toolkit[entmax]")',
        )
        for attention, layers in (("enc", cfg.enc_layers), ("dec_self", cfg.dec_layers), ("dec_cross", cfg.dec_layers)):
            counts = getattr(cfg, f"{attention}_heads")
            rule = f"empty or {layers} counts in [0, n_heads]"
            need(
                not counts or (len(counts) == layers and all(0 <= c <= cfg.n_heads for c in counts)),
                f"{attention}_heads",
                rule,
            )
        for key in ("dropout", "attn_dropout", "act_dropout"):
            need(0.0 <= getattr(cfg, key) < 1.0, key, "in [0, 1)")
    if isinstance(cfg, AlignConfig):
        need((cfg.input is None) != (cfg.src is None and cfg.tgt is None), "input", "given, or else src and tgt")
        need((cfg.src is None) == (cfg.tgt is None), "src", "given together with tgt")
        need(not cfg.all_layers or cfg.gold is not None, "all_layers", "used with gold")
        need(not cfg.all_layers or cfg.output is None, "output", "unset with all_layers (it prints a table only)")
        need(not cfg.all_layers or cfg.reverse_ckpt is None, "reverse_ckpt", "unset with all_layers (one direction)")
        need(cfg.max_tokens >= 1, "max_tokens", ">= 1")
    if isinstance(cfg, PruneConfig):
        need(cfg.fraction is not None or cfg.tolerance is not None, "fraction", "given, or else tolerance")
        need(cfg.fraction is None or 0 < cfg.fraction < 1, "fraction", "in (0, 1)")
        need(cfg.tolerance is None or cfg.tolerance >= 0, "tolerance", ">= 0")
        need(0 < cfg.step < 1, "step", "in (0, 1)")
        need(cfg.max_tokens >= 1, "max_tokens", ">= 1")
    if isinstance(cfg, DecodeConfig):
        need(cfg.beam_size >= 1, "beam_size", ">= 1")
        if not cfg.sampling:  # sampling draws n_best independent samples
            need(cfg.n_best <= cfg.beam_size, "n_best", f"<= `{prefix}beam_size` ({cfg.beam_size})")
        need(cfg.temperature > 0, "temperature", "> 0")
        need(cfg.top_k >= 0, "top_k", ">= 0 (0 = all tokens)")
        need(0 < cfg.top_p <= 1, "top_p", "in (0, 1]")
        need(0 <= cfg.epsilon < 1, "epsilon", "in [0, 1)")
        need(cfg.n_best >= 1, "n_best", ">= 1")
        need(cfg.max_tokens >= 1, "max_tokens", ">= 1")
        need(cfg.max_sentences is None or cfg.max_sentences >= 0, "max_sentences", ">= 0 (0 or null: no cap)")
        need(cfg.min_len >= 0, "min_len", ">= 0")
        need(cfg.max_len_a >= 0, "max_len_a", ">= 0")
        need(
            cfg.max_len_a + cfg.max_len_b >= 1,
            "max_len_b",
            f">= {math.ceil(1 - cfg.max_len_a)} with `{prefix}max_len_a` = {cfg.max_len_a:g}, "
            "so that a one-token source allows one output token",
        )
    if isinstance(cfg, AugmentConfig):
        need(cfg.switchout >= 0, "switchout", ">= 0 (0 = off)")
        need(0 <= cfg.synonym_rate <= 1, "synonym_rate", "in [0, 1]")
        need(cfg.synonym_min_count >= 0, "synonym_min_count", ">= 0")
    if isinstance(cfg, DataConfig):
        need(cfg.max_len >= 1, "max_len", ">= 1")
        need(cfg.max_tokens >= cfg.max_len + 2, "max_tokens", f">= `{prefix}max_len` + 2 ({cfg.max_len + 2})")
        need(cfg.max_ratio >= 1.0, "max_ratio", ">= 1")
        need(cfg.max_sentences is None or cfg.max_sentences >= 0, "max_sentences", ">= 0 (0 or null: no cap)")
        need(cfg.src_lang != cfg.tgt_lang, "tgt_lang", f"different from `{prefix}src_lang`")
    if isinstance(cfg, TokenizerConfig):
        need(cfg.vocab_size >= 16, "vocab_size", ">= 16")
    if isinstance(cfg, TrainerConfig):
        need(0.0 < cfg.val_check_fraction <= 1.0, "val_check_fraction", "in (0, 1]")
        need(cfg.accumulate_grad_batches >= 1, "accumulate_grad_batches", ">= 1")
        need(cfg.val_check_interval >= 1, "val_check_interval", ">= 1")
        need(cfg.gradient_clip_val >= 0, "gradient_clip_val", ">= 0 (0 = off)")
    if isinstance(cfg, OptimConfig):
        need(0.0 <= cfg.label_smoothing < 1.0, "label_smoothing", "in [0, 1)")
        need(cfg.align_weight >= 0, "align_weight", ">= 0 (0 = off)")
        need(cfg.lr > 0, "lr", "> 0")
        need(len(cfg.betas) == 2 and all(0 <= b < 1 for b in cfg.betas), "betas", "two values in [0, 1)")
        need(cfg.eps > 0, "eps", "> 0")
        need(cfg.weight_decay >= 0, "weight_decay", ">= 0")
        need(cfg.warmup_steps >= 0, "warmup_steps", ">= 0")
        need(0.0 <= cfg.warmup_fraction < 1.0, "warmup_fraction", "in [0, 1)")
        if cfg.schedule_by == "time" and cfg.schedule == "inverse_sqrt":
            need(cfg.warmup_fraction > 0, "warmup_fraction", "> 0 with `optim.schedule=inverse_sqrt` by time")
        need(cfg.fp16_init_scale > 0, "fp16_init_scale", "> 0")
        need(0 < cfg.fp16_min_scale <= cfg.fp16_init_scale, "fp16_min_scale", f"in (0, `{prefix}fp16_init_scale`]")
    return out
