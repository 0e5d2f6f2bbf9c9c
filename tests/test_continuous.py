"""Continuous batching: sentences that join a running search between its steps get the translation the batch search
gives them, whatever the step they join at, with the cache shifting and growing under them."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nmt.config import DataConfig, DecodeConfig, ModelConfig
from nmt.data.sources import get_corpus
from nmt.decode.continuous import ContinuousSearch
from nmt.decode.translator import Translator
from nmt.model import Transformer
from nmt.model.embedding import Embedding


@pytest.fixture(scope="module")
def sources(model_path) -> tuple[Translator, list[list[int]]]:
    """The tiny model and 36 test sentences of mixed lengths (single sentences, and two or three joined)."""
    translator = Translator.from_checkpoint(model_path, DecodeConfig(), device="cpu")
    src = get_corpus(DataConfig(), "test").src
    lines = [src[i] if i % 3 else " ".join(src[i : i + 2 + i % 2]) for i in range(36)]
    return translator, translator.tokenizer.encode_src(lines)


def _stream(
    search: ContinuousSearch, ids: list[list[int]], joining: list[int], attend: list[bool] | None = None
) -> tuple[dict, int]:
    """Feed `ids` to `search`, `joining[s % len(joining)]` of them before step s (those `attend` flags asking for
    their attention); their n-best lists by index (with `attend`: and attention) and the number of steps."""
    found, start, steps = {}, 0, 0
    while start < len(ids) or search.sentences:
        count = joining[steps % len(joining)]
        flags = None if attend is None else attend[start : start + count]
        search.add(ids[start : start + count], list(range(start, start + count)), flags)
        start += count
        found.update((tag, nbest if attend is None else (nbest, attn)) for tag, nbest, attn in search.step())
        steps += 1
    return found, steps


@pytest.mark.parametrize("joining", [[36], [1], [3, 0, 0, 1, 0]], ids=["all-at-once", "one-per-step", "bursts"])
@pytest.mark.parametrize(
    "decode",
    [DecodeConfig(beam_size=4, n_best=3), DecodeConfig(beam_size=1), DecodeConfig(beam_size=3, min_len=6, max_len_b=9)],
    ids=["beam", "greedy", "min-max-len"],
)
def test_joining_sentences_get_the_batch_search_translation(sources, one_thread, decode, joining):
    translator, ids = sources
    engine = translator.engine
    offline = engine.translate_ids(ids, decode)  # one batch, the batch search
    search = engine.continuous(decode)
    assert search is not None
    found, _ = _stream(search, ids, joining)
    assert sorted(found) == list(range(len(ids)))
    for i, (hyps, scores) in enumerate(offline):
        assert found[i][0] == hyps, i
        assert found[i][1] == pytest.approx(scores, abs=1e-4)
        longest = decode.max_len_a * (len(ids[i]) + 1) + decode.max_len_b  # the source counted with its EOS
        assert all(decode.min_len <= len(h) <= longest for h in hyps)


@pytest.mark.parametrize(
    ("decode", "joining", "layer"),
    [
        (DecodeConfig(beam_size=4, n_best=3), [3, 0, 0, 1, 0], -1),
        (DecodeConfig(beam_size=4, n_best=3), [36], 0),
        (DecodeConfig(beam_size=1), [3, 0, 0, 1, 0], 0),
    ],
    ids=["beam-bursts-top", "beam-all-at-once-first", "greedy-bursts-first"],
)
def test_attending_sentences_get_the_batch_search_attention_and_the_others_their_translation(
    sources, one_thread, decode, joining, layer
):
    translator, ids = sources
    engine = translator.engine
    offline, attention = engine.translate_ids_attending(ids, decode, None, layer)
    attend = [i % 3 == 1 or i == 35 for i in range(len(ids))]  # some of every burst, and the last alone
    found, _ = _stream(engine.continuous(decode, layer), ids, joining, attend)
    assert sorted(found) == list(range(len(ids)))
    for i, ((hyps, scores), attn) in found.items():
        assert hyps == offline[i][0], i
        assert scores == pytest.approx(offline[i][1], abs=1e-4)
        if not attend[i]:
            assert attn is None
            continue
        assert [a.shape for a in attn] == [(len(h) + 1, len(ids[i]) + 1) for h in hyps]
        for mine, theirs in zip(attn, attention[i], strict=True):
            torch.testing.assert_close(mine, theirs.float(), atol=1e-4, rtol=0)
            assert mine.sum(1) == pytest.approx(1.0, abs=1e-4)  # each row a distribution over its own source


@pytest.mark.parametrize("beam", [3, 1])
def test_attention_histories_stop_and_start_again_and_survive_a_cut_of_the_memories(sources, one_thread, beam):
    """The attending sentence ends while a plain one runs on (the histories go), a long attending one joins (they
    start again at its width), and the widest source is dropped (the memories are cut) while it runs."""
    translator, ids = sources
    decode = DecodeConfig(beam_size=beam)
    out = [len(hyps[0]) for hyps, _ in translator.engine.translate_ids(ids, decode)]
    shortest = min(range(len(ids)), key=lambda i: out[i])  # the first to end
    widest = max((i for i in range(len(ids)) if out[i] > out[shortest] + 3), key=lambda i: len(ids[i]))
    narrower = sorted((i for i in range(len(ids)) if len(ids[i]) < len(ids[widest])), key=lambda i: out[i])
    long, short = narrower[-1], narrower[0]  # joining later, both narrower than the widest
    search = translator.engine.continuous(decode, -1)
    search.add([ids[widest], ids[shortest]], ["widest", "shortest"], [False, True])
    found = {}
    while "shortest" not in found:
        found.update((tag, (nbest, attn)) for tag, nbest, attn in search.step())
    assert "widest" not in found and search.running.attn is None  # no attending sentence left
    search.add([ids[long], ids[short]], ["long", "short"], [True, False])
    search.step()
    width = search.cache.src_pad_mask.size(1)
    search.drop({"widest"})
    assert search.cache.src_pad_mask.size(1) < width  # cut to the longest kept source
    while search.sentences:
        found.update((tag, (nbest, attn)) for tag, nbest, attn in search.step())
    names = {"shortest": shortest, "long": long, "short": short}
    offline, attention = translator.engine.translate_ids_attending([ids[i] for i in names.values()], decode, None, -1)
    for (name, i), (hyps, scores), attn in zip(names.items(), offline, attention, strict=True):
        (mine, my_scores), my_attn = found[name]
        assert mine == hyps and my_scores == pytest.approx(scores, abs=1e-4), name
        if name == "short":
            assert my_attn is None
            continue
        assert [a.shape for a in my_attn] == [(len(h) + 1, len(ids[i]) + 1) for h in hyps]
        for a, b in zip(my_attn, attn, strict=True):
            torch.testing.assert_close(a, b.float(), atol=1e-4, rtol=0)


def test_a_search_without_an_attention_layer_refuses_sentences_that_ask_for_it(sources):
    translator, ids = sources
    search = translator.engine.continuous(DecodeConfig(beam_size=2))
    with pytest.raises(ValueError, match="keeps no attention"):
        search.add(ids[:2], [0, 1], [False, True])
    search.add(ids[:2], [0, 1], [False, False])
    assert search.sentences == 2


def test_a_long_stream_shifts_the_cache_and_stays_exact(sources, one_thread):
    """Sentences joining at every step for longer than any output: the cache drops the positions no row uses
    any more instead of growing with the stream, and its memories are as wide as the longest running source."""
    translator, ids = sources
    decode = DecodeConfig(beam_size=2)
    many = ids * 4
    offline = translator.engine.translate_ids(many, decode)
    search = translator.engine.continuous(decode)
    lengths, capacity, rows, widths = [], [], [], []
    found, steps = {}, 0
    for start in range(len(many)):
        search.add([many[start]], [start])
        found.update((tag, nbest) for tag, nbest, _ in search.step())
        if search.cache is not None:
            lengths.append(search.cache.length)
            capacity.append(search.cache.self_kv[0].shape[1])  # rows the buffers hold
            rows.append(search.cache.rows)
            widths.append((search.cache.src_pad_mask.size(1), search.width))
        steps += 1
    while search.sentences:
        found.update((tag, nbest) for tag, nbest, _ in search.step())
    assert max(lengths) < steps // 2, f"the cache grew with the stream: {lengths}"
    assert max(capacity) <= 2 * max(rows), f"the buffers grew past the rows they held: {capacity} for {rows}"
    assert all(memory == running for memory, running in widths), widths
    assert len({running for _, running in widths}) > 1  # the longest running source changed
    assert all(found[i][0] == offline[i][0] for i in range(len(many)))


def test_settings_it_does_not_take_go_to_the_batch_search(sources):
    engine = sources[0].engine
    assert engine.continuous(DecodeConfig(sampling=True)) is None
    assert engine.continuous(DecodeConfig(no_repeat_ngram=2)) is None
    with pytest.raises(ValueError, match="no_repeat_ngram"):
        ContinuousSearch(engine.model, DecodeConfig(no_repeat_ngram=2), engine.special_ids, engine.device)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_per_row_start_positions_embed_each_row_at_its_own_position(positions):
    torch.manual_seed(0)
    embed = Embedding(30, ModelConfig(d_model=16, positions=positions, dropout=0.0), pad_id=0).eval()
    tokens = torch.randint(1, 30, (3, 2))
    starts = torch.tensor([0, 5, 2])
    together = embed(tokens, start=starts)
    for row, start in enumerate(starts.tolist()):
        assert torch.equal(together[row], embed(tokens[row : row + 1], start=start)[0])


def test_joining_rows_never_see_keys_written_before_they_joined():
    """A row that joins late decodes as it would alone, whatever the earlier rows wrote before it, and goes on so
    once the earlier sentence leaves and its positions are dropped."""
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_heads=4, enc_layers=1, dec_layers=2, d_ff=64, dropout=0.0, max_positions=40)
    model = Transformer(cfg, 20, 20, 0).eval()
    src = torch.randint(4, 20, (2, 6))
    pad = src.eq(0)
    with torch.inference_mode():
        memory = model.encode(src, pad)
        alone = model.start_decoding(memory[1:], pad[1:], 10)
        expected = [model.decode_step(torch.tensor([t]), alone) for t in (2, 7, 9)]
        cache = model.start_decoding(memory[:1], pad[:1], 10)
        for t in (2, 5, 6, 8):  # the first sentence runs four steps alone
            model.decode_step(torch.tensor([t]), cache)
        model.join_decoding(cache, memory[1:], pad[1:], group=1, room=10)
        assert cache.starts.tolist() == [0, 4]
        for t, want in zip((2, 7), expected[:2], strict=True):
            got = model.decode_step(torch.tensor([11, t]), cache)[1]
            torch.testing.assert_close(got, want[0], atol=1e-5, rtol=0)
        cache.reorder_(torch.tensor([1]), torch.tensor([1]))  # the first sentence ends: its positions go too
        assert (cache.length, cache.starts.tolist()) == (2, [0])
        torch.testing.assert_close(model.decode_step(torch.tensor([9]), cache), expected[2], atol=1e-5, rtol=0)


def test_growing_rows_keeps_the_room_of_the_running_rows():
    """A short sentence joining a cache full in rows makes new buffers; the long sentence running there keeps the
    positions it was given (a regrowth sized for the joiner's room alone ran out of positions mid-sentence)."""
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=32, dropout=0.0, max_positions=120)
    model = Transformer(cfg, 20, 20, 0).eval()
    src = torch.randint(4, 20, (2, 6))
    pad = src.eq(0)
    tokens = torch.randint(4, 20, (100,)).tolist()
    with torch.inference_mode():
        memory = model.encode(src, pad)
        alone = model.start_decoding(memory[:1], pad[:1], 100)
        expected = [model.decode_step(torch.tensor([t]), alone) for t in tokens]
        cache = model.start_decoding(memory[:1], pad[:1], 100)  # rows for this sentence only
        model.decode_step(torch.tensor([tokens[0]]), cache)
        model.join_decoding(cache, memory[1:], pad[1:], group=1, room=3)  # grows rows; the joiner needs 3
        for step, t in enumerate(tokens[1:], 1):
            got = model.decode_step(torch.tensor([t, 5]), cache)[0]
            torch.testing.assert_close(got, expected[step][0], atol=1e-5, rtol=0)


def test_a_cache_refuses_sources_with_another_group_size():
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=32, dropout=0.0, max_positions=20)
    model = Transformer(cfg, 10, 10, 0).eval()
    src = torch.randint(4, 10, (1, 4))
    with torch.inference_mode():
        cache = model.start_decoding(model.encode(src, src.eq(0)), src.eq(0), 5, max_rows=2)
        cache.reorder_(torch.tensor([0, 0]))
        with pytest.raises(ValueError, match="3 rows each cannot join a cache of 2 rows"):
            model.join_decoding(cache, model.encode(src, src.eq(0)), src.eq(0), group=3, room=5)


def test_a_bfloat16_search_matches_the_bfloat16_batch_search(sources, one_thread):
    translator, ids = sources
    decode = replace(DecodeConfig(beam_size=3), precision="bf16")
    offline = translator.engine.translate_ids(ids[:12], decode)
    found, _ = _stream(translator.engine.continuous(decode), ids[:12], [2, 0, 1])
    same = sum(found[i][0] == offline[i][0] for i in range(12))
    assert same >= 11, f"{same} of 12 bf16 translations equal the batch search's"


@pytest.mark.parametrize(
    "decode", [DecodeConfig(beam_size=3, n_best=2), DecodeConfig(beam_size=1)], ids=["beam", "greedy"]
)
def test_dropped_sentences_leave_and_the_others_keep_their_translation(sources, one_thread, decode):
    """Sentences dropped mid-search (their requests given up) are never returned, while others join; the rest get
    the batch search's translation, and so do sentences added after every running one was dropped."""
    translator, ids = sources
    offline = translator.engine.translate_ids(ids, decode)
    search = translator.engine.continuous(decode)
    found, dropped = {}, set()
    search.add(ids[:12], list(range(12)))
    for step in range(8):
        if step % 2:
            search.add(ids[12 + step : 14 + step], [12 + step, 13 + step])
        found.update((tag, nbest) for tag, nbest, _ in search.step())
        running = {step, 5 + step, 12 + step} - set(found) - dropped
        search.drop(running | {99})  # 99 names no sentence
        dropped |= running
    assert dropped and search.sentences
    while search.sentences:
        found.update((tag, nbest) for tag, nbest, _ in search.step())
    assert not dropped & set(found)
    assert set(found) | dropped == set(range(21))  # the first 12, and 13 to 20 that joined
    for tag, (hyps, scores) in found.items():
        assert hyps == offline[tag][0], tag
        assert scores == pytest.approx(offline[tag][1], abs=1e-4)

    search.add(ids[24:30], list(range(24, 30)))
    search.step()
    search.drop(set(range(24, 30)))  # every running sentence: the search is empty, and starts afresh
    assert search.sentences == 0 and search.cache is None
    again, _ = _stream(search, ids[30:], [2, 0, 1])
    assert [again[i][0] for i in sorted(again)] == [hyps for hyps, _ in offline[30:]]
