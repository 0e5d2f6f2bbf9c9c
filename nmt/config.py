"""Typed configuration: one dataclass per concern, each default stated once.

Hydra composes the YAML under `conf/` against these dataclasses (registered as
structured-config schemas in `nmt.cli.schema`), so unknown keys and wrong types
fail at start. Entry points convert the composed config once with
`OmegaConf.to_object` and call `check(cfg)`, which collects every rule a value
breaks and raises once. Library code receives these dataclasses, never a
`DictConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from nmt.errors import UserError


class ConfigError(UserError, ValueError):
    """One or more configuration values break a rule; the message lists them all."""


@dataclass
class DataConfig:
    """Which parallel corpus to read, and how to filter and batch it.

    For `name=files`, `train`/`valid`/`test` are path prefixes: the files are
    `{prefix}.{src_lang}` and `{prefix}.{tgt_lang}` (optionally `.gz`), like
    fairseq's `--trainpref`. For named corpora they are split names.
    """

    name: str = "builtin"  # the corpus: builtin | multi30k | tatoeba | files
    src_lang: str = "en"  # source language code (for files: the suffix of the source files)
    tgt_lang: str = "de"  # target language code (for files: the suffix of the target files)
    root: str | None = None  # local directory with the corpus files; None: download
    cache_dir: str = "~/.cache/nmt"  # downloads and trained SentencePiece models
    # training split (for files: a path prefix), or a list of them read as one corpus (train=[europarl,news]);
    # OmegaConf has no str | list type
    train: Any = "train"
    valid: str = "valid"  # validation split: picks the best checkpoint
    test: str = "test"  # test split scored by nmt-evaluate and nmt-benchmark
    max_len: int = 128  # subword tokens per side; longer training pairs are dropped
    max_ratio: float = 3.0  # drop training pairs whose length ratio exceeds this
    max_tokens: int = 4096  # token budget per batch (padded source or target positions)
    builtin_train_size: int = 20000  # pairs in the built-in corpus's train split
    prepared: str | None = None  # a directory written by nmt-prepare; None: prepare the corpus above into cache_dir
    num_workers: int = 0  # DataLoader worker processes assembling training batches; 0 = in the training process


@dataclass
class TokenizerConfig:
    """SentencePiece options; the trained model is cached by a hash of data and options."""

    model_type: str = "unigram"  # subword algorithm: unigram | bpe
    vocab_size: int = 8000  # pieces asked for; a small corpus may give fewer (the real size is printed)
    joint: bool = True  # one model for both languages (needed to share all embeddings)
    character_coverage: float = 1.0  # share of characters covered by the vocabulary (0.9995 for Chinese)
    input_sentence_size: int = 1_000_000  # pairs sampled (seeded, uniformly) from the corpus to train on
    sample_seed: int = 0  # seed of that sample: the same corpus and options give the same tokenizer
    # SentencePiece normalisation: nmt_nfkc (NFKC; full-width "，" becomes ",") | nfkc | nmt_nfkc_cf | nfkc_cf
    # (case-folded) | identity (text as is: keeps the full-width punctuation of Chinese references)
    normalization: str = "nmt_nfkc"
    user_symbols: list[str] = field(default_factory=list)  # pieces kept whole, e.g. a back-translation tag "<bt>"


@dataclass
class ModelConfig:
    """Transformer shape and variants (Vaswani et al. 2017 names in comments)."""

    d_model: int = 512  # d_model: embedding and hidden size
    n_heads: int = 8  # h: attention heads (d_model must divide by it)
    enc_layers: int = 6  # N (encoder)
    dec_layers: int = 6  # N (decoder)
    d_ff: int = 2048  # d_ff: hidden size of the feed-forward sublayers
    dropout: float = 0.1  # P_drop on sublayer outputs and embeddings
    attn_dropout: float = 0.0  # dropout on attention weights
    act_dropout: float = 0.0  # dropout after the feed-forward activation
    activation: str = "relu"  # feed-forward activation: relu | gelu
    attention: str = "scaled_dot"  # attention score: scaled_dot | dot | additive
    positions: str = "sinusoidal"  # position encoding: sinusoidal | learned
    max_positions: int = 1024  # longest sequence the model accepts, in tokens
    norm: str = "pre"  # LayerNorm placement around each sublayer: pre | post
    tie_output: bool = True  # decoder input embedding == output projection
    share_all_embeddings: bool = False  # encoder embedding too; needs a joint vocabulary
    # Heads kept in each layer after pruning (nmt-prune), each of width d_model / n_heads; [] = n_heads everywhere.
    enc_heads: list[int] = field(default_factory=list)  # encoder self-attention, one count per layer
    dec_self_heads: list[int] = field(default_factory=list)  # decoder self-attention
    dec_cross_heads: list[int] = field(default_factory=list)  # decoder cross-attention

    def heads(self, attention: str) -> list[int]:
        """Heads per layer of one kind of attention: `enc`, `dec_self` or `dec_cross`."""
        counts = getattr(self, f"{attention}_heads")
        return list(counts) or [self.n_heads] * (self.enc_layers if attention == "enc" else self.dec_layers)


@dataclass
class OptimConfig:
    """Optimizer, schedule and loss."""

    optimizer: str = "adamw"  # adam | adamw
    lr: float = 5e-4  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.98)  # Adam's beta1, beta2 (Vaswani et al. 2017)
    eps: float = 1e-9  # Adam's epsilon
    weight_decay: float = 0.0  # decoupled weight decay (adamw)
    schedule: str = "inverse_sqrt"  # learning rate after warmup: inverse_sqrt | linear (decays to 0 at max_steps)
    warmup_steps: int = 4000  # steps of linear warmup to `lr`
    label_smoothing: float = 0.1  # epsilon_ls of the smoothed cross-entropy, in [0, 1)
    max_bad_steps: int = 10  # stop after this many consecutive non-finite losses


@dataclass
class TrainerConfig:
    """The subset of Lightning Trainer options a run chooses."""

    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: int = 1  # devices (GPUs) to train on, per node
    num_nodes: int = 1  # machines taking part (multi-node DDP, launched by torchrun or SLURM)
    strategy: str = "auto"  # auto | ddp
    precision: str = "32"  # 32 | bf16-mixed | 16-mixed | auto (bf16-mixed where the hardware computes bf16, else 32)
    max_steps: int = -1  # optimizer steps to train; -1 = no limit
    max_epochs: int = 100  # passes over the training data
    max_time: str | None = None  # wall-clock budget "DD:HH:MM:SS"
    gradient_clip_val: float = 1.0  # clip the gradient norm to this
    accumulate_grad_batches: int = 1  # batches summed into one optimizer step
    val_check_interval: int = 500  # training batches between validations (loss + BLEU)
    log_every_n_steps: int = 50  # training loss and learning rate logged every this many steps
    num_threads: int = 0  # torch intra-op threads; 0 = one per available core
    progress_bar: bool = True  # show a progress bar on stderr
    compile: bool = False  # torch.compile the model for training


@dataclass
class DecodeConfig:
    """Search options for translation and validation BLEU."""

    beam_size: int = 5  # hypotheses kept per sentence; 1 = greedy
    length_penalty: float = 1.0  # alpha of GNMT ((5+len)/6)^alpha (Wu et al. 2016)
    length_norm: str = "gnmt"  # divisor of the summed log-probs: gnmt | average | none
    max_len_a: float = 1.5  # max output length = a * source length + b; a >= 0
    max_len_b: int = 10  # b of the max output length; a + b >= 1
    min_len: int = 1  # shortest output before EOS is allowed, in tokens
    n_best: int = 1  # hypotheses printed per input (as "i ||| text ||| score" when > 1); <= beam_size
    no_repeat_ngram: int = 0  # block repeated n-grams of this size (0 = off)
    max_tokens: int = 8000  # source tokens per translation batch
    precision: str = "32"  # arithmetic of the PyTorch search: 32 | bf16 (bfloat16 weights) | int8 (CPU: int8 linears)
    sampling: bool = False  # draw every token at random instead of searching (decode=sample): n_best samples per input
    temperature: float = 1.0  # sampling: logits are divided by it; towards 0 sampling approaches greedy search
    top_k: int = 0  # sampling: draw among the k most probable tokens (0 = all)
    top_p: float = 1.0  # sampling: draw among the fewest tokens whose probability reaches p (nucleus; 1 = all)
    epsilon: float = 0.0  # sampling: never draw a token less probable than this (0 = no limit)
    seed: int = 0  # sampling: the random seed; the same seed, input and options give the same samples


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


PRECISIONS = ("32", "bf16", "int8")  # decode.precision
BACKENDS = ("torch", "ctranslate2")  # nmt-translate backend

# CTranslate2's weight types (`ctranslate2.specs.model_spec.ACCEPTED_MODEL_TYPES`).
PRUNE_RANKS = ("importance", "normalized", "confidence")  # `HeadStats` scores heads can be ranked by
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16")


@dataclass
class EvaluateConfig:
    """Everything `nmt-evaluate` needs: score files, or translate a test set and score it."""

    hyp: str | None = None  # hypothesis file to score (one line per segment)
    ref: Any = None  # one reference file, or a list of them (ref=[A,B]); OmegaConf has no str|list type
    ckpt: str | None = None  # a checkpoint: translate a test set with it and score the translation
    data: DataConfig | None = None  # the corpus `ckpt` translates; None: the one the checkpoint was trained on
    split: str | None = None  # defaults to data.test
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    metrics: list[str] = field(default_factory=lambda: ["bleu", "chrf", "ter"])  # any of bleu, chrf, ter
    tgt_lang: str | None = None  # chooses the sacreBLEU tokenizer; defaults to the data's target language
    tokenize: str | None = None  # sacreBLEU tokenizer (13a, zh, intl, char, ...); None chooses by tgt_lang
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

    ckpt: str = "???"  # the checkpoint to benchmark
    data: DataConfig | None = None  # the corpus to translate; None: the one the checkpoint was trained on
    splits: list[str] = field(default_factory=list)  # test splits; empty means [data.test]
    decode: DecodeConfig = field(default_factory=DecodeConfig)  # the base settings the grid varies
    beam_sizes: list[int] = field(default_factory=lambda: [1, 5])  # beam sizes to try (1 = greedy)
    length_penalties: list[float] = field(default_factory=lambda: [1.0])  # GNMT alphas to try
    precisions: list[str] = field(default_factory=lambda: ["32"])  # decode.precision values to try: 32, bf16, int8
    backends: list[str] = field(default_factory=lambda: ["torch"])  # torch, ctranslate2 (exported on the fly)
    repeats: int = 3  # timed runs per setting; the median is reported
    tokenize: str | None = None  # sacreBLEU tokenizer; None chooses by target language
    output: str | None = None  # JSON file to write (atomically); the Markdown table always goes to stdout
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch intra-op threads; 0 = one per available core


_CHOICES: dict[tuple[type, str], tuple[Any, ...]] = {
    (DataConfig, "name"): ("builtin", "multi30k", "tatoeba", "wmt14", "files"),
    (TokenizerConfig, "model_type"): ("unigram", "bpe"),
    (TokenizerConfig, "normalization"): ("nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"),
    (ModelConfig, "activation"): ("relu", "gelu"),
    (ModelConfig, "attention"): ("scaled_dot", "dot", "additive"),
    (ModelConfig, "positions"): ("sinusoidal", "learned"),
    (ModelConfig, "norm"): ("pre", "post"),
    (OptimConfig, "optimizer"): ("adam", "adamw"),
    (OptimConfig, "schedule"): ("inverse_sqrt", "linear"),
    (TrainerConfig, "precision"): ("32", "bf16-mixed", "16-mixed", "auto"),
    (TrainerConfig, "accelerator"): ("cpu", "gpu", "auto"),
    (DecodeConfig, "length_norm"): ("gnmt", "average", "none"),
    (DecodeConfig, "precision"): PRECISIONS,
    (TrainConfig, "logger"): ("csv", "tensorboard"),
    (EvaluateConfig, "significance"): ("bs", "ar"),
    (TranslateConfig, "backend"): BACKENDS,
    (ExportConfig, "quantization"): QUANTIZATIONS,
    (PruneConfig, "rank"): PRUNE_RANKS,
}


def _problems(cfg: Any, prefix: str) -> list[str]:
    """Rule violations in one dataclass, as messages naming key, rule and value."""
    out: list[str] = []

    def need(ok: bool, key: str, rule: str) -> None:
        if not ok:
            out.append(f"`{prefix}{key}` must be {rule}, but is {getattr(cfg, key)!r} instead.")

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            out += _problems(value, f"{prefix}{f.name}.")
        elif (type(cfg), f.name) in _CHOICES:
            choices = _CHOICES[type(cfg), f.name]
            need(value in choices, f.name, "one of " + ", ".join(map(str, choices)))
    if isinstance(cfg, ModelConfig):
        need(cfg.d_model % cfg.n_heads == 0, "d_model", f"divisible by n_heads ({cfg.n_heads})")
        need(cfg.enc_layers >= 1, "enc_layers", ">= 1")
        need(cfg.dec_layers >= 1, "dec_layers", ">= 1")
        for attention, layers in (("enc", cfg.enc_layers), ("dec_self", cfg.dec_layers), ("dec_cross", cfg.dec_layers)):
            counts = getattr(cfg, f"{attention}_heads")
            rule = f"empty or {layers} counts in [0, n_heads]"
            need(
                not counts or (len(counts) == layers and all(0 <= c <= cfg.n_heads for c in counts)),
                f"{attention}_heads",
                rule,
            )
        for key in ("dropout", "attn_dropout", "act_dropout"):
            need(0.0 <= getattr(cfg, key) < 1.0, key, "in [0, 1)")
    if isinstance(cfg, TranslateConfig):
        need(cfg.align_method in ("attention", "shift"), "align_method", "one of attention, shift")
    if isinstance(cfg, AlignConfig):
        need(cfg.method in ("attention", "shift"), "method", "one of attention, shift")
        need(
            cfg.symmetrize in ("intersection", "union", "grow-diag"),
            "symmetrize",
            "one of intersection, union, grow-diag",
        )
        need((cfg.input is None) != (cfg.src is None and cfg.tgt is None), "input", "given, or else src and tgt")
        need((cfg.src is None) == (cfg.tgt is None), "src", "given together with tgt")
        need(not cfg.all_layers or cfg.gold is not None, "all_layers", "used with gold")
    if isinstance(cfg, PruneConfig):
        need(cfg.fraction is not None or cfg.tolerance is not None, "fraction", "given, or else tolerance")
        need(cfg.fraction is None or 0 < cfg.fraction < 1, "fraction", "in (0, 1)")
        need(cfg.tolerance is None or cfg.tolerance >= 0, "tolerance", ">= 0")
        need(0 < cfg.step < 1, "step", "in (0, 1)")
    if isinstance(cfg, DecodeConfig):
        need(cfg.beam_size >= 1, "beam_size", ">= 1")
        if not cfg.sampling:  # sampling draws n_best independent samples
            need(cfg.n_best <= cfg.beam_size, "n_best", f"<= `{prefix}beam_size` ({cfg.beam_size})")
        need(cfg.temperature > 0, "temperature", "> 0")
        need(cfg.top_k >= 0, "top_k", ">= 0 (0 = all tokens)")
        need(0 < cfg.top_p <= 1, "top_p", "in (0, 1]")
        need(0 <= cfg.epsilon < 1, "epsilon", "in [0, 1)")
        need(cfg.n_best >= 1, "n_best", ">= 1")
        need(cfg.max_tokens >= 1, "max_tokens", ">= 1")
        need(cfg.min_len >= 0, "min_len", ">= 0")
        need(cfg.max_len_a >= 0, "max_len_a", ">= 0")
        need(
            cfg.max_len_a + cfg.max_len_b >= 1,
            "max_len_b",
            f">= {math.ceil(1 - cfg.max_len_a)} with `{prefix}max_len_a` = {cfg.max_len_a:g}, "
            "so that a one-token source allows one output token",
        )
    if isinstance(cfg, DataConfig):
        need(cfg.max_tokens >= cfg.max_len + 2, "max_tokens", f">= `{prefix}max_len` + 2 ({cfg.max_len + 2})")
        need(cfg.max_ratio >= 1.0, "max_ratio", ">= 1")
        need(cfg.src_lang != cfg.tgt_lang, "tgt_lang", f"different from `{prefix}src_lang`")
    if isinstance(cfg, TokenizerConfig):
        need(cfg.vocab_size >= 16, "vocab_size", ">= 16")
    if isinstance(cfg, OptimConfig):
        need(0.0 <= cfg.label_smoothing < 1.0, "label_smoothing", "in [0, 1)")
        need(cfg.lr > 0, "lr", "> 0")
        need(cfg.warmup_steps >= 0, "warmup_steps", ">= 0")
    return out


def check(cfg: Any) -> Any:
    """Validate a config dataclass tree; raise one `ConfigError` listing every problem."""
    problems = _problems(cfg, "")
    if isinstance(cfg, TrainConfig):
        problems += _train_problems(cfg)
    if isinstance(cfg, EvaluateConfig):
        problems += _evaluate_problems(cfg)
    if isinstance(cfg, BenchmarkConfig):
        if cfg.repeats < 1:
            problems.append(f"`repeats` must be >= 1, but is {cfg.repeats} instead.")
        for key, allowed in (("precisions", PRECISIONS), ("backends", BACKENDS)):
            values = getattr(cfg, key)
            if not values or not set(values) <= set(allowed):
                problems.append(f"`{key}` must be a non-empty list of {', '.join(allowed)}, but is {values} instead.")
        if not cfg.beam_sizes or min(cfg.beam_sizes) < 1:
            problems.append(f"`beam_sizes` must be a non-empty list of values >= 1, but is {cfg.beam_sizes} instead.")
    if isinstance(cfg, AverageConfig):
        if bool(cfg.ckpts) == (cfg.run is not None):
            problems.append(
                "give either `ckpts` (a list of checkpoints) or `run` (a run directory), not both or neither."
            )
        if cfg.last < 1:
            problems.append(f"`last` must be >= 1, but is {cfg.last} instead.")
    if isinstance(cfg, PrepareConfig) and cfg.workers < 0:
        problems.append(f"`workers` must be >= 0 (0: one per core), but is {cfg.workers} instead.")
    if isinstance(cfg, TranslateConfig):
        if cfg.input is not None and cfg.input == cfg.output:
            problems.append(f"`output` must differ from `input`, but both are {cfg.input!r}.")
        if isinstance(cfg.ckpt, list) and (cfg.backend != "torch" or not all(isinstance(c, str) for c in cfg.ckpt)):
            problems.append(f"`ckpt` as a list (an ensemble) needs checkpoint paths and `backend=torch`: {cfg.ckpt}.")
        if cfg.decode.sampling and cfg.backend != "torch":
            problems.append(f"`decode.sampling` needs `backend=torch`, but backend is {cfg.backend!r}.")
        if cfg.buffer_size < 1:
            problems.append(f"`buffer_size` must be >= 1, but is {cfg.buffer_size} instead.")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return cfg


def _train_problems(cfg: TrainConfig) -> list[str]:
    """Rules that span several groups of `nmt-train`'s config."""
    out = []
    if cfg.decode.sampling:
        out.append("`decode.sampling` must be false for training: validation BLEU uses greedy or beam search.")
    if not 0.0 <= cfg.ema_decay < 1.0:
        out.append(f"`ema_decay` must be in [0, 1) (0: off), but is {cfg.ema_decay} instead.")
    if cfg.keep_last < 0:
        out.append(f"`keep_last` must be >= 0 (0: none), but is {cfg.keep_last} instead.")
    if cfg.model.share_all_embeddings and not cfg.tokenizer.joint:
        out.append("`model.share_all_embeddings` needs `tokenizer.joint=true`, but it is false.")
    if cfg.optim.schedule == "linear" and cfg.trainer.max_steps <= 0:
        out.append(
            "`trainer.max_steps` must be > 0 with `optim.schedule=linear` (it decays to 0 there), "
            f"but is {cfg.trainer.max_steps} instead."
        )
    if cfg.trainer.precision == "16-mixed" and cfg.trainer.accelerator == "cpu":
        out.append("`trainer.precision` must be 32, bf16-mixed or auto on CPU, but is '16-mixed' instead.")
    if cfg.data.max_len + 2 > cfg.model.max_positions:
        out.append(
            f"`data.max_len` + 2 must be <= `model.max_positions` ({cfg.model.max_positions}), "
            f"but is {cfg.data.max_len + 2} instead."
        )
    return out


def _evaluate_problems(cfg: EvaluateConfig) -> list[str]:
    """`nmt-evaluate` scores either files (hyp + ref) or a checkpoint's translation of a test set."""
    out = []
    if (cfg.hyp is None) == (cfg.ckpt is None):
        out.append("give either `hyp` (with `ref`) to score a file, or `ckpt` to translate a test set and score it.")
    if cfg.hyp is not None and not reference_paths(cfg):
        out.append("`ref` must name at least one reference file when `hyp` is given.")
    if cfg.bootstrap == 1 or cfg.bootstrap < 0:
        out.append(f"`bootstrap` must be 0 (off) or >= 2, but is {cfg.bootstrap} instead.")
    if cfg.baseline is not None and cfg.hyp is None:
        out.append("`baseline` needs `hyp`: significance compares two hypothesis files.")
    return out


def reference_paths(cfg: EvaluateConfig) -> list[str]:
    """`ref` as a list of paths, whether one path or several were given."""
    if cfg.ref is None:
        return []
    return [cfg.ref] if isinstance(cfg.ref, str) else [str(r) for r in cfg.ref]
