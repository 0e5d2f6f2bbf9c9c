"""The hard-attention probe's table: how much a trained model relies on one position per head.

Each configuration hardens some heads of a model trained soft (`nmt.model.hard_attention`: a head's weights
become a one-hot on its argmax) and translates the test set; BLEU and chrF are set against the soft model's
with sacreBLEU's paired bootstrap (Koehn 2004; as `nmt-evaluate baseline=` tests), with the p-values also
Holm-corrected over the configurations, since a table of many heads tests many hypotheses. Beside them: the
hardened heads' confidence (mean over them) and importance (summed: Michel et al.'s first-order estimate
for removing them together) from nmt-prune's head table (`nmt.evaluate.heads`, taken on the soft model), and,
for cross-attention, the alignment error rate (Och and Ney 2003) of the word links the hardened heads give on
a gold set, next to that of the same heads left soft. The default configurations (`probe_configurations`):
every cross-attention head at once, each layer's cross-attention, each cross-attention head alone, and each
layer's encoder and decoder self-attention.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from nmt.checkpoint import SpecialIds
from nmt.config import DecodeConfig
from nmt.data.batching import teacher_forcing_batches
from nmt.data.corpus import CorpusError, ParallelText
from nmt.data.tokenizer import Tokenizer
from nmt.decode.align import Aligner, Link, search_links
from nmt.decode.engine import TorchEngine
from nmt.decode.translator import Translator
from nmt.evaluate.alignment import GoldAlignment, alignment_error_rate
from nmt.evaluate.heads import HeadStats, head_statistics
from nmt.evaluate.metrics import paired_significance, score
from nmt.evaluate.report import to_markdown_table
from nmt.model import Transformer
from nmt.model.hard_attention import HardenSpecError, harden, select_heads

METRICS = ("bleu", "chrf")
SOFT = "soft"  # the row of the model as trained


@dataclass
class ProbeData:
    """What the probe measures on: the test pairs it translates, and the pairs nmt-prune's head table is taken on
    (nmt-prune takes the validation split)."""

    tokenizer: Tokenizer
    special_ids: SpecialIds
    test: ParallelText
    tgt_lang: str
    heads_on: ParallelText
    max_tokens: int = 4096  # padded target tokens per teacher-forcing batch of the head table


@dataclass
class GoldSet:
    """Sentence pairs with gold word links, and the model (with its tokenizer) whose cross-attention links them;
    its heads are named by the same specs as the translating model's."""

    aligner: Aligner
    pairs: list[tuple[str, str]]
    gold: list[GoldAlignment]
    method: str = "attention"  # how the attention links words, as in nmt-align

    def __post_init__(self) -> None:
        if len(self.gold) != len(self.pairs):
            raise CorpusError(
                f"{len(self.gold)} gold alignments for {len(self.pairs)} sentence pairs; they must pair up."
            )


@dataclass(frozen=True)
class ProbeRow:
    """One configuration: which heads were hardened and what the translation scored."""

    hardened: str  # its specs, comma-separated; "soft" for the model as trained
    heads: int  # heads hardened
    bleu: float
    chrf: float
    bleu_p: float | None = None  # paired bootstrap against soft
    bleu_p_holm: float | None = None  # the same, Holm-corrected over the table's configurations
    chrf_p: float | None = None
    chrf_p_holm: float | None = None
    confidence: float | None = None  # mean over the hardened heads of nmt-prune's confidence
    importance: float | None = None  # sum over the hardened heads of nmt-prune's importance
    aer: float | None = None  # %, links of the hardened cross-attention heads (mean attention) on the gold set
    aer_soft: float | None = None  # %, links of the same heads left soft


@dataclass
class HardProbe:
    """The table: the soft model's row first, then one row per configuration; sacreBLEU signatures by metric."""

    rows: list[ProbeRow]
    signatures: dict[str, str]  # of the scores
    test_signatures: dict[str, str]  # of the paired tests (with bs:N and the seed)

    def to_json(self) -> dict:
        """Plain data: rows as dicts, and the signatures."""
        rows = [dataclasses.asdict(row) for row in self.rows]
        return {"rows": rows, "signatures": self.signatures, "test_signatures": self.test_signatures}

    def to_markdown(self) -> str:
        """The rows as a table, with each score's difference to the soft model's (AER columns only with a gold set)."""
        soft = self.rows[0]

        def p(value: float | None) -> str | None:
            return None if value is None else f"{value:.3f}"

        table = [
            {
                "hardened": r.hardened, "heads": r.heads,
                "BLEU": r.bleu, "ΔBLEU": None if r is soft else r.bleu - soft.bleu,
                "p": p(r.bleu_p), "p Holm": p(r.bleu_p_holm),
                "chrF": r.chrf, "ΔchrF": None if r is soft else r.chrf - soft.chrf,
                "p chrF": p(r.chrf_p), "p chrF Holm": p(r.chrf_p_holm),
                "confidence": r.confidence,
                "importance": None if r.importance is None else f"{r.importance:.2e}",  # spans decades
                "AER": r.aer, "AER soft": r.aer_soft,
            }
            for r in self.rows
        ]  # fmt: skip
        aligned = any(r.aer is not None for r in self.rows)
        return to_markdown_table(table, [c for c in table[0] if aligned or not c.startswith("AER")])


def probe_configurations(model: Transformer) -> list[list[str]]:
    """The table's configurations, each a list of specs: every cross-attention head, each layer's cross-attention,
    each cross-attention head alone, each layer's encoder self-attention, each layer's decoder self-attention."""
    attentions = model.attentions()
    cross = [(layer, mha.n_heads) for (kind, layer), mha in attentions.items() if kind == "dec_cross" and mha.n_heads]
    self_attention = [
        [f"{kind}:{layer}"]
        for wanted in ("enc", "dec_self")
        for (kind, layer), mha in attentions.items()
        if kind == wanted and mha.n_heads
    ]
    return (
        [["dec_cross"]]
        + [[f"dec_cross:{layer}"] for layer, _ in cross]
        + [[f"dec_cross:{layer}:{head}"] for layer, heads in cross for head in range(heads)]
        + self_attention
    )


def hard_probe(
    model: Transformer,
    data: ProbeData,
    decode: DecodeConfig,
    configurations: Sequence[Sequence[str]],
    gold: GoldSet | None = None,
    samples: int = 0,
    log: Callable[[str], None] = print,
) -> HardProbe:
    """Translate `data.test` with `model` (eval mode, on its device) soft and under each configuration of hardened
    heads, and score it (see the module docstring); `model` is soft again afterwards.

    Args:
        configurations: lists of specs (`nmt.model.hard_attention`), e.g. `probe_configurations(model)`.
        gold: where to measure the AER of cross-attention configurations (None: no AER).
        samples: paired bootstrap resamples (0: sacreBLEU's 1000). A Holm-corrected p-value below 0.05 over N
            configurations needs more than 20 N of them.
    """
    for specs in configurations:  # every configuration checked before the first translation
        if not select_heads(model, specs):
            raise HardenSpecError(f"configuration {','.join(specs)!r} hardens no head (its layers have none left).")
        if gold is not None:
            select_heads(gold.aligner.model, specs)
    harden(model, [])
    stats = _head_table(model, data)
    soft = _translate(model, data, decode)
    soft_scores = score(soft, [data.test.tgt], METRICS, tgt_lang=data.tgt_lang)
    rows, tests = [ProbeRow(SOFT, 0, bleu=soft_scores[0].value, chrf=soft_scores[1].value)], {}
    try:
        for specs in configurations:
            row, tests = _hardened_row(model, data, decode, specs, soft, stats, samples)
            if gold is not None:
                row = dataclasses.replace(row, **_alignment_errors(gold, specs))
            rows.append(row)
            log(f"{row.hardened}: BLEU {row.bleu:.2f} (soft {rows[0].bleu:.2f}), p {row.bleu_p:.3f}")
    finally:
        harden(model, [])
    return HardProbe(_with_holm(rows), {s.metric: s.signature for s in soft_scores}, tests)


def _hardened_row(
    model: Transformer,
    data: ProbeData,
    decode: DecodeConfig,
    specs: Sequence[str],
    soft: list[str],
    stats: Mapping[tuple[str, int, int], HeadStats],
    samples: int,
) -> tuple[ProbeRow, dict[str, str]]:
    """One configuration's row (without AER and Holm), and the signatures of its paired tests."""
    heads = [stats[kind, layer, h] for (kind, layer), hs in select_heads(model, specs).items() for h in hs]
    harden(model, specs)
    try:
        hyps = _translate(model, data, decode)
    finally:
        harden(model, [])
    refs = [data.test.tgt]
    bleu, chrf = score(hyps, refs, METRICS, tgt_lang=data.tgt_lang)
    bleu_test, chrf_test = paired_significance(
        soft, hyps, refs, METRICS, tgt_lang=data.tgt_lang, method="bs", samples=samples
    )
    row = ProbeRow(
        hardened=",".join(specs),
        heads=len(heads),
        bleu=bleu.value,
        chrf=chrf.value,
        bleu_p=bleu_test.p_value,
        chrf_p=chrf_test.p_value,
        confidence=sum(s.confidence for s in heads) / len(heads),
        importance=sum(s.importance for s in heads),
    )
    return row, {test.metric: test.signature for test in (bleu_test, chrf_test)}


def head_links(
    aligner: Aligner, pairs: Sequence[tuple[str, str]], heads: Mapping[int, Sequence[int]], method: str = "attention"
) -> list[set[Link]]:
    """Word links of each (source, target) pair from the mean teacher-forced attention of some cross-attention
    heads (decoder layer -> its heads), read as nmt-align reads a layer's (`nmt.decode.align`)."""
    model, tokenizer = aligner.model, aligner.tokenizer
    limit = model.cfg.max_positions - 1  # room for EOS or BOS
    src_ids = [ids[:limit] for ids in tokenizer.encode_src([src for src, _ in pairs])]
    tgt_ids = [ids[:limit] for ids in tokenizer.encode_tgt([tgt for _, tgt in pairs])]
    src_vocab, tgt_vocab = tokenizer.src_pieces(), tokenizer.tgt_pieces()
    device = next(model.parameters()).device
    links: list[set[Link]] = [set() for _ in pairs]  # a pair with an empty side: none
    for batch in teacher_forcing_batches(src_ids, tgt_ids, aligner.special_ids, aligner.max_tokens):
        with torch.inference_mode():
            _, maps = model.attention_maps(batch.src.to(device), batch.tgt_in.to(device))
        chosen = torch.cat([maps.cross[layer][:, list(hs)] for layer, hs in heads.items()], 1)  # [B,H',T+1,S+1]
        attn = chosen.float().mean(1).cpu()  # [B,H',T+1,S+1] -> [B,T+1,S+1]
        for row, i in enumerate(batch.index.tolist()):
            src, tgt = src_ids[i], tgt_ids[i]
            rows = attn[row, : len(tgt) + 1, : len(src) + 1]  # its pieces then EOS, by the source pieces then EOS
            links[i] = search_links(rows, [src_vocab[t] for t in src], [tgt_vocab[t] for t in tgt], method)
    return links


def _head_table(model: Transformer, data: ProbeData) -> dict[tuple[str, int, int], HeadStats]:
    """nmt-prune's head table of `model` on `data.heads_on`, by (kind, layer, head)."""
    src_ids, tgt_ids = data.tokenizer.encode_src(data.heads_on.src), data.tokenizer.encode_tgt(data.heads_on.tgt)
    batches = teacher_forcing_batches(src_ids, tgt_ids, data.special_ids, data.max_tokens)
    return {(s.kind, s.layer, s.head): s for s in head_statistics(model, batches)}


def _translate(model: Transformer, data: ProbeData, decode: DecodeConfig) -> list[str]:
    """The best translation of each test source; a new engine, so that it copies the model as hardened now."""
    engine = TorchEngine(model, data.special_ids, next(model.parameters()).device)
    return [t.best for t in Translator(engine, data.tokenizer, decode).translate(data.test.src)]


def _alignment_errors(gold: GoldSet, specs: Sequence[str]) -> dict[str, float]:
    """AER (%) of the cross-attention heads `specs` names, hardened as `specs` says (`aer`) and left soft
    (`aer_soft`); none without such heads."""
    model = gold.aligner.model
    cross = {layer: hs for (kind, layer), hs in select_heads(model, specs).items() if kind == "dec_cross"}
    if not cross:
        return {}
    soft = alignment_error_rate(head_links(gold.aligner, gold.pairs, cross, gold.method), gold.gold)
    harden(model, specs)
    try:
        hard = alignment_error_rate(head_links(gold.aligner, gold.pairs, cross, gold.method), gold.gold)
    finally:
        harden(model, [])
    return {"aer": 100 * hard.aer, "aer_soft": 100 * soft.aer}


def _with_holm(rows: list[ProbeRow]) -> list[ProbeRow]:
    """`rows` with each metric's p-values Holm-corrected over the configurations (the soft row has none)."""
    corrected = {name: _holm([getattr(r, f"{name}_p") for r in rows[1:]]) for name in METRICS}
    return rows[:1] + [
        dataclasses.replace(row, bleu_p_holm=corrected["bleu"][i], chrf_p_holm=corrected["chrf"][i])
        for i, row in enumerate(rows[1:])
    ]


def _holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979): the k-th smallest of m p-values times (m - k + 1), kept monotone."""
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, i in enumerate(sorted(range(len(p_values)), key=p_values.__getitem__)):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
