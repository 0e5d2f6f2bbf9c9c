"""Engines: what turns batches of source ids into n-best target ids, under the line handling of `Translator`.

`TorchEngine` runs the PyTorch network with `nmt.decode.search`; `nmt.ctranslate2.engine` has one for
CTranslate2 models. An engine sees only non-empty sources that fit its length, already batched.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from nmt.checkpoint import Checkpoint, CheckpointError, SpecialIds
from nmt.config import ConfigError, DecodeConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decode.constrained import constrained_search
from nmt.decode.constraints import ConstraintBatch, Constraints, greedy_width
from nmt.decode.continuous import ContinuousSearch, NBest, padded, supports
from nmt.decode.ensemble import Ensemble
from nmt.decode.precision import model_for
from nmt.decode.sampling import sample_search
from nmt.decode.search import SearchResult, beam_search, greedy_search
from nmt.decode.spelling import Spelling
from nmt.model import Transformer


class Engine(Protocol):
    """Translates batches of source ids; `Translator` does everything around it."""

    device: torch.device
    max_src_len: int  # longest source it takes, in subword tokens without EOS

    def translate_ids(
        self, srcs: list[list[int]], cfg: DecodeConfig, constraints: list[Constraints | None] | None = None
    ) -> list[NBest]:
        """The n-best list of each source (ids without EOS), in order; a list may be empty.

        `constraints`: each source's target-side constraints (`nmt.decode.constraints`), or None."""
        ...


def load_model(ckpt: Checkpoint, path: str | Path) -> tuple[Transformer, Tokenizer]:
    """The network (on CPU, in eval mode) and tokenizer of a loaded checkpoint, checked against each other."""
    tokenizer = Tokenizer.from_bytes(ckpt.tokenizer)
    if (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) != (ckpt.src_vocab_size, ckpt.tgt_vocab_size):
        raise CheckpointError(
            f"checkpoint {path}: its tokenizer has vocabularies {tokenizer.src_vocab_size}/"
            f"{tokenizer.tgt_vocab_size} but the model expects {ckpt.src_vocab_size}/{ckpt.tgt_vocab_size}."
        )
    model = Transformer(ckpt.model_config, ckpt.src_vocab_size, ckpt.tgt_vocab_size, ckpt.pad_id)
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path}: weights do not fit the model config: {err}") from err
    return model.eval(), tokenizer


class TorchEngine:
    """The PyTorch network with greedy search, beam search or sampling, at the precision each batch asks for.

    Args:
        model: the network (or an ensemble of networks), already on `device` and in eval mode.
        special_ids: the ids of padding, BOS and EOS.
        device: where the tensors go.
        spelling: the target vocabulary's characters, which constraints need (None: decoding without them).
    """

    def __init__(
        self,
        model: Transformer | Ensemble,
        special_ids: SpecialIds,
        device: torch.device,
        spelling: Spelling | None = None,
    ) -> None:
        self.model = model
        self.special_ids = special_ids
        self.device = device
        self.spelling = spelling
        self.max_src_len = model.cfg.max_positions - 1  # room for EOS
        self._models: dict[str, Transformer | Ensemble] = {}  # the network of each precision, made on first use
        self._generators: dict[int, torch.Generator] = {}  # sampling's random streams, by seed

    def translate_ids(
        self, srcs: list[list[int]], cfg: DecodeConfig, constraints: list[Constraints | None] | None = None
    ) -> list[NBest]:
        """Pad the sources, each with EOS appended, into one batch and search it (under `constraints`, if any)."""
        result = self.search(padded(srcs, self.special_ids, self.device), cfg, constraints)
        return list(zip(result.tokens, result.scores, strict=True))

    def translate_ids_attending(
        self, srcs: list[list[int]], cfg: DecodeConfig, constraints: list[Constraints | None] | None, layer: int
    ) -> tuple[list[NBest], list[list[Tensor]]]:
        """As `translate_ids`, plus each hypothesis's cross-attention in decoder `layer` (mean over heads) as the
        search computed it: [len + 1, S + 1] per hypothesis, rows its ids then EOS, columns the source then EOS.

        Raises:
            ConfigError: `layer` is not a decoder layer with cross-attention heads (of every member of an ensemble).
        """
        for member in self.model.members if isinstance(self.model, Ensemble) else [self.model]:
            member.check_cross_attention(layer)
        result = self.search(padded(srcs, self.special_ids, self.device), cfg, constraints, attn_layer=layer)
        assert result.attn is not None
        return list(zip(result.tokens, result.scores, strict=True)), [[a.cpu() for a in row] for row in result.attn]

    def continuous(self, cfg: DecodeConfig, attn_layer: int | None = None) -> ContinuousSearch | None:
        """A search that sentences join between steps (continuous batching), at `cfg.precision`, keeping the
        attention of decoder `attn_layer` for the sentences that ask; None for settings it does not take
        (`nmt.decode.continuous.supports`) and for ensembles.

        Raises:
            ConfigError: `attn_layer` is not a decoder layer with cross-attention heads.
        """
        if not supports(cfg):
            return None
        model = self._model(cfg.precision)
        if not isinstance(model, Transformer):
            return None
        if attn_layer is not None:
            model.check_cross_attention(attn_layer)
        return ContinuousSearch(model, cfg, self.special_ids, self.device, attn_layer)

    def _model(self, precision: str) -> Transformer | Ensemble:
        """The network at `precision`, made on first use."""
        if precision not in self._models:
            self._models[precision] = model_for(self.model, precision, self.device)
        return self._models[precision]

    @torch.inference_mode()
    def search(
        self,
        src: Tensor,
        cfg: DecodeConfig,
        constraints: list[Constraints | None] | None = None,
        attn_layer: int | None = None,
    ) -> SearchResult:
        """Sampling if asked, else greedy search for beam size 1 or beam search, on padded source ids [B, S].

        With any non-empty `constraints` (one per row of `src`), constrained search (greedy: beam 1, but see
        `_greedy_with_terms`); without, exactly the plain searches. `attn_layer`: keep each output's
        cross-attention in that layer."""
        model, ids = self._model(cfg.precision), self.special_ids
        pad_mask = src.eq(ids.pad)
        if constraints is not None and any(constraints):
            if cfg.sampling:
                raise ConfigError("constraints, avoid and prefix need beam or greedy search, not decode.sampling=true.")
            if cfg.beam_size == 1 and any(greedy_width(c) > 1 for c in constraints):
                return self._greedy_with_terms(src, cfg, constraints, attn_layer)
            batch = ConstraintBatch.of(constraints, src.device, cfg.ordered_constraints, self.spelling)
            return constrained_search(model, src, pad_mask, cfg, ids.bos, ids.eos, batch, attn_layer)
        if cfg.sampling:
            generator = self._generator(cfg.seed)
            return sample_search(model, src, pad_mask, cfg, ids.bos, ids.eos, generator, attn_layer)
        search = greedy_search if cfg.beam_size == 1 else beam_search
        return search(model, src, pad_mask, cfg, ids.bos, ids.eos, attn_layer)

    def _greedy_with_terms(
        self, src: Tensor, cfg: DecodeConfig, constraints: list[Constraints | None], attn_layer: int | None
    ) -> SearchResult:
        """Greedy search of a batch in which some sentences must use terms: those are searched together with
        `greedy_width` hypotheses each (as beam search of that width would, `max_sentences` x the width rows) and
        answer the best; the others greedily, exactly as without terms."""
        widths = [greedy_width(c) for c in constraints]
        parts = []
        for width in sorted(set(widths)):
            rows = [b for b, w in enumerate(widths) if w == width]
            found = self.search(src[rows], replace(cfg, beam_size=width), [constraints[b] for b in rows], attn_layer)
            parts.append((rows, found))
        return SearchResult.gathered(parts)

    def _generator(self, seed: int) -> torch.Generator:
        """The random stream of `seed`, created on first use and advancing over the batches of this engine."""
        if seed not in self._generators:
            self._generators[seed] = torch.Generator(self.device).manual_seed(seed)
        return self._generators[seed]
