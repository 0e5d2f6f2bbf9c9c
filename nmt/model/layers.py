"""Encoder and decoder layers: attention and feed-forward sublayers in residual blocks."""

from torch import Tensor, nn

from nmt.config import ModelConfig
from nmt.model.attention import MultiHeadAttention

KeyValue = tuple[Tensor, Tensor]  # keys and values, each [B,H,S,D/H]


class FeedForward(nn.Module):
    """Position-wise FFN: Linear(D, d_ff), activation, dropout, Linear(d_ff, D) (Vaswani et al. 2017, 3.3)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.act = nn.ReLU() if cfg.activation == "relu" else nn.GELU()
        self.dropout = nn.Dropout(cfg.act_dropout)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.dropout(self.act(self.up(x))))


class Residual(nn.Module):
    """LayerNorm, dropout and the residual connection around one sublayer f.

    Post-norm computes LN(x + f(x)) as in Vaswani et al. 2017; pre-norm computes x + f(LN(x)),
    which keeps gradients well scaled in deep stacks (Xiong et al. 2020) and so needs a final
    LayerNorm after the last layer.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre_norm = cfg.norm == "pre"
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def before(self, x: Tensor) -> Tensor:
        """The sublayer's input."""
        return self.norm(x) if self.pre_norm else x

    def after(self, x: Tensor, h: Tensor) -> Tensor:
        """Add the sublayer's output `h` to the residual stream `x`."""
        x = x + self.dropout(h)
        return x if self.pre_norm else self.norm(x)


def _attention(cfg: ModelConfig, heads: int) -> MultiHeadAttention:
    return MultiHeadAttention(
        cfg.d_model,
        heads,
        cfg.attention,
        cfg.attn_dropout,
        cfg.d_model // cfg.n_heads,
        weights=cfg.attention_weights,
        topk=cfg.attention_topk,
    )


class EncoderLayer(nn.Module):
    """Self-attention over the source, then the FFN; `heads` of width D/`cfg.n_heads` (fewer once pruned)."""

    def __init__(self, cfg: ModelConfig, heads: int):
        super().__init__()
        self.self_attn, self.self_res = _attention(cfg, heads), Residual(cfg)
        self.ff, self.ff_res = FeedForward(cfg), Residual(cfg)

    def forward(self, x: Tensor, src_pad: Tensor, need_attn: bool = False) -> tuple[Tensor, Tensor | None]:
        """`x` [B,S,D], `src_pad` [B,S] True at padding; returns [B,S,D] and (with `need_attn`) weights [B,H,S,S]."""
        h = self.self_res.before(x)
        h, attn = self.self_attn(h, *self.self_attn.project_kv(h), key_pad=src_pad, need_weights=need_attn)
        x = self.self_res.after(x, h)
        return self.ff_res.after(x, self.ff(self.ff_res.before(x))), attn


class DecoderLayer(nn.Module):
    """Masked self-attention over the target, cross-attention to the source, then the FFN.

    `self_heads` and `cross_heads` heads of width D/`cfg.n_heads` (fewer once pruned).
    """

    def __init__(self, cfg: ModelConfig, self_heads: int, cross_heads: int):
        super().__init__()
        self.self_attn, self.self_res = _attention(cfg, self_heads), Residual(cfg)
        self.cross_attn, self.cross_res = _attention(cfg, cross_heads), Residual(cfg)
        self.ff, self.ff_res = FeedForward(cfg), Residual(cfg)

    def forward(
        self,
        x: Tensor,
        memory_kv: KeyValue,
        src_pad: Tensor,
        past: KeyValue | None = None,
        length: int = 0,
        need_attn: bool = False,
        past_pad: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Run the layer on target states `x` [B*G,T,D] (G rows per memory row, see `MultiHeadAttention`).

        Args:
            memory_kv: the encoder memory projected by `self.cross_attn.project_kv`, [B,H,S,D/H] each.
            src_pad: [B,S] True at source padding.
            past: None for teacher forcing (causal mask over `x`); for incremental decoding (T = 1),
                preallocated self-attention key and value buffers [B*G,H,T_max,D/H] holding the
                `length` earlier tokens: `x`'s key and value are written at position `length` in place,
                and `x` attends to all `length + 1`.
            need_attn: also return the attention weights.
            past_pad: with `past`, [B*G,length+1] True at the keys a row may not see (those written before the
                row joined the decoding: continuous batching); None: every row sees all `length + 1`.

        Returns:
            The new states [B*G,T,D], and the self-attention [B*G,H,T,T'] and cross-attention [B*G,H,T,S]
            weights, or None and None.
        """
        h = self.self_res.before(x)
        k, v = self.self_attn.project_kv(h)
        if past is not None:
            past[0][:, :, length] = k[:, :, 0]  # [B*G,H,1,D/H] into [B*G,H,T_max,D/H]
            past[1][:, :, length] = v[:, :, 0]
            k, v = past[0][:, :, : length + 1], past[1][:, :, : length + 1]
        h, self_attn = self.self_attn(h, k, v, key_pad=past_pad, causal=past is None, need_weights=need_attn)
        x = self.self_res.after(x, h)
        h, cross_attn = self.cross_attn(self.cross_res.before(x), *memory_kv, key_pad=src_pad, need_weights=need_attn)
        x = self.cross_res.after(x, h)
        return self.ff_res.after(x, self.ff(self.ff_res.before(x))), self_attn, cross_attn
