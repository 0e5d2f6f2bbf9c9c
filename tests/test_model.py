"""Properties of the Transformer: masks, padding, incremental decoding, tying, precision, presets."""

import math
from pathlib import Path

import pytest
import torch
import yaml

from nmt.config import ModelConfig, check
from nmt.model import MultiHeadAttention, Transformer
from nmt.model.attention import FEW_QUERIES, _fused_pays

V, PAD = 23, 0
KINDS = ["scaled_dot", "dot", "additive"]
CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def make_model(seed: int = 0, src_vocab: int = V, **overrides) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=32, n_heads=4, enc_layers=2, dec_layers=2, d_ff=64, **overrides)
    return Transformer(cfg, src_vocab, V, PAD)


def make_batch(seed: int = 1, b: int = 4, s: int = 7, t: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids; row 1 is padded after 4 tokens and the last row is all padding."""
    torch.manual_seed(seed)
    src = torch.randint(1, V, (b, s))
    src[1, 4:] = PAD
    src[-1] = PAD
    return src, torch.randint(1, V, (b, t))


def decode_all(model: Transformer, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
    """Log-probs [B,T,V] from a `decode_step` loop over the teacher-forced inputs."""
    src_pad = src.eq(PAD)
    cache = model.start_decoding(model.encode(src, src_pad), src_pad, max_len=tgt_in.size(1))
    return torch.stack([model.decode_step(tgt_in[:, t], cache) for t in range(tgt_in.size(1))], dim=1)


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("kind", KINDS)
def test_forward_shapes_and_finite_with_padding(kind: str, norm: str) -> None:
    model = make_model(attention=kind, norm=norm, attn_dropout=0.1, act_dropout=0.1).train()
    src, tgt_in = make_batch()
    logits = model(src, tgt_in)
    assert logits.shape == (4, 5, V)
    assert logits.dtype == torch.float32
    assert logits.isfinite().all()
    logits.logsumexp(-1).sum().backward()
    assert all(p.grad.isfinite().all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("kind", KINDS)
def test_causal_mask_hides_future_tokens(kind: str) -> None:
    model = make_model(attention=kind).eval()
    src, tgt_in = make_batch()
    changed = tgt_in.clone()
    changed[:, -1] = (changed[:, -1] % (V - 1)) + 1  # a different non-pad token
    with torch.no_grad():
        before, after = model(src, tgt_in), model(src, changed)
    torch.testing.assert_close(before[:, :-1], after[:, :-1], atol=1e-6, rtol=0)
    assert not torch.allclose(before[:, -1], after[:, -1])


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("kind", KINDS)
def test_source_padding_does_not_change_outputs(kind: str, norm: str) -> None:
    model = make_model(attention=kind, norm=norm).eval()
    src, tgt_in = make_batch(b=3, s=6)
    src[:] = torch.randint(1, V, src.shape)
    padded = torch.cat([src, torch.full((3, 4), PAD)], dim=1)
    with torch.no_grad():
        memory = model.encode(src, src.eq(PAD))
        memory_padded = model.encode(padded, padded.eq(PAD))
        torch.testing.assert_close(memory_padded[:, :6], memory, atol=1e-5, rtol=0)
        torch.testing.assert_close(model(padded, tgt_in), model(src, tgt_in), atol=1e-5, rtol=0)


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
@pytest.mark.parametrize("kind", KINDS)
def test_incremental_decoding_matches_forward(kind: str, positions: str, norm: str) -> None:
    model = make_model(attention=kind, positions=positions, norm=norm).eval()
    src, tgt_in = make_batch()
    with torch.no_grad():
        full = model(src, tgt_in).float().log_softmax(-1)
        steps = decode_all(model, src, tgt_in)
    assert steps.dtype == torch.float32
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)


def reference_attention(
    mha: MultiHeadAttention, x: torch.Tensor, mem: torch.Tensor, key_pad: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """softmax(score(Q, K)) V written out, with -inf at masked keys."""
    b, t, d = x.shape
    h, dh = mha.n_heads, d // mha.n_heads
    q = mha.q_proj(x).view(b, t, h, dh).transpose(1, 2)
    k = mha.k_proj(mem).view(b, -1, h, dh).transpose(1, 2)
    v = mha.v_proj(mem).view(b, -1, h, dh).transpose(1, 2)
    if mha.kind == "additive":
        scores = torch.einsum("hd,bhtsd->bhts", mha.score_v, torch.tanh(q[:, :, :, None] + k[:, :, None]))
    else:
        scores = q @ k.transpose(-1, -2) / (math.sqrt(dh) if mha.kind == "scaled_dot" else 1.0)
    if key_pad is not None:
        scores = scores.masked_fill(key_pad[:, None, None, :], float("-inf"))
    if causal:
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    out = scores.softmax(-1) @ v
    return mha.out_proj(out.transpose(1, 2).reshape(b, t, d))


@pytest.mark.parametrize("queries", [5, 12])  # up to FEW_QUERIES the explicit path, past it the fused kernel
@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_attention_matches_reference(kind: str, need_weights: bool, queries: int) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, kind).eval()
    x, mem = torch.randn(3, queries, 32), torch.randn(3, 6, 32)
    key_pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2, [False] + [True] * 5])
    with torch.no_grad():
        cross, _ = mha(x, *mha.project_kv(mem), key_pad=key_pad, need_weights=need_weights)
        causal, _ = mha(x, *mha.project_kv(x), causal=True, need_weights=need_weights)
        torch.testing.assert_close(cross, reference_attention(mha, x, mem, key_pad, False), atol=1e-5, rtol=0)
        torch.testing.assert_close(causal, reference_attention(mha, x, x, None, True), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("t", [5, 12])  # queries up to FEW_QUERIES take the explicit path, more the fused kernel
def test_attention_paths_match_reference_in_each_precision(t: int, dtype: torch.dtype) -> None:
    """Both sides of the path choice (query count; bfloat16 on CPU leaves the fused kernel) compute attention."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4).eval()
    x, mem = torch.randn(3, t, 32), torch.randn(3, 6, 32)
    key_pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2, [False] + [True] * 5])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        cross, _ = mha(x, *mha.project_kv(mem), key_pad=key_pad)
        causal, _ = mha(x, *mha.project_kv(x), causal=True)
    assert cross.dtype == causal.dtype == dtype
    with torch.no_grad():
        tolerance = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(
            cross.float(), reference_attention(mha, x, mem, key_pad, False), atol=tolerance, rtol=0
        )
        torch.testing.assert_close(causal.float(), reference_attention(mha, x, x, None, True), atol=tolerance, rtol=0)


def test_fused_kernel_serves_many_queries_except_bfloat16_on_cpu() -> None:
    """The path choice itself: the test above holds for either path, so it cannot tell which one ran."""
    many, few = torch.empty(2, 4, FEW_QUERIES + 1, 8), torch.empty(2, 4, FEW_QUERIES, 8)
    assert _fused_pays(many) and not _fused_pays(few)
    assert not _fused_pays(many.bfloat16())


@pytest.mark.parametrize("kind", KINDS)
def test_attention_weights_sum_to_one_over_real_keys(kind: str) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, kind).eval()
    x, mem = torch.randn(3, 5, 32), torch.randn(3, 6, 32)
    key_pad = torch.tensor([[False] * 6, [False] * 2 + [True] * 4, [True] * 6])
    out, weights = mha(x, *mha.project_kv(mem), key_pad=key_pad, need_weights=True)
    assert weights.shape == (3, 4, 5, 6)
    torch.testing.assert_close(weights[:2].sum(-1), torch.ones(2, 4, 5))
    assert (weights[1, ..., 2:] == 0).all()
    assert (weights[2] == 0).all()  # an all-padding row attends nothing ...
    # ... and its heads output zeros, so the layer outputs out_proj(0) = bias.
    torch.testing.assert_close(out[2], mha.out_proj.bias.expand(5, 32))
    assert mha(x, *mha.project_kv(mem), key_pad=key_pad)[1] is None


WEIGHTINGS = ["softmax", "entmax15", "sparsemax", "topk", "hard"]


@pytest.mark.parametrize("weights", WEIGHTINGS)
def test_every_weighting_gives_masked_keys_nothing(weights: str) -> None:
    """Padding keys and, in self-attention, later keys get weight 0 under every weighting, including the
    positions that score highest; each row sums to 1; hard is one-hot and topk keeps at most k keys."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, "dot", weights=weights, topk=2).eval()
    x, mem = torch.randn(3, 5, 32), torch.randn(3, 6, 32)
    mem[1, 3:] = 50 * x[1].mean(0)  # padding keys that would win every query's attention
    key_pad = torch.tensor([[False] * 6, [False] * 3 + [True] * 3, [False] * 5 + [True]])
    _, w = mha(x, *mha.project_kv(mem), key_pad=key_pad, need_weights=True)
    assert (w[1, ..., 3:] == 0).all() and (w[2, ..., 5:] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 5))
    nonzero = (w > 0).sum(-1)
    assert (nonzero == 1).all() if weights == "hard" else True
    assert (nonzero <= 2).all() if weights == "topk" else True
    assert (nonzero < 6).any() if weights in ("sparsemax", "entmax15") else True  # sparse somewhere
    _, causal = mha(x, *mha.project_kv(x), causal=True, need_weights=True)
    assert (causal.masked_select(torch.ones(5, 5, dtype=torch.bool).triu(1)) == 0).all()


@pytest.mark.parametrize("weights", WEIGHTINGS)
def test_every_weighting_decodes_with_the_cache_as_in_the_forward_pass(weights: str) -> None:
    model = make_model(attention_weights=weights, attention_topk=2).eval()
    src, tgt_in = make_batch()
    with torch.no_grad():
        full = model(src, tgt_in).float().log_softmax(-1)
        steps = decode_all(model, src, tgt_in)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)


def test_hard_attention_trains_through_the_softmax_gradient() -> None:
    """The forward pass takes one key per query, the backward pass softmax's gradient: the query projection
    gets a gradient, which a plain one-hot would not give it."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, "scaled_dot", weights="hard")
    x, mem = torch.randn(2, 5, 32), torch.randn(2, 6, 32)
    out, w = mha(x, *mha.project_kv(mem), need_weights=True)
    assert ((w == 0) | (w == 1)).all()
    out.square().sum().backward()
    assert mha.q_proj.weight.grad.abs().sum() > 0 and mha.k_proj.weight.grad.abs().sum() > 0


def _sparsemax_reference(z: list[float]) -> list[float]:
    """Sparsemax by its definition (Martins & Astudillo 2016): the Euclidean projection onto the simplex."""
    ordered = sorted((x for x in z if x != float("-inf")), reverse=True)
    k = max(j for j in range(1, len(ordered) + 1) if 1 + j * ordered[j - 1] > sum(ordered[:j]))
    tau = (sum(ordered[:k]) - 1) / k
    return [max(x - tau, 0.0) for x in z]


@pytest.mark.parametrize("how", ["softmax", "topk", "hard", "sparsemax", "entmax15"])
def test_each_weighting_matches_a_reference_implementation(how: str) -> None:
    """Against torch's softmax; top-k by sorting; hard as the one-hot of the argmax; sparsemax by its
    definition; entmax-1.5 against the package's bisection algorithm (a different implementation)."""
    import entmax

    from nmt.model.attention import normalise

    torch.manual_seed(0)
    scores = torch.randn(6, 9, dtype=torch.float64) * 3
    scores[:, 5:][torch.rand(6, 4) < 0.5] = float("-inf")  # some masked keys
    got = normalise(scores, how, topk=3)
    if how == "softmax":
        expected = torch.softmax(scores, -1)
    elif how == "topk":
        kth = scores.sort(-1, descending=True).values[:, 2:3]
        expected = torch.softmax(scores.masked_fill(scores < kth, float("-inf")), -1)
    elif how == "hard":
        expected = torch.nn.functional.one_hot(scores.argmax(-1), 9).double()
    elif how == "sparsemax":
        expected = torch.tensor([_sparsemax_reference(row) for row in scores.tolist()], dtype=torch.float64)
    else:
        expected = entmax.entmax_bisect(scores, alpha=1.5, dim=-1, n_iter=200)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert (got[scores == float("-inf")] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_model_returns_cross_attention_on_request(kind: str) -> None:
    model = make_model(attention=kind).eval()
    src, tgt_in = make_batch()
    logits, attn = model(src, tgt_in, need_attn=True)
    torch.testing.assert_close(logits, model(src, tgt_in))
    assert attn.shape == (4, 5, 7)
    torch.testing.assert_close(attn[:-1].sum(-1), torch.ones(3, 5))
    assert (attn[1, :, 4:] == 0).all() and (attn[-1] == 0).all()
    src_pad = src.eq(PAD)
    memory = model.encode(src, src_pad)
    cache = model.start_decoding(memory, src_pad, max_len=2)
    model.decode_step(tgt_in[:, 0], cache, need_attn=True)
    torch.testing.assert_close(cache.cross_attn, attn[:, 0])
    model.decode_step(tgt_in[:, 1], cache)
    assert cache.cross_attn is None


def test_cache_reorder_equals_recomputation() -> None:
    model = make_model().eval()
    src, tgt_in = make_batch(b=3, t=3)
    src_pad = src.eq(PAD)
    index = torch.tensor([2, 0])  # a new order, one row dropped
    with torch.no_grad():
        cache = model.start_decoding(model.encode(src, src_pad), src_pad, max_len=3)
        for t in range(2):
            model.decode_step(tgt_in[:, t], cache)
        cache.reorder_(index, sources=index)  # one row per source: the sources follow the rows
        assert cache.rows == 2 and cache.length == 2
        log_probs = model.decode_step(tgt_in[index, 2], cache)
        with pytest.raises(ValueError, match="3 rows"):
            cache.reorder_(torch.tensor([0, 1, 1, 0]))
    expected = decode_all(model, src[index], tgt_in[index])[:, 2]
    torch.testing.assert_close(log_probs, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_grouped_rows_share_one_projected_source(kind: str) -> None:
    """K decoder rows per source (beam search) score as if each row had its own copy of the source,
    also after a source and its rows are dropped."""
    model = make_model(attention=kind).eval()
    src, tgt_in = make_batch(b=3, t=4)
    src_pad, k = src.eq(PAD), 2
    rows = torch.arange(3).repeat_interleave(k)  # [0, 0, 1, 1, 2, 2]
    tgt = tgt_in[rows]
    tgt[1::2, 1:] = tgt[1::2, 1:].flip(1)  # the second row of each source goes on with another target
    expected = decode_all(model, src[rows], tgt)  # every row with its own copy of its source
    with torch.no_grad():
        cache = model.start_decoding(model.encode(src, src_pad), src_pad, max_len=4, max_rows=6)
        assert cache.cross_kv[0].size(1) == 3 and cache.rows == 3  # the memory is projected once per source
        first = [model.decode_step(tgt[::k, 0], cache, need_attn=True).repeat_interleave(k, dim=0)]
        cache.reorder_(rows)  # after the shared first token, each source's row fans out to k rows
        first += [model.decode_step(tgt[:, t], cache, need_attn=True) for t in range(1, 3)]
        first = torch.stack(first, dim=1)
        attn = cache.cross_attn
        kept = torch.tensor([0, 1, 4, 5])  # drop the middle source and its two rows
        cache.reorder_(kept, sources=torch.tensor([0, 2]))
        last = model.decode_step(tgt[kept, 3], cache)
    torch.testing.assert_close(first, expected[:, :3], atol=1e-5, rtol=0)
    torch.testing.assert_close(last, expected[kept, 3], atol=1e-5, rtol=0)
    assert attn.shape == (6, 7)
    torch.testing.assert_close(attn[:-2].sum(-1), torch.ones(4))  # the last source is all padding


def test_weight_tying_uses_one_parameter() -> None:
    untied = make_model(tie_output=False)
    tied = make_model()
    shared = make_model(share_all_embeddings=True)
    assert untied.output.weight is not untied.tgt_embed.tokens.weight
    assert tied.output.weight is tied.tgt_embed.tokens.weight
    assert tied.src_embed.tokens.weight is not tied.tgt_embed.tokens.weight
    assert shared.output.weight is shared.tgt_embed.tokens.weight is shared.src_embed.tokens.weight
    assert shared.output.weight.data_ptr() == shared.src_embed.tokens.weight.data_ptr()
    assert untied.param_count() - tied.param_count() == V * 32
    assert tied.param_count() - shared.param_count() == V * 32
    assert shared.param_count() == sum(p.numel() for p in set(shared.parameters()))


def test_share_all_embeddings_needs_equal_vocabularies() -> None:
    with pytest.raises(ValueError, match="`src_vocab_size` must equal `tgt_vocab_size`"):
        make_model(src_vocab=V + 1, share_all_embeddings=True)


def test_init_zeroes_padding_rows_and_scales_embeddings() -> None:
    model = make_model(tie_output=False, positions="learned")
    for embedding in (model.src_embed.tokens, model.tgt_embed.tokens):
        assert (embedding.weight[PAD] == 0).all()
        assert abs(embedding.weight[1:].std().item() - 32**-0.5) < 0.05
    assert all((layer.self_attn.q_proj.bias == 0).all() for layer in model.encoder)


@pytest.mark.parametrize("kind", KINDS)
def test_attention_dropout_only_in_training(kind: str) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, kind, dropout=0.5)
    x = torch.randn(2, 5, 32)
    kv = mha.project_kv(x)
    mha.train()
    assert not torch.allclose(mha(x, *kv)[0], mha(x, *kv)[0])
    mha.eval()
    torch.testing.assert_close(mha(x, *kv)[0], mha(x, *kv)[0], atol=0, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_autocast_gives_finite_output(kind: str) -> None:
    model = make_model(attention=kind).eval()
    src, tgt_in = make_batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(src, tgt_in)
        log_probs = decode_all(model, src, tgt_in)
    assert logits.dtype == torch.bfloat16 and logits.isfinite().all()
    assert log_probs.dtype == torch.float32 and log_probs.isfinite().all()


def test_positions_beyond_max_positions_raise() -> None:
    model = make_model(max_positions=6)
    src, tgt_in = make_batch(s=6, t=7)
    with pytest.raises(ValueError, match=r"must be <= `max_positions` \(6\), but is 7"):
        model(src, tgt_in)


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_model_presets_are_valid(path: Path) -> None:
    assert path.read_text().startswith("# ")
    cfg = check(ModelConfig(**yaml.safe_load(path.read_text())))
    assert cfg.d_model % cfg.n_heads == 0


def test_tiny_preset_builds_and_runs() -> None:
    cfg = ModelConfig(**yaml.safe_load((CONF / "tiny.yaml").read_text()))
    model = Transformer(cfg, 100, 100, PAD)
    src = torch.randint(1, 100, (2, 9))
    assert model(src, src[:, :4]).shape == (2, 4, 100)
    assert model.param_count() < 1_000_000
