"""One config per command: what `nmt-train`, `nmt-translate`, `nmt-evaluate` and the others read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nmt.config.groups import DataConfig, DecodeConfig, ModelConfig, OptimConfig, TokenizerConfig, TrainerConfig

PRECISIONS = ("32", "bf16", "fp16", "int8")  # decode.precision
BACKENDS = ("torch", "ctranslate2")  # nmt-translate backend
PRUNE_RANKS = ("importance", "normalized", "confidence")  # `HeadStats` scores heads can be ranked by
# nmt-export's weight types: CTranslate2's (`ctranslate2.specs.model_spec.ACCEPTED_MODEL_TYPES`)
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16")


@dataclass
class TrainConfig:
    """Everything `nmt-train` needs."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    seed: int = 1  # random seed for initialisation and data order
    run_dir: str = "."  # Hydra sets the working run directory; checkpoints go under it
    resume: str | None = None  # checkpoint path, or "last" for run_dir/checkpoints/last.ckpt
    # fine-tune a trained model (model.pt or .ckpt): its weights, model config and tokenizer, with a fresh
    # optimizer, schedule and step count (unlike resume); a resumed fine-tuning run takes its weights from resume
    init_from: str | None = None
    save_top_k: int = 2  # best checkpoints kept by validation BLEU (plus last)
    keep_last: int = 0  # checkpoints of the latest validations also kept, for nmt-average (0 = none)
    # decay of an exponential moving average of the weights (Lightning's EMAWeightAveraging), updated every
    # step; validation, checkpoints and the exported model use the average (0 = off; 0.999 is usual)
    ema_decay: float = 0.0
    ema_start: int = 0  # the update whose weights begin the average (0: the first); raw weights until then
    early_stopping_patience: int = 0  # validations without BLEU gain before stopping; 0 = off
    logger: str = "csv"  # training log format: csv | tensorboard
    val_samples: int = 3  # sample translations logged at each validation


@dataclass
class TranslateConfig:
    """Everything `nmt-translate` needs. Omitted input/output mean stdin/stdout."""

    ckpt: Any = "???"  # the checkpoint to translate with (model.pt or a training .ckpt); a list: their ensemble
    backend: str = "torch"  # torch | ctranslate2 (then ckpt is a model directory written by nmt-export)
    input: str | None = None  # text file, one sentence per line (plain or .gz); None: stdin
    output: str | None = None  # file to write (atomically); None: stdout
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch intra-op threads; 0 = one per available core
    progress: bool = True  # progress bar on stderr; only shown when reading a file
    buffer_size: int = 2000  # lines read and translated at a time: memory stays flat however long the input
    alignments: bool = False  # append ` ||| i-j ...` word links (Pharaoh, 0-indexed) to each translation
    align_method: str = "attention"  # attention | shift, as in nmt-align
    align_layer: int = -1  # decoder layer whose cross-attention links the words


@dataclass
class ExportConfig:
    """Everything `nmt-export` needs: a checkpoint and the CTranslate2 model directory to write."""

    ckpt: str = "???"  # the checkpoint to export (model.pt or a training .ckpt)
    output: str = "???"  # the directory to write (atomically); an earlier export there is replaced
    # weight type: float32 | int8 | int8_float32 | int8_float16 | int8_bfloat16 | int16 | float16 | bfloat16
    quantization: str = "float32"


@dataclass
class AlignConfig:
    """Everything `nmt-align` needs: a model, sentence pairs, how to read the attention, and optional gold links."""

    ckpt: str = "???"  # the model whose cross-attention aligns (model.pt or a training .ckpt)
    input: str | None = None  # `source ||| target` lines (fast_align format); or give src and tgt
    src: str | None = None  # source sentences, one per line (words: space-separated)
    tgt: str | None = None  # their targets, line by line
    output: str | None = None  # Pharaoh links per line, 0-indexed `i-j` (atomically); None: stdout
    method: str = "attention"  # attention | shift (Chen et al. 2020: the step where the word is the decoder input)
    layer: int = -1  # decoder layer whose cross-attention (mean over heads) is read; negative counts from the top
    reverse_ckpt: str | None = None  # a target->source model: symmetrize both directions' links
    symmetrize: str = "grow-diag"  # intersection | union | grow-diag (with reverse_ckpt)
    gold: str | None = None  # gold links (`i-j` sure, `ipj` possible): print precision, recall and AER
    gold_one_indexed: bool = False  # the gold file counts words from 1 (the Hansards set does)
    all_layers: bool = False  # with gold: score both methods at every layer, as a table
    max_tokens: int = 4096  # padded target tokens per batch
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch intra-op threads; 0 = one per available core


@dataclass
class PruneConfig:
    """Everything `nmt-prune` needs: a model, when to stop removing heads, and where to write the result."""

    ckpt: str = "???"  # the model to prune (model.pt or a training .ckpt)
    output: str | None = None  # the pruned model to write (atomically), like a run's model.pt; None: report only
    fraction: float | None = None  # stop once this fraction of all attention heads is removed
    tolerance: float | None = None  # or once validation BLEU falls by more than this; the last model within is kept
    step: float = 0.1  # fraction of the heads removed per round (a point of the curve)
    reestimate: bool = False  # score the remaining heads anew after each round, instead of once on the full model
    rank: str = "importance"  # importance (Michel et al.) | normalized (per-layer L2) | confidence (Voita et al.)
    data: DataConfig | None = None  # the corpus; None: the one the checkpoint was trained on
    valid_split: str | None = None  # importance and the BLEU that decides; defaults to data.valid
    report_split: str | None = None  # also translated every round, for the curve only (e.g. test2016)
    curve: str | None = None  # write the rounds as JSON here (`nmt-plot --pruning` draws it)
    decode: DecodeConfig = field(default_factory=DecodeConfig)  # how BLEU and speed are measured
    max_tokens: int = 4096  # padded target tokens per batch when measuring importance
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch intra-op threads; 0 = one per available core


@dataclass
class AverageConfig:
    """Everything `nmt-average` needs: the checkpoints to average and the model to write."""

    ckpts: list[str] = field(default_factory=list)  # checkpoints to average (model.pt or training .ckpt files)
    run: str | None = None  # or a run directory: average its `last` latest kept checkpoints (keep_last)
    last: int = 5  # how many of the run's latest checkpoints
    output: str = "???"  # the averaged model to write (atomically), like a run's model.pt


@dataclass
class BacktranslateConfig:
    """Everything `nmt-backtranslate` needs: a reverse model, target-language text and where to write."""

    ckpt: str = "???"  # the reverse model: translates the monolingual text's language into the source language
    input: str = "???"  # target-language monolingual text, one sentence per line (plain or .gz)
    output: str = "???"  # the directory of the synthetic corpus (train.{src}, train.{tgt}, provenance.json)
    tag: str | None = "<bt>"  # put before every synthetic source (tagged back-translation); null: untagged
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch intra-op threads; 0 = one per available core


@dataclass
class PrepareConfig:
    """Everything `nmt-prepare` needs: a corpus, tokenizer options and the directory to write."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    output: str = "???"  # the directory to write (it must not exist); train on it with data.prepared=DIR
    workers: int = 0  # encoding processes; 0 = one per available core
    tokenizer_from: str | None = None  # a checkpoint whose tokenizer to use as it is (to fine-tune or resume it)


@dataclass
class EvaluateConfig:
    """Everything `nmt-evaluate` needs: score files, or translate a test set and score it."""

    hyp: str | None = None  # hypothesis file to score (one line per segment)
    ref: Any = None  # one reference file, or a list of them (ref=[A,B]); OmegaConf has no str|list type
    ckpt: Any = None  # a checkpoint: translate a test set with it and score the translation; a list: their ensemble
    data: DataConfig | None = None  # the corpus `ckpt` translates; None: the one the checkpoint was trained on
    split: str | None = None  # defaults to data.test
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    metrics: list[str] = field(default_factory=lambda: ["bleu", "chrf", "ter"])  # any of bleu, chrf, ter
    tgt_lang: str | None = None  # chooses the sacreBLEU tokenizer; defaults to the data's target language
    tokenize: str | None = None  # sacreBLEU tokenizer (13a, zh, intl, char, ...) or moses; None chooses by tgt_lang
    lowercase: bool = False  # score case-insensitively
    bootstrap: int = 0  # bootstrap resamples for a 95% confidence interval; 0 = off
    baseline: str | None = None  # a baseline system's output: paired significance test against `hyp`
    significance: str = "bs"  # bs (paired bootstrap) | ar (approximate randomisation)
    json: bool = False  # print the result as JSON instead of Markdown tables
    output: str | None = None  # where to save the translation when ckpt is given
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch intra-op threads; 0 = one per available core


@dataclass
class BenchmarkConfig:
    """Everything `nmt-benchmark` needs: one checkpoint, test splits, and a grid of decode settings."""

    ckpt: Any = "???"  # the checkpoint to benchmark; a list: their ensemble (backends=[torch])
    data: DataConfig | None = None  # the corpus to translate; None: the one the checkpoint was trained on
    splits: list[str] = field(default_factory=list)  # test splits; empty means [data.test]
    decode: DecodeConfig = field(default_factory=DecodeConfig)  # the base settings the grid varies
    beam_sizes: list[int] = field(default_factory=lambda: [1, 5])  # beam sizes to try (1 = greedy)
    length_penalties: list[float] = field(default_factory=lambda: [1.0])  # GNMT alphas to try
    precisions: list[str] = field(default_factory=lambda: ["32"])  # decode.precision values: 32, bf16, fp16, int8
    backends: list[str] = field(default_factory=lambda: ["torch"])  # torch, ctranslate2 (exported on the fly)
    repeats: int = 3  # timed runs per setting; the median is reported
    tokenize: str | None = None  # sacreBLEU tokenizer; None chooses by target language
    output: str | None = None  # JSON file to write (atomically); the Markdown table always goes to stdout
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch intra-op threads; 0 = one per available core


def reference_paths(cfg: EvaluateConfig) -> list[str]:
    """`ref` as a list of paths, whether one path or several were given."""
    if cfg.ref is None:
        return []
    return [cfg.ref] if isinstance(cfg.ref, str) else [str(r) for r in cfg.ref]
