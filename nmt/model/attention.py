"""Multi-head attention with three scoring functions and one masking convention.

Masks: `key_pad` [B,S] is True at padding keys (encoder self-attention, cross-attention);
`causal` hides later positions (decoder self-attention under teacher forcing). The dot-product
scores go through `F.scaled_dot_product_attention`, which picks a fused kernel (flash or
memory-efficient) and never materialises the [B,H,T,S] weights; the explicit path serves the
additive score, requests for the weights, and incremental decoding, where a key row has at
most a few queries and two small batched products beat the fused kernel's setup on CPU
(docs/engines.md, "Attention with few queries"), and bfloat16 on CPU, where the fused kernel is the slower one
(docs/scale.md, "Where the training step's time goes").

Heads can be gated (Michel et al. 2019): `head_gate` [H] scales each head's output, so a gate of 0
silences a head and the gradient of the loss with respect to a gate of 1 measures its importance.
A pruned layer simply has fewer heads of the same width (see `nmt.model.head_removal`).

Scores become weights by softmax, or by a sparser map chosen per model (`weights`): entmax-1.5 or sparsemax
(Peters et al. 2019; Martins & Astudillo 2016; the `entmax` package), softmax over the k best keys (`topk`), or
hard attention trained with a straight-through estimator (`hard`: the forward pass is a one-hot on the best key,
the backward pass softmax's gradient). Disallowed keys score -inf before any of them, so none can be chosen.
Only softmax runs in the fused kernel.

Heads can be hardened, as a probe of a trained model (`nmt.model.hard_attention`): `hard_heads` [H] bool
replaces those heads' weights by a one-hot on the highest-scoring allowed key (the first of equal ones), so
each of them passes on one value. Only a module with hardened heads leaves the fused kernel, which has no
weights to replace.
"""

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KINDS = ("scaled_dot", "dot", "additive")
WEIGHTS = ("softmax", "entmax15", "sparsemax", "topk", "hard")
FEW_QUERIES = 8  # queries per key row (G*T) up to which the explicit path is the faster one


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, 3.2.2), for self- and cross-attention.

    Keys and values are projected by `project_kv` and passed to `forward`, so a decoder can
    project the encoder memory once and grow its self-attention keys step by step. Several
    consecutive query rows may share one row of keys (G = query rows / key rows, e.g. the
    hypotheses of one sentence in beam search): the memory is then projected and stored once per
    sentence, not once per hypothesis.

    Args:
        d_model: model width D, split into `n_heads` heads of width D/H.
        n_heads: number of heads H.
        kind: the score of a query q and a key k: `scaled_dot` q·k/sqrt(D/H) (Vaswani et al. 2017),
            `dot` q·k (Luong et al. 2015), or `additive` v·tanh(q + k) (Bahdanau et al. 2015).
        dropout: dropout on the attention weights, active only in training.
        head_dim: width of each head (default D/H); a pruned layer keeps the width and has fewer heads,
            possibly none (its output is then the output projection's bias).
        weights: how scores become weights, one of `WEIGHTS` (see the module docstring).
        topk: keys each query keeps with `weights="topk"`.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        kind: str = "scaled_dot",
        dropout: float = 0.0,
        head_dim: int | None = None,
        weights: str = "softmax",
        topk: int = 4,
    ):
        super().__init__()
        if head_dim is None and d_model % n_heads:
            raise ValueError(f"`d_model` must be divisible by `n_heads` ({n_heads}), but is {d_model} instead.")
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, but is {kind!r} instead.")
        if weights not in WEIGHTS:
            raise ValueError(f"`weights` must be one of {', '.join(WEIGHTS)}, but is {weights!r} instead.")
        self.n_heads = n_heads
        self.weights, self.topk = weights, topk
        self.head_dim = head_dim or d_model // n_heads
        self.kind = kind
        self.dropout = dropout
        self.head_gate: Tensor | None = None  # [H] multiplies each head's output when set (not saved)
        # [H] bool: heads whose weights become a one-hot on their argmax when set; a buffer, so it follows
        # `.to(device)`, but not saved
        self.hard_heads: Tensor | None
        self.register_buffer("hard_heads", None, persistent=False)
        # Dividing by sqrt(d) keeps the logits' variance near 1 as d grows (Vaswani et al. 2017, 3.2.1).
        self.scale = self.head_dim**-0.5 if kind == "scaled_dot" else 1.0
        inner = n_heads * self.head_dim
        with warnings.catch_warnings():  # every head pruned: empty projections, which torch warns it cannot init
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.q_proj = nn.Linear(d_model, inner)
            self.k_proj = nn.Linear(d_model, inner)
            self.v_proj = nn.Linear(d_model, inner)
            self.out_proj = nn.Linear(inner, d_model)
        if kind == "additive":
            # Bahdanau's W_q q + W_k k is the sum of the query and key projections; `score_v` is v, per head.
            self.score_v = nn.Parameter(torch.randn(n_heads, self.head_dim) * self.head_dim**-0.5)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of `x` [B,S,D], each [B,H,S,D/H]."""
        return self._split_heads(self.k_proj(x)), self._split_heads(self.v_proj(x))

    def forward(
        self,
        x: Tensor,
        k: Tensor,
        v: Tensor,
        key_pad: Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from queries `x` [B*G,T,D] to keys `k` and values `v` [B,H,S,D/H] from `project_kv`.

        Args:
            key_pad: [B,S] bool, True where a key is padding. A row of all padding gives zeros.
            causal: hide key j from query i when j > i (needs T == S and G == 1).
            need_weights: also return the attention weights; takes the slower explicit path.

        Returns:
            The output [B*G,T,D] and the weights [B*G,H,T,S] (None unless `need_weights`).
        """
        rows, t = x.shape[:2]
        if self.n_heads == 0:  # every head pruned: nothing to attend with
            weights = x.new_zeros(rows, 0, t, k.size(2)) if need_weights else None
            return self.out_proj(x.new_zeros(rows, t, 0)), weights
        groups = rows // k.size(0)
        if groups * k.size(0) != rows or (groups > 1 and causal):
            raise ValueError(f"{rows} query rows cannot share {k.size(0)} key rows (causal: {causal}).")
        q = self._split_heads(self.q_proj(x))  # [B*G,H,T,D/H]
        if groups > 1:  # the G query rows of a key row become G*T queries of it
            q = q.unflatten(0, (-1, groups)).transpose(1, 2).flatten(2, 3)  # [B,G,H,T,d] -> [B,H,G*T,d]
        s = k.size(2)
        p = self.dropout if self.training else 0.0
        weights = None
        fused = self.kind != "additive" and self.weights == "softmax" and not need_weights and self.hard_heads is None
        if fused and _fused_pays(q):
            only_causal = causal and key_pad is None  # the flash kernel takes this as a flag, not a mask
            mask = None if only_causal else _allowed(key_pad, causal, t, s, q.device)
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=p, is_causal=only_causal, scale=self.scale
            )
        else:
            weights = self._weights(q, k, _allowed(key_pad, causal, t, s, q.device))
            out = F.dropout(weights, p, self.training) @ v  # [B,H,T,S] @ [B,H,S,D/H] -> [B,H,T,D/H]
        if self.head_gate is not None:
            out = out * self.head_gate.to(out.dtype)[:, None, None]  # [B,H,T,D/H] * [H,1,1]
        if key_pad is not None:
            empty = key_pad.all(-1)[:, None, None, None]  # [B] -> [B,1,1,1]
            out = out.masked_fill(empty, 0.0)
            weights = None if weights is None else weights.masked_fill(empty, 0.0)
        if groups > 1:
            out, weights = (None if w is None else _ungroup(w, groups, t) for w in (out, weights))
        out = out.transpose(1, 2).flatten(2)  # [B,H,T,D/H] -> [B,T,H,D/H] -> [B,T,D]
        return self.out_proj(out), weights if need_weights else None

    def _split_heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # [B,T,D] -> [B,H,T,D/H]

    def _weights(self, q: Tensor, k: Tensor, allowed: Tensor | None) -> Tensor:
        """The weights over keys of the scores, [B,H,T,S]; disallowed keys get weight 0; hard heads a one-hot."""
        if self.kind == "additive":
            hidden = torch.tanh(q[:, :, :, None] + k[:, :, None])  # [B,H,T,1,d] + [B,H,1,S,d] -> [B,H,T,S,d]
            scores = (hidden * self.score_v[:, None, None]).sum(-1)  # [B,H,T,S,d] * [H,1,1,d] -> [B,H,T,S]
        else:
            scores = (q @ k.transpose(-2, -1)) * self.scale  # [B,H,T,d] @ [B,H,d,S] -> [B,H,T,S]
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        weights = normalise(scores.float(), self.weights, self.topk).to(q.dtype)
        if self.hard_heads is None:
            return weights
        # The argmax of the scores, not of the rounded weights: a disallowed key (-inf) is never chosen, and
        # argmax takes the first of equal scores. Every row allows a key (`_allowed`).
        hard = F.one_hot(scores.argmax(-1), scores.size(-1)).to(weights.dtype)  # [B,H,T] -> [B,H,T,S]
        return torch.where(self.hard_heads[:, None, None], hard, weights)  # [H,1,1] picks per head


def _fused_pays(q: Tensor) -> bool:
    """Whether the fused kernel beats the explicit path for queries `q` [B,H,T,d]: more than a few queries per key
    row, and not bfloat16 on CPU (docs/scale.md, "Where the training step's time goes")."""
    return q.size(2) > FEW_QUERIES and not (q.device.type == "cpu" and q.dtype == torch.bfloat16)


def normalise(scores: Tensor, how: str, topk: int = 4) -> Tensor:
    """Weights over the last dimension of `scores` (-inf at disallowed keys, at least one allowed per row), by
    one of `WEIGHTS`; each row sums to 1.

    Raises:
        ImportError: entmax15 or sparsemax without the `entmax` package (`check` refuses such a config first).
    """
    if how == "softmax":
        return scores.softmax(-1)
    if how == "topk":
        kept = scores.topk(min(topk, scores.size(-1)), dim=-1)
        return torch.full_like(scores, float("-inf")).scatter(-1, kept.indices, kept.values).softmax(-1)
    if how == "hard":  # one-hot forward, softmax backward (straight-through)
        soft = scores.softmax(-1)
        return F.one_hot(scores.argmax(-1), scores.size(-1)).to(soft.dtype) + (soft - soft.detach())
    try:
        import entmax
    except ImportError as err:
        raise ImportError(
            f'attention weights {how} need the entmax package: pip install "nmt-toolkit[entmax]".'
        ) from err
    return entmax.entmax15(scores, dim=-1) if how == "entmax15" else entmax.sparsemax(scores, dim=-1)


def _ungroup(x: Tensor, groups: int, t: int) -> Tensor:
    """Undo the query grouping of `forward`: [B,H,G*T,...] -> [B*G,H,T,...]."""
    x = x.unflatten(2, (groups, t)).transpose(1, 2)  # [B,H,G,T,...] -> [B,G,H,T,...]
    return x.flatten(0, 1)


def _allowed(key_pad: Tensor | None, causal: bool, t: int, s: int, device: torch.device) -> Tensor | None:
    """Boolean mask, True where a query may attend a key, broadcastable to [B,H,T,S]; None if all may."""
    allowed = None
    if key_pad is not None:
        # A row of all padding (an empty source) would softmax over nothing and give NaN; let it attend
        # everywhere here, and `forward` zeroes its output.
        allowed = (~key_pad | key_pad.all(-1, keepdim=True))[:, None, None, :]  # [B,S] -> [B,1,1,S]
    if causal:
        tril = torch.ones(t, s, dtype=torch.bool, device=device).tril()  # [T,S]
        allowed = tril if allowed is None else allowed & tril
    return allowed
