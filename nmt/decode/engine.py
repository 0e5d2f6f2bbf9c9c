"""Engines: what turns batches of source ids into n-best target ids, under the line handling of `Translator`.

`TorchEngine` runs the PyTorch network with `nmt.decode.search`; `nmt.export.ctranslate2` has one for
CTranslate2 models. An engine sees only non-empty sources that fit its length, already batched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from nmt.checkpoint import Checkpoint, CheckpointError
from nmt.config import DecodeConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decode.ensemble import Ensemble
from nmt.decode.precision import model_for
from nmt.decode.search import SearchResult, beam_search, greedy_search, sample_search
from nmt.model import Transformer

NBest = tuple[list[list[int]], list[float]]  # one source's hypotheses (ids without BOS/EOS) and scores, best first


class Engine(Protocol):
    """Translates batches of source ids; `Translator` does everything around it."""

    device: torch.device
    max_src_len: int  # longest source it takes, in subword tokens without EOS

    def translate_ids(self, srcs: list[list[int]], cfg: DecodeConfig) -> list[NBest]:
        """The n-best list of each source (ids without EOS), in order; a list may be empty."""
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
        special_ids: pad, bos and eos ids.
        device: where the tensors go.
    """

    def __init__(self, model: Transformer | Ensemble, special_ids: tuple[int, int, int], device: torch.device) -> None:
        self.model = model
        self.pad_id, self.bos_id, self.eos_id = special_ids
        self.device = device
        self.max_src_len = model.cfg.max_positions - 1  # room for EOS
        self._models: dict[str, Transformer | Ensemble] = {}  # the network of each precision, made on first use
        self._generators: dict[int, torch.Generator] = {}  # sampling's random streams, by seed

    @torch.inference_mode()
    def translate_ids(self, srcs: list[list[int]], cfg: DecodeConfig) -> list[NBest]:
        """Pad the sources, each with EOS appended, into one batch and search it."""
        width = max(len(s) for s in srcs) + 1
        src = torch.full((len(srcs), width), self.pad_id, dtype=torch.long)  # [B, S]
        for row, ids in enumerate(srcs):
            src[row, : len(ids) + 1] = torch.tensor(ids + [self.eos_id])
        result = self.search(src.to(self.device), cfg)
        return list(zip(result.tokens, result.scores, strict=True))

    def search(self, src: Tensor, cfg: DecodeConfig) -> SearchResult:
        """Sampling if asked, else greedy search for beam size 1 or beam search, on padded source ids [B, S]."""
        if cfg.precision not in self._models:
            self._models[cfg.precision] = model_for(self.model, cfg.precision, self.device)
        model, pad_mask, ids = self._models[cfg.precision], src.eq(self.pad_id), (self.bos_id, self.eos_id)
        if cfg.sampling:
            return sample_search(model, src, pad_mask, cfg, *ids, generator=self._generator(cfg.seed))
        search = greedy_search if cfg.beam_size == 1 else beam_search
        return search(model, src, pad_mask, cfg, *ids)

    def _generator(self, seed: int) -> torch.Generator:
        """The random stream of `seed`, created on first use and advancing over the batches of this engine."""
        if seed not in self._generators:
            self._generators[seed] = torch.Generator(self.device).manual_seed(seed)
        return self._generators[seed]
