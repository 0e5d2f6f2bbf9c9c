"""The encoder-decoder Transformer (Vaswani et al. 2017) with an explicit incremental-decoding cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import ConfigError, ModelConfig
from nmt.model.attention import MultiHeadAttention
from nmt.model.embedding import Embedding
from nmt.model.layers import DecoderLayer, EncoderLayer

JOIN_SLACK = 32  # positions a cache grown for joining sources keeps beyond their need, so later joins rarely copy it


@dataclass
class DecoderCache:
    """What incremental decoding keeps between steps: a plain container of buffers, one per layer.

    R decoder rows (e.g. hypotheses) come in groups of G = R / N consecutive rows that read
    the same one of N sources (e.g. sentences); `reorder_` follows the caller's choice of rows.
    The self-attention buffers are allocated once for `T_max` positions and written in place,
    so a step copies nothing that is already there. Layers may differ in heads (a pruned model).

    Sources can join a running cache (`join_`, continuous batching): their rows start at the current buffer
    position, which `starts` records; a row's token at buffer position p is at sentence position p - start,
    and the keys before its start are hidden from it.
    """

    self_kv: list[Tensor]  # per layer [2,R,H,T_max,D/H]: keys and values; positions < length are filled
    spare: list[Tensor]  # the same shapes: where `reorder_` writes, then the two swap
    cross_kv: list[Tensor]  # per layer [2,N,H,S,D/H]: the memory projected once per source
    src_pad_mask: Tensor  # [N,S] True at source padding
    rows: int  # R: live decoder rows (the first `rows` of the buffers)
    length: int = 0  # buffer positions written so far (target tokens decoded, for rows that start at 0)
    cross_attn: Tensor | None = None  # [R,S]: the last step's cross-attention, if requested
    starts: Tensor | None = None  # [R] the buffer position of each row's first token; None: 0 for every row

    def past(self, layer: int) -> tuple[Tensor, Tensor]:
        """The self-attention key and value buffers of one layer, [R,H,T_max,D/H] each."""
        return self.self_kv[layer][0, : self.rows], self.self_kv[layer][1, : self.rows]

    def memory(self, layer: int) -> tuple[Tensor, Tensor]:
        """The projected memory of one layer, [N,H,S,D/H] each."""
        return self.cross_kv[layer][0], self.cross_kv[layer][1]

    def positions(self) -> int | Tensor:
        """The sentence position of the next token: one for every row, or [R] where rows joined at different steps."""
        return self.length if self.starts is None else self.length - self.starts

    def hidden_past(self) -> Tensor | None:
        """[R,length+1] True at the self-attention keys the next step may not see (before a row's start), or None."""
        if self.starts is None:
            return None
        return torch.arange(self.length + 1, device=self.starts.device) < self.starts[:, None]  # [T] < [R,1]

    def reorder_(self, rows: Tensor, sources: Tensor | None = None) -> None:
        """Keep decoder rows `rows` [R'] in that order (beam reordering, dropping rows), in place.

        Where rows start at different positions (`starts`), the positions before every kept row's start are
        dropped on the way (the copy happens anyway), so the buffers hold no more than the oldest row needs, and the
        memories are cut to the longest kept source.

        Args:
            rows: indices into the current R rows; at most as many as `start_decoding` allocated,
                and possibly more than R (rows fanned out: the same index several times).
            sources: the N' sources the kept rows read, when some are dropped (None: the same N);
                the kept rows must come in groups of R' / N' per source, in this order.
        """
        n, t, unused = rows.numel(), self.length, 0
        if n > self.spare[0].size(1):
            raise ValueError(f"a cache allocated for {self.spare[0].size(1)} rows cannot hold {n} rows.")
        if self.starts is not None:
            starts = self.starts.index_select(0, rows)
            unused = int(starts.min()) if n else t
            self.starts = starts - unused
        for kv, spare in zip(self.self_kv, self.spare, strict=True):
            torch.index_select(kv[:, : self.rows, :, unused:t], 1, rows, out=spare[:, :n, :, : t - unused])
        self.self_kv, self.spare, self.rows, self.length = self.spare, self.self_kv, n, t - unused
        if self.cross_attn is not None:
            self.cross_attn = self.cross_attn.index_select(0, rows)
        if sources is not None:
            mask = self.src_pad_mask.index_select(0, sources)
            # Where sources joined (`starts`), the memories stay padded to the longest source that ever joined:
            # cut them to the longest kept one (sources are padded at the end). Not otherwise, where the width
            # is the batch's and the search's attention keeps its shape.
            width = int(mask.logical_not().sum(1).max()) if self.starts is not None and n else mask.size(1)
            self.cross_kv = [kv[:, :, :, :width].index_select(1, sources) for kv in self.cross_kv]
            self.src_pad_mask = mask[:, :width]

    def join_(self, cross_kv: list[Tensor], src_pad_mask: Tensor, group: int, room: int) -> None:
        """Add N' sources, G = `group` rows each, that start at the current position (continuous batching).

        Args:
            cross_kv: their memory projected for every layer, [2,N',H,S',D/H] each (as `start_decoding` makes it);
                the memories of old and new sources are padded to the longer of S and S'.
            src_pad_mask: [N',S'] True at their padding.
            group: rows per new source; must equal the cache's R / N while it holds rows.
            room: buffer positions the new rows need from the current one (their longest output and its EOS).
        """
        rows, added = self.rows, src_pad_mask.size(0) * group
        if rows and rows != group * self.src_pad_mask.size(0):
            raise ValueError(f"sources with {group} rows each cannot join a cache of {rows} rows.")
        width = max(self.src_pad_mask.size(1), src_pad_mask.size(1))
        self.cross_kv = [
            torch.cat([_widen_memory(old, width), _widen_memory(new, width)], 1)
            for old, new in zip(self.cross_kv, cross_kv, strict=True)
        ]
        masks = (self.src_pad_mask, src_pad_mask)
        self.src_pad_mask = torch.cat([F.pad(mask, (0, width - mask.size(1)), value=True) for mask in masks])
        starts = self.starts if self.starts is not None else self.src_pad_mask.new_zeros(rows, dtype=torch.long)
        capacity = self.self_kv[0].shape[1], self.self_kv[0].shape[3]  # rows, positions
        if rows + added > capacity[0] or self.length + room > capacity[1]:
            unused = int(starts.min()) if rows else self.length  # positions before every row's start
            grown = capacity[0] if rows + added <= capacity[0] else max(rows + added, capacity[0] * 3 // 2)
            # Room past the current position for the new rows and for the old ones, whose need reaches the old end.
            self._reallocate(grown, unused, max(room, capacity[1] - self.length) + JOIN_SLACK)
            starts = starts - unused
        for kv in self.self_kv:
            kv[:, rows : rows + added, :, : self.length] = 0  # hidden from the new rows, but read (weight 0): no NaN
        self.cross_attn = None  # the last step's, of the rows before these joined
        self.rows = rows + added
        self.starts = torch.cat([starts, starts.new_full((added,), self.length)])

    def _reallocate(self, rows: int, unused: int, room: int) -> None:
        """New self-attention buffers for `rows` rows and `room` positions past the kept ones, which move to the
        front: the first `unused` positions (before every row's start) are dropped."""
        kept = self.length - unused
        buffers = [kv.new_empty(2, rows, kv.size(2), kept + room, kv.size(4)) for kv in self.self_kv]
        for new, old in zip(buffers, self.self_kv, strict=True):
            new[:, : self.rows, :, :kept] = old[:, : self.rows, :, unused : self.length]
        self.self_kv, self.spare, self.length = buffers, [torch.empty_like(kv) for kv in buffers], kept


def _widen_memory(kv: Tensor, width: int) -> Tensor:
    """Projected memory [2,N,H,S,D/H] padded with zeros to `width` source positions (masked as padding)."""
    return kv if kv.size(3) == width else F.pad(kv, (0, 0, 0, width - kv.size(3)))


@dataclass
class AttentionMaps:
    """Every attention weight of a teacher-forced pass, per layer, each [B,H,query,key] (H: that layer's heads)."""

    encoder: list[Tensor]  # source self-attention [B,H,S,S]
    decoder: list[Tensor]  # masked target self-attention [B,H,T,T]
    cross: list[Tensor]  # target to source [B,H,T,S]


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
        self.encoder = nn.ModuleList(EncoderLayer(cfg, heads) for heads in cfg.heads("enc"))
        self.decoder = nn.ModuleList(
            DecoderLayer(cfg, *heads) for heads in zip(cfg.heads("dec_self"), cfg.heads("dec_cross"), strict=True)
        )
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
            if isinstance(module, nn.Linear) and module.weight.numel():  # (a layer with every head pruned has none)
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
                if module.padding_idx is not None:
                    nn.init.zeros_(module.weight[module.padding_idx])
        nn.init.normal_(self.output.weight, std=std)

    def attentions(self) -> dict[tuple[str, int], MultiHeadAttention]:
        """Every attention module by (kind, layer), kinds `enc`, `dec_self`, `dec_cross` as in `ModelConfig.heads`."""
        modules = {("enc", i): layer.self_attn for i, layer in enumerate(self.encoder)}
        for i, layer in enumerate(self.decoder):
            modules["dec_self", i], modules["dec_cross", i] = layer.self_attn, layer.cross_attn
        return modules

    def param_count(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def encode(self, src: Tensor, src_pad_mask: Tensor) -> Tensor:
        """Encode `src` [B,S] (`src_pad_mask` [B,S], True at padding) into memory [B,S,D]."""
        return self._encode(src, src_pad_mask)[0]

    def _encode(self, src: Tensor, src_pad_mask: Tensor, need_attn: bool = False) -> tuple[Tensor, list[Tensor]]:
        x, weights = self.src_embed(src), []
        for layer in self.encoder:
            x, attn = layer(x, src_pad_mask, need_attn)
            weights += [attn] if need_attn else []
        return self.enc_norm(x), weights

    @overload
    def forward(
        self, src: Tensor, tgt_in: Tensor, need_attn: Literal[False] = False, attn_layer: int = -1
    ) -> Tensor: ...
    @overload
    def forward(
        self, src: Tensor, tgt_in: Tensor, need_attn: Literal[True], attn_layer: int = -1
    ) -> tuple[Tensor, Tensor]: ...

    def forward(
        self, src: Tensor, tgt_in: Tensor, need_attn: bool = False, attn_layer: int = -1
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Teacher-forced logits [B,T,V] for `tgt_in` [B,T] given `src` [B,S]; padding is `pad_id`.

        With `need_attn`, returns `(logits, attn)` instead: `attn` [B,T,S] is decoder layer `attn_layer`'s
        cross-attention averaged over heads, the only weights computed (every weight: `attention_maps`).
        """
        if not need_attn:
            return self._teacher_forced(src, tgt_in, need_attn=False)[0]
        logits, maps = self._teacher_forced(src, tgt_in, need_attn=True, cross_layer=attn_layer % len(self.decoder))
        return logits, maps.cross[0].mean(1)  # [B,H,T,S] -> [B,T,S]

    def attention_maps(self, src: Tensor, tgt_in: Tensor) -> tuple[Tensor, AttentionMaps]:
        """Teacher-forced logits [B,T,V] and every layer's attention weights, for alignments and plots."""
        return self._teacher_forced(src, tgt_in, need_attn=True)

    def _teacher_forced(
        self, src: Tensor, tgt_in: Tensor, need_attn: bool, cross_layer: int | None = None
    ) -> tuple[Tensor, AttentionMaps]:
        """Logits and, with `need_attn`, the attention weights (else empty lists): of every layer, or with
        `cross_layer` only of that decoder layer (`cross` and `decoder` then hold one map each)."""
        src_pad = src.eq(self.pad_id)  # [B,S]
        memory, encoder = self._encode(src, src_pad, need_attn and cross_layer is None)
        x, decoder, cross = self.tgt_embed(tgt_in), [], []
        for i, layer in enumerate(self.decoder):
            weights = need_attn and cross_layer in (None, i)
            x, self_attn, cross_attn = layer(x, layer.cross_attn.project_kv(memory), src_pad, need_attn=weights)
            decoder += [self_attn] if weights else []
            cross += [cross_attn] if weights else []
        logits = self.output(self.dec_norm(x))  # [B,T,D] -> [B,T,V]
        return logits, AttentionMaps(encoder, decoder, cross)

    def check_cross_attention(self, layer: int) -> None:
        """Refuse a decoder layer to read cross-attention (alignments, markup placement) from that this model
        lacks, or whose cross-attention heads were all pruned.

        Raises:
            ConfigError: naming the layer and the layers there are.
        """
        n = len(self.decoder)
        if not -n <= layer < n:
            raise ConfigError(f"the decoder layer to align must be in [{-n}, {n - 1}] for this model, but is {layer}.")
        if self.decoder[layer].cross_attn.n_heads == 0:
            raise ConfigError(
                f"decoder layer {layer} has no cross-attention heads left (pruned): align another "
                "(`align_layer`; nmt-align's `layer`)."
            )

    def start_decoding(
        self, memory: Tensor, src_pad_mask: Tensor, max_len: int, max_rows: int | None = None
    ) -> DecoderCache:
        """An empty cache for decoding up to `max_len` tokens, one row per source to begin with.

        Args:
            memory: [N,S,D] from `encode`, projected here once for every layer's cross-attention.
            src_pad_mask: [N,S] True at source padding.
            max_len: target positions to allocate, BOS included.
            max_rows: decoder rows to allocate (default N); `reorder_` may fan the rows out up to
                this many, e.g. to the K hypotheses of each sentence after beam search's first step.
        """
        n = memory.size(0)
        cross = self._project_memory(memory)
        self_kv = [
            memory.new_empty(2, max_rows or n, layer.self_attn.n_heads, max_len, layer.self_attn.head_dim)
            for layer in self.decoder
        ]
        return DecoderCache(self_kv, [torch.empty_like(kv) for kv in self_kv], cross, src_pad_mask, rows=n)

    def join_decoding(self, cache: DecoderCache, memory: Tensor, src_pad_mask: Tensor, group: int, room: int) -> None:
        """Add sources to a running cache, `group` rows each, starting at its current position (`DecoderCache.join_`).

        Args:
            memory: [N',S',D] from `encode`; src_pad_mask: [N',S'] True at padding.
            room: the most target positions a new row will use, BOS included.
        """
        cache.join_(self._project_memory(memory), src_pad_mask, group, room)

    def _project_memory(self, memory: Tensor) -> list[Tensor]:
        """The memory [N,S,D] projected for every layer's cross-attention, [2,N,H,S,D/H] each (keys, values)."""
        return [torch.stack(layer.cross_attn.project_kv(memory)) for layer in self.decoder]

    def decode_step(self, tokens: Tensor, cache: DecoderCache, need_attn: bool = False, attn_layer: int = -1) -> Tensor:
        """Extend each row by one token and score the next one; the cache advances in place.

        Args:
            tokens: [R] the last token of each row (BOS on the first step), at position `cache.positions()`.
            cache: from `start_decoding`, then as the previous step (and `reorder_`) left it; R is
                a multiple of its N sources, row r reading source r // (R / N).
            need_attn: set `cache.cross_attn` [R,S] (layer `attn_layer`, mean over heads); else it is None.
            attn_layer: the decoder layer whose cross-attention `need_attn` keeps (negative: from the top).

        Returns:
            float32 log-probabilities [R,V] of the next token.
        """
        x = self.tgt_embed(tokens[:, None], start=cache.positions())  # [R] -> [R,1] -> [R,1,D]
        kept, attn, hidden = attn_layer % len(self.decoder), None, cache.hidden_past()
        for i, layer in enumerate(self.decoder):
            x, _, weights = layer(
                x, cache.memory(i), cache.src_pad_mask, cache.past(i), cache.length, need_attn and i == kept, hidden
            )
            attn = weights if i == kept else attn
        cache.length += 1
        cache.cross_attn = None if attn is None else attn[:, :, 0].mean(1)  # [R,H,1,S] -> [R,H,S] -> [R,S]
        logits = self.output(self.dec_norm(x[:, 0]))  # [R,D] -> [R,V]
        return F.log_softmax(logits.float(), dim=-1)
