"""The encoder-decoder Transformer (Vaswani et al. 2017) with an explicit incremental-decoding cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import ModelConfig
from nmt.model.embedding import Embedding
from nmt.model.layers import DecoderLayer, EncoderLayer


@dataclass
class DecoderCache:
    """Per-decoder-layer keys and values for incremental decoding, each [B,H,t,D/H].

    `self_k`/`self_v` grow by one position per step (t = tokens decoded so far); `cross_k`/`cross_v`
    are the encoder memory projected once on the first step (t = S).
    """

    self_k: list[Tensor]
    self_v: list[Tensor]
    cross_k: list[Tensor]
    cross_v: list[Tensor]
    cross_attn: Tensor | None = None  # [B,S]: the last step's cross-attention, if requested

    @property
    def length(self) -> int:
        """Number of target tokens already decoded."""
        return self.self_k[0].size(2)

    def reorder(self, index: Tensor) -> DecoderCache:
        """A new cache whose row i is row `index[i]` of this one (beam reordering, dropping rows)."""

        def pick(tensors: list[Tensor]) -> list[Tensor]:
            return [t.index_select(0, index) for t in tensors]

        attn = None if self.cross_attn is None else self.cross_attn.index_select(0, index)
        return DecoderCache(pick(self.self_k), pick(self.self_v), pick(self.cross_k), pick(self.cross_v), attn)

    def reorder_beams(self, index: Tensor, sentences: Tensor | None) -> DecoderCache:
        """Beam search's cheaper `reorder`: the K beams of a sentence share their cross-attention keys and
        values, so those follow `sentences` (rows kept when sentences are dropped; None: unchanged)."""
        reordered = DecoderCache(self.self_k, self.self_v, [], [], self.cross_attn).reorder(index)
        if sentences is None:
            reordered.cross_k, reordered.cross_v = self.cross_k, self.cross_v
        else:
            reordered.cross_k = [t.index_select(0, sentences) for t in self.cross_k]
            reordered.cross_v = [t.index_select(0, sentences) for t in self.cross_v]
        return reordered


class Transformer(nn.Module):
    """Encoder-decoder Transformer: `encode` the source, then `forward` (teacher forcing) or `decode_step`.

    Args:
        cfg: shape and variants.
        src_vocab_size: source vocabulary size.
        tgt_vocab_size: target vocabulary size V.
        pad_id: the padding id in both vocabularies; masks are derived from it.
    """

    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, pad_id: int):
        super().__init__()
        if cfg.share_all_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(
                f"`src_vocab_size` must equal `tgt_vocab_size` ({tgt_vocab_size}) to share all embeddings, "
                f"but is {src_vocab_size} instead."
            )
        self.cfg = cfg
        self.pad_id = pad_id
        self.src_embed = Embedding(src_vocab_size, cfg, pad_id)
        self.tgt_embed = Embedding(tgt_vocab_size, cfg, pad_id)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        # Pre-norm leaves the residual stream unnormalised, so each stack ends in a LayerNorm.
        self.enc_norm = nn.LayerNorm(cfg.d_model) if cfg.norm == "pre" else nn.Identity()
        self.dec_norm = nn.LayerNorm(cfg.d_model) if cfg.norm == "pre" else nn.Identity()
        self.output = nn.Linear(cfg.d_model, tgt_vocab_size, bias=False)
        self._init_weights()
        # Weight tying (Press & Wolf 2017; Vaswani et al. 2017, 3.4): one Parameter, several uses.
        if cfg.tie_output:
            self.output.weight = self.tgt_embed.tokens.weight
        if cfg.share_all_embeddings:
            self.src_embed.tokens.weight = self.tgt_embed.tokens.weight

    def _init_weights(self) -> None:
        """Initialise as fairseq's transformer and the Annotated Transformer do.

        Xavier-uniform keeps each projection's output variance near its input's (Glorot & Bengio
        2010); embeddings and the output projection are N(0, D^-1/2), so that the sqrt(D)-scaled
        embeddings start at unit variance; the padding row starts at zero.
        """
        std = self.cfg.d_model**-0.5
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
                if module.padding_idx is not None:
                    nn.init.zeros_(module.weight[module.padding_idx])
        nn.init.normal_(self.output.weight, std=std)

    def param_count(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def encode(self, src: Tensor, src_pad_mask: Tensor) -> Tensor:
        """Encode `src` [B,S] (`src_pad_mask` [B,S], True at padding) into memory [B,S,D]."""
        x = self.src_embed(src)
        for layer in self.encoder:
            x = layer(x, src_pad_mask)
        return self.enc_norm(x)

    @overload
    def forward(self, src: Tensor, tgt_in: Tensor, need_attn: Literal[False] = False) -> Tensor: ...
    @overload
    def forward(self, src: Tensor, tgt_in: Tensor, need_attn: Literal[True]) -> tuple[Tensor, Tensor]: ...

    def forward(self, src: Tensor, tgt_in: Tensor, need_attn: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Teacher-forced logits [B,T,V] for `tgt_in` [B,T] given `src` [B,S]; padding is `pad_id`.

        With `need_attn`, returns `(logits, attn)` instead: `attn` [B,T,S] is the last decoder
        layer's cross-attention averaged over heads, e.g. for word alignments.
        """
        src_pad = src.eq(self.pad_id)  # [B,S]
        memory = self.encode(src, src_pad)
        x = self.tgt_embed(tgt_in)
        last = len(self.decoder) - 1
        attn = None
        for i, layer in enumerate(self.decoder):
            memory_kv = layer.cross_attn.project_kv(memory)
            x, _, attn = layer(x, memory_kv, src_pad, need_attn=need_attn and i == last)
        logits = self.output(self.dec_norm(x))  # [B,T,D] -> [B,T,V]
        if attn is None:  # need_attn is False
            return logits
        return logits, attn.mean(1)  # [B,H,T,S] -> [B,T,S]

    def decode_step(
        self,
        tokens: Tensor,
        memory: Tensor,
        src_pad_mask: Tensor,
        cache: DecoderCache | None,
        need_attn: bool = False,
    ) -> tuple[Tensor, DecoderCache]:
        """Extend each row by one token and score the next one.

        Args:
            tokens: [B] the last token of each row (BOS on the first step), at position `cache.length`.
            memory: [B,S,D] from `encode`; read only on the first step, when `cache` is None.
            src_pad_mask: [B,S] True at source padding.
            cache: None on the first step, then the cache this method returned.
            need_attn: set the returned cache's `cross_attn` [B,S] (last layer, mean over heads).

        Returns:
            float32 log-probabilities [B,V] of the next token, and the extended cache.
        """
        if cache is None:
            cache = self._start_cache(memory)
        x = self.tgt_embed(tokens[:, None], start=cache.length)  # [B] -> [B,1] -> [B,1,D]
        self_k, self_v, attn = [], [], None
        last = len(self.decoder) - 1
        for i, layer in enumerate(self.decoder):
            past = (cache.self_k[i], cache.self_v[i])
            memory_kv = (cache.cross_k[i], cache.cross_v[i])
            x, (k, v), attn = layer(x, memory_kv, src_pad_mask, past, need_attn=need_attn and i == last)
            self_k.append(k)
            self_v.append(v)
        logits = self.output(self.dec_norm(x[:, 0]))  # [B,D] -> [B,V]
        cross_attn = None if attn is None else attn[:, :, 0].mean(1)  # [B,H,1,S] -> [B,H,S] -> [B,S]
        new_cache = DecoderCache(self_k, self_v, cache.cross_k, cache.cross_v, cross_attn)
        return F.log_softmax(logits.float(), dim=-1), new_cache

    def _start_cache(self, memory: Tensor) -> DecoderCache:
        """An empty self-attention cache and the memory projected for each layer's cross-attention."""
        cross = [layer.cross_attn.project_kv(memory) for layer in self.decoder]
        cross_k, cross_v = [k for k, _ in cross], [v for _, v in cross]
        empty = [k[:, :, :0] for k in cross_k]  # [B,H,0,D/H]: same dtype and device as the keys to come
        return DecoderCache(empty, empty, cross_k, cross_v)
