"""Validation: every rule a config breaks, collected and raised once, naming key, rule and value."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nmt.config.commands import (
    PROTECTED,
    SPLITTERS,
    AverageConfig,
    BenchmarkConfig,
    EvaluateConfig,
    PrepareConfig,
    PruneConfig,
    ServeConfig,
    TrainConfig,
    TranslateConfig,
    reference_paths,
)
from nmt.config.groups import DecodeConfig
from nmt.config.rules import field_problems
from nmt.errors import UserError

# A `harden` spec, as `nmt.model.hard_attention.parse_spec` reads it (which the model needs, and config cannot import)
_HARDEN_SPEC = re.compile(r"(enc|dec_self|dec_cross)(:\d+){0,2}")


class ConfigError(UserError, ValueError):
    """One or more configuration values break a rule; the message lists them all."""


def check(cfg: Any) -> Any:
    """Validate a config dataclass tree; raise one `ConfigError` listing every problem."""
    problems = field_problems(cfg, "")
    if isinstance(cfg, TrainConfig):
        problems += _train_problems(cfg)
    if isinstance(cfg, EvaluateConfig):
        problems += _evaluate_problems(cfg) + _ensemble_problems(cfg.ckpt) + _harden_problems(cfg)
        if cfg.ckpt is not None:  # with `hyp` the terms only score term use
            problems += _sampling_terms_problems(cfg.decode, {"glossary": cfg.glossary, "constraints": cfg.constraints})
    if isinstance(cfg, BenchmarkConfig):
        problems += _ensemble_problems(cfg.ckpt) + _ensemble_backend_problems(cfg.ckpt, "backends", cfg.backends)
        if cfg.repeats < 1:
            problems.append(f"`repeats` must be >= 1, but is {cfg.repeats} instead.")
        if not cfg.beam_sizes or min(cfg.beam_sizes) < 1:
            problems.append(f"`beam_sizes` must be a non-empty list of values >= 1, but is {cfg.beam_sizes} instead.")
        if cfg.decode.sampling and cfg.backends != ["torch"]:  # CTranslate2's rows would search, labelled as sampled
            problems.append(f"`decode.sampling` needs `backends` [torch], but it is {cfg.backends}.")
        problems += _sampling_terms_problems(cfg.decode, {"glossary": cfg.glossary})
    if isinstance(cfg, AverageConfig):
        if bool(cfg.ckpts) == (cfg.run is not None):
            problems.append(
                "give either `ckpts` (a list of checkpoints) or `run` (a run directory), not both or neither."
            )
        if cfg.last < 1:
            problems.append(f"`last` must be >= 1, but is {cfg.last} instead.")
        inputs = [*cfg.ckpts, *([] if cfg.run is None else [Path(cfg.run, "checkpoints", "last.ckpt")])]
        problems += _overwrites_input("output", cfg.output, inputs)
    if isinstance(cfg, PruneConfig):
        problems += _overwrites_input("output", cfg.output, [cfg.ckpt])
        problems += _overwrites_input("curve", cfg.curve, [cfg.ckpt])
    if isinstance(cfg, PrepareConfig) and cfg.workers < 0:
        problems.append(f"`workers` must be >= 0 (0: one per core), but is {cfg.workers} instead.")
    if isinstance(cfg, TranslateConfig):
        if cfg.input is not None and cfg.input == cfg.output:
            problems.append(f"`output` must differ from `input`, but both are {cfg.input!r}.")
        problems += _ensemble_problems(cfg.ckpt) + _ensemble_backend_problems(cfg.ckpt, "backend", [cfg.backend])
        if cfg.decode.sampling and cfg.backend != "torch":
            problems.append(f"`decode.sampling` needs `backend=torch`, but backend is {cfg.backend!r}.")
        problems += _sampling_terms_problems(cfg.decode, {"glossary": cfg.glossary})  # jsonl lines: as they come
        if cfg.glossary is not None and cfg.backend != "torch":  # refused now, not at the first line it matches
            problems.append(f"`glossary` terms need `backend=torch`, but backend is {cfg.backend!r}.")
        if cfg.buffer_size < 1:
            problems.append(f"`buffer_size` must be >= 1, but is {cfg.buffer_size} instead.")
        problems += _document_problems(cfg) + _harden_problems(cfg)
    if isinstance(cfg, ServeConfig):
        problems += _serve_problems(cfg)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return cfg


def _overwrites_input(key: str, output: str | None, inputs: list) -> list[str]:
    """An output path that is one of the command's inputs (resolved), which writing it would destroy."""
    if output is None or Path(output).resolve() not in {Path(str(path)).resolve() for path in inputs}:
        return []
    return [f"`{key}` must differ from the inputs, but {output!r} is one of them: writing it would replace it."]


def _sampling_terms_problems(decode: DecodeConfig, terms: dict[str, Any]) -> list[str]:
    """Terms, prefixes and words to avoid are rules of beam and greedy search: sampling takes none (`terms`: the
    options that bring them, None where unset)."""
    given = [key for key, value in terms.items() if value is not None]
    if decode.sampling and given:
        return [f"{', '.join(given)} (terms, prefixes, words to avoid) need beam or greedy search, not decode=sample."]
    return []


def _splitting_problems(cfg: TranslateConfig | ServeConfig) -> list[str]:
    """Rules of the options that cut text into sentences and keep pieces from the model (translate and serve)."""
    out = []
    if cfg.splitter not in SPLITTERS:
        out.append(f"`splitter` must be one of {', '.join(SPLITTERS)}, but is {cfg.splitter!r} instead.")
    unknown = [kind for kind in cfg.protect or [] if kind not in PROTECTED]
    if unknown:
        out.append(f"`protect` must list kinds among {', '.join(PROTECTED)}, but has {', '.join(map(repr, unknown))}.")
    if cfg.max_len is not None and cfg.max_len < 0:
        out.append(f"`max_len` must be >= 0 (0: never cut), but is {cfg.max_len} instead.")
    return out


def _document_problems(cfg: TranslateConfig) -> list[str]:
    """Rules of `nmt-translate`'s document options."""
    out = _splitting_problems(cfg)
    if cfg.backend != "torch" and (cfg.format not in (None, "text") or cfg.protect):
        out.append("markup and `protect` are placed along the search's attention: they need `backend=torch`.")
    if line_modes(cfg) and cfg.format not in (None, "text"):
        out.append(f"{', '.join(line_modes(cfg))} translate(s) lines of text, but `format` is {cfg.format!r}.")
    return out


def line_modes(cfg: TranslateConfig) -> list[str]:
    """The options of `nmt-translate` that translate whole lines of text (no sentence splitting, no markup)."""
    modes = {
        "decode.n_best > 1": cfg.decode.n_best > 1,
        "alignments": cfg.alignments,
        "glossary": cfg.glossary is not None,
        "input_format=jsonl": cfg.input_format == "jsonl",
    }
    return [name for name, on in modes.items() if on]


def _train_problems(cfg: TrainConfig) -> list[str]:
    """Rules that span several groups of `nmt-train`'s config."""
    out = []
    if cfg.decode.sampling:
        out.append("`decode.sampling` must be false for training: validation BLEU uses greedy or beam search.")
    if not 0.0 <= cfg.ema_decay < 1.0:
        out.append(f"`ema_decay` must be in [0, 1) (0: off), but is {cfg.ema_decay} instead.")
    if cfg.ema_start < 0 or (cfg.ema_start and not cfg.ema_decay):
        out.append(f"`ema_start` must be >= 0, and set only with `ema_decay` > 0, but is {cfg.ema_start} instead.")
    if cfg.keep_last < 0:
        out.append(f"`keep_last` must be >= 0 (0: none), but is {cfg.keep_last} instead.")
    if cfg.trainer.trim_every < 0:
        out.append(f"`trainer.trim_every` must be >= 0 (0: never), but is {cfg.trainer.trim_every} instead.")
    if not 0 <= cfg.average_last <= cfg.keep_last:
        out.append(
            f"`average_last` must be in [0, `keep_last`] ({cfg.keep_last}): it averages checkpoints that keep_last "
            f"keeps, but is {cfg.average_last} instead."
        )
    if cfg.optim.align_weight > 0:
        out += _guided_alignment_problems(cfg)
    if cfg.model.share_all_embeddings and not cfg.tokenizer.joint:
        out.append("`model.share_all_embeddings` needs `tokenizer.joint=true`, but it is false.")
    out += _time_budget_problems(cfg)
    if cfg.optim.schedule == "linear" and cfg.optim.schedule_by == "steps" and cfg.trainer.max_steps <= 0:
        out.append(
            "`trainer.max_steps` must be > 0 with `optim.schedule=linear` (it decays to 0 there), "
            f"but is {cfg.trainer.max_steps} instead."
        )
    if cfg.trainer.precision == "16-mixed" and cfg.trainer.accelerator == "cpu":
        out.append("`trainer.precision` must be 32, bf16-mixed or auto on CPU, but is '16-mixed' instead.")
    if cfg.data.max_len + 2 > cfg.model.max_positions:
        out.append(
            f"`data.max_len` + 2 must be <= `model.max_positions` ({cfg.model.max_positions}), "
            f"but is {cfg.data.max_len + 2} instead."
        )
    return out


def _guided_alignment_problems(cfg: TrainConfig) -> list[str]:
    """Guided alignment needs word links, a layer the model has, and sources that stay the linked words."""
    out = []
    if cfg.data.train_links is None and cfg.data.prepared is None:
        out.append("`optim.align_weight` > 0 needs the training pairs' word links: set `data.train_links`.")
    if not -cfg.model.dec_layers <= cfg.optim.align_layer < cfg.model.dec_layers:
        out.append(
            f"`optim.align_layer` must name one of the {cfg.model.dec_layers} decoder layers, "
            f"but is {cfg.optim.align_layer} instead."
        )
    elif len(heads := cfg.model.dec_cross_heads) == cfg.model.dec_layers and heads[cfg.optim.align_layer] == 0:
        out.append(
            f"`optim.align_layer` {cfg.optim.align_layer} has no cross-attention heads (`model.dec_cross_heads`): "
            "its attention would be empty and every loss NaN."
        )
    if cfg.augment.synonyms is not None:
        out.append("`augment.synonyms` rewrites source words that `data.train_links` links: turn one of them off.")
    return out


def _time_budget_problems(cfg: TrainConfig) -> list[str]:
    """A schedule by time needs a budget, which alone ends the run, and takes its EMA start as a share of it
    (`ema_start` counts updates)."""
    out = []
    by_time = cfg.optim.schedule_by == "time"
    max_time = cfg.trainer.max_time
    if by_time and not (max_time is not None and _positive_duration(max_time)):
        out.append(
            "`trainer.max_time` must be a budget DD:HH:MM:SS longer than 0 with `optim.schedule_by=time` (the "
            f"schedule is shares of it), but is {max_time!r} instead."
        )
    if not 0.0 <= cfg.ema_start_fraction < 1.0 or (cfg.ema_start_fraction and not (by_time and cfg.ema_decay)):
        out.append(
            "`ema_start_fraction` must be in [0, 1), and set only with `ema_decay` > 0 and `optim.schedule_by=time`, "
            f"but is {cfg.ema_start_fraction} instead."
        )
    if by_time and cfg.ema_start:
        out.append(
            f"`ema_start` counts updates: with `optim.schedule_by=time` set `ema_start_fraction` instead, but "
            f"ema_start is {cfg.ema_start}."
        )
    if by_time and cfg.early_stopping_patience:
        out.append(
            "`early_stopping_patience` must be 0 with `optim.schedule_by=time` (the budget alone ends the run, with "
            f"the learning rate at 0), but is {cfg.early_stopping_patience} instead."
        )
    return out


def _positive_duration(max_time: str) -> bool:
    """Whether `max_time` reads as DD:HH:MM:SS (Lightning's format) and is longer than 0."""
    parts = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", max_time.strip())
    return parts is not None and any(int(part) for part in parts.groups())


def _ensemble_problems(ckpt: Any) -> list[str]:
    """A list as `ckpt` is an ensemble: it must name checkpoint files."""
    if isinstance(ckpt, list) and (not ckpt or not all(isinstance(c, str) for c in ckpt)):
        return [f"`ckpt` as a list (an ensemble) must name checkpoint files, but is {ckpt} instead."]
    return []


def _ensemble_backend_problems(ckpt: Any, backend_key: str, backends: list[str]) -> list[str]:
    """An ensemble is decoded by PyTorch: CTranslate2 runs one model."""
    if isinstance(ckpt, list) and set(backends) != {"torch"}:
        found = ", ".join(backends)
        return [f"`ckpt` as a list (an ensemble) needs `{backend_key}` torch only, but it is {found} instead."]
    return []


def _harden_problems(cfg: TranslateConfig | EvaluateConfig) -> list[str]:
    """`harden` names heads of the PyTorch model that translates, in the syntax `nmt.model.hard_attention` reads."""
    out = []
    bad = [spec for spec in cfg.harden if not _HARDEN_SPEC.fullmatch(str(spec).strip())]
    if bad:
        out.append(
            "`harden` must list specs KIND[:LAYER[:HEAD]] with KIND one of enc, dec_self, dec_cross (e.g. "
            f"dec_cross:1:3), but has {', '.join(map(repr, bad))}."
        )
    if cfg.harden and isinstance(cfg, TranslateConfig) and cfg.backend != "torch":
        out.append(f"`harden` changes the PyTorch model's attention: it needs `backend=torch`, not {cfg.backend!r}.")
    if cfg.harden and isinstance(cfg, EvaluateConfig) and cfg.hyp is not None:
        out.append("`harden` changes the model that translates the test set: it needs `ckpt`, not `hyp`.")
    return out


def _evaluate_problems(cfg: EvaluateConfig) -> list[str]:
    """`nmt-evaluate` scores either files (hyp + ref) or a checkpoint's translation of a test set."""
    out = []
    if (cfg.hyp is None) == (cfg.ckpt is None):
        out.append("give either `hyp` (with `ref`) to score a file, or `ckpt` to translate a test set and score it.")
    if cfg.hyp is not None and not reference_paths(cfg):
        out.append("`ref` must name at least one reference file when `hyp` is given.")
    if cfg.bootstrap == 1 or cfg.bootstrap < 0:
        out.append(f"`bootstrap` must be 0 (off) or >= 2, but is {cfg.bootstrap} instead.")
    if cfg.baseline is not None and cfg.hyp is None:
        out.append("`baseline` needs `hyp`: significance compares two hypothesis files.")
    if cfg.ckpt is not None and cfg.ref is not None:
        out.append("`ref` scores `hyp`: with `ckpt` the references are the test split's (choose it: data=, split=).")
    if cfg.hyp is not None:
        unused = [key for key in ("split", "output") if getattr(cfg, key) is not None]
        out += [f"`{key}` needs `ckpt` (it names what ckpt translates), not `hyp`." for key in unused]
    return out


def _serve_problems(cfg: ServeConfig) -> list[str]:
    """`nmt-serve`'s bounds must leave room for a request, and its search must not depend on the batch."""
    out = []
    if cfg.decode.sampling:
        out.append("`decode.sampling` must be false for nmt-serve: a sample would depend on the requests before it.")
    for key in ("max_queue_tokens", "max_body_bytes", "max_chars", "max_lines", "max_beam_size"):
        if getattr(cfg, key) < 1:
            out.append(f"`{key}` must be >= 1, but is {getattr(cfg, key)} instead.")
    if cfg.switch_interval_ms <= 0:
        out.append(f"`switch_interval_ms` must be > 0, but is {cfg.switch_interval_ms} instead.")
    if not 0 <= cfg.join_share <= 1:
        out.append(f"`join_share` must be in [0, 1], but is {cfg.join_share} instead.")
    for key in ("max_wait_ms", "request_timeout", "shutdown_grace", "keep_alive"):
        if getattr(cfg, key) < 0:
            out.append(f"`{key}` must be >= 0, but is {getattr(cfg, key)} instead.")
    if not 0 <= cfg.max_alternatives < cfg.max_beam_size:
        out.append(
            f"`max_alternatives` must be in [0, `max_beam_size`) ({cfg.max_beam_size}), "
            f"but is {cfg.max_alternatives} instead."
        )
    if cfg.decode.beam_size > cfg.max_beam_size:
        out.append(
            f"`decode.beam_size` must be <= `max_beam_size` ({cfg.max_beam_size}), but is {cfg.decode.beam_size}."
        )
    if not 0 < cfg.port < 65536:
        out.append(f"`port` must be in [1, 65535], but is {cfg.port} instead.")
    return out + _splitting_problems(cfg)
