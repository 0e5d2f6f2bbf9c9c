"""One config per command: what `nmt-train`, `nmt-translate`, `nmt-evaluate` and the others read.

Each field's meaning, allowed values and roles are its metadata (`nmt.config.options.option`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nmt.config.groups import (
    PRECISIONS,
    AugmentConfig,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    OptimConfig,
    TokenizerConfig,
    TrainerConfig,
)
from nmt.config.options import option

BACKENDS = ("torch", "ctranslate2")  # nmt-translate backend
PRUNE_RANKS = ("importance", "normalized", "confidence")  # `HeadStats` scores heads can be ranked by
# nmt-export's weight types: CTranslate2's (`ctranslate2.specs.model_spec.ACCEPTED_MODEL_TYPES`)
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16")
ALIGN_METHODS = ("attention", "shift")  # nmt-align method, nmt-translate align_method
DOCUMENT_FORMATS = ("text", "html", "xml", "srt", "vtt", "docx")  # nmt-translate format (`nmt.documents.formats`)
SPLITTERS = ("rules", "sentencex")  # nmt-translate splitter (`nmt.documents.sentences`)
PROTECTED = ("url", "email", "number", "placeholder", "code")  # nmt-translate protect (`nmt.documents.protect`)
_DEVICE = "the device: auto (CUDA when available, else CPU) | cpu | cuda | cuda:N"
_THREADS = "torch intra-op threads; 0 = one per available core"
_SPLITTER = "rules: the built-in sentence rules; sentencex: the `documents` extra's"
_PIECES = "url, email, number, placeholder ({x}, %s, {{x}}, $X), code (`...`); [] for none"
_CHUNKS = "longest sentence translated whole, in source subword tokens; a longer one is cut at clause punctuation, "


@dataclass
class TrainConfig:
    """Everything `nmt-train` needs."""

    data: DataConfig = option(DataConfig, "the corpus, its filters and batching")
    tokenizer: TokenizerConfig = option(TokenizerConfig, "the SentencePiece model trained on the corpus")
    model: ModelConfig = option(ModelConfig, "the Transformer's shape and variants")
    optim: OptimConfig = option(OptimConfig, "optimizer, learning-rate schedule and loss")
    trainer: TrainerConfig = option(TrainerConfig, "devices, precision, budget and validation interval")
    decode: DecodeConfig = option(DecodeConfig, "the search that validation BLEU translates with")
    augment: AugmentConfig = option(AugmentConfig, "training pairs varied every epoch: SwitchOut, synonyms")
    seed: int = option(1, "random seed for initialisation and data order")
    run_dir: str = option(".", "Hydra sets the working run directory; checkpoints go under it")
    resume: str | None = option(None, 'a checkpoint; "last": run_dir/checkpoints/last.ckpt; "auto": it if it exists')
    init_from: str | None = option(
        None,
        "fine-tune a trained model (model.pt or .ckpt): its weights, model config and tokenizer, with a fresh "
        "optimizer, schedule and step count (unlike resume); a resumed fine-tuning run takes its weights from resume",
    )
    save_top_k: int = option(2, "best checkpoints kept by validation BLEU (plus last)")
    keep_last: int = option(0, "checkpoints of the latest validations also kept, for nmt-average (0 = none)")
    average_last: int = option(
        0,
        "model.pt is the average of the last N checkpoints kept by keep_last (>= N), as nmt-average run=RUN last=N "
        "writes it, instead of the best one by validation BLEU (0 = the best one)",
    )
    ema_decay: float = option(
        0.0,
        "decay of an exponential moving average of the weights (Lightning's EMAWeightAveraging), updated every "
        "step; validation, checkpoints and the exported model use the average (0 = off; 0.999 is usual)",
    )
    ema_start: int = option(0, "the update whose weights begin the average (0: the first); raw weights until then")
    ema_start_fraction: float = option(
        0.0, "with optim.schedule_by=time, instead of ema_start: the share of trainer.max_time after which it begins"
    )
    early_stopping_patience: int = option(0, "validations without BLEU gain before stopping; 0 = off")
    logger: str = option("csv", "training log format", choices=("csv", "tensorboard"))
    val_samples: int = option(3, "sample translations logged at each validation")


@dataclass
class TranslateConfig:
    """Everything `nmt-translate` needs. Omitted input/output mean stdin/stdout."""

    ckpt: Any = option("???", "the checkpoint to translate with (model.pt or a training .ckpt); a list: their ensemble")
    backend: str = option(
        "torch", "the engine; with ctranslate2, ckpt is a model directory written by nmt-export", choices=BACKENDS
    )
    input: str | None = option(None, "text file, one sentence per line (plain or .gz); None: stdin")
    output: str | None = option(None, "file to write (atomically); None: stdout")
    decode: DecodeConfig = option(DecodeConfig, "the search")
    device: str = option("auto", _DEVICE)
    num_threads: int = option(0, _THREADS)
    progress: bool = option(True, "progress bar on stderr; only shown when reading a file")
    buffer_size: int = option(2000, "lines read and translated at a time: memory stays flat however long the input")
    alignments: bool = option(False, "append ` ||| i-j ...` word links (Pharaoh, 0-indexed) to each translation")
    align_method: str = option("attention", "how words are linked, as in nmt-align", choices=ALIGN_METHODS)
    align_layer: int | None = option(
        None,
        "decoder layer whose cross-attention links the words; None: the layer the model was trained to align "
        "(optim.align_layer), else the last",
    )
    input_format: str = option(
        "text",
        'text: one sentence per line; jsonl: {"text": ..., "constraints": [...], "avoid": [...], "prefix": ...} '
        "per line (target terms that must appear, must not appear, and the translation's start)",
        choices=("text", "jsonl"),
    )
    glossary: str | None = option(
        None,
        "`source term<TAB>target term[<TAB>ignore|exact]` file: a sentence containing a source term (whole words, "
        "case-insensitive unless exact, longest first) must contain its target term",
    )
    format: str | None = option(
        None,
        "the input's format, written back in the same: text (a segment per line), html, xml, srt, vtt, docx; "
        "None: by the input's suffix (.html/.htm, .xml/.xhtml, .srt, .vtt, .docx; else, and stdin, text)",
        choices=(None, *DOCUMENT_FORMATS),
    )
    split: str = option(
        "sentences",
        "sentences: each line (segment) is split into sentences, translated in the same batches and rejoined; "
        "none: a line is one sentence (as always with n_best > 1, alignments, a glossary or jsonl input)",
        choices=("sentences", "none"),
    )
    splitter: str = option("rules", _SPLITTER)
    protect: list[str] | None = option(
        None,
        "untranslatable pieces passed through verbatim (kept from the model, put back along the search's "
        f"alignment): {_PIECES}; None: all of them with backend=torch, none with ctranslate2 "
        "(its search gives no attention)",
    )
    max_len: int | None = option(
        None,
        _CHUNKS
        + "then into balanced chunks (never truncated); None: the checkpoint's training data.max_len; 0: never cut",
    )
    harden: list[str] = option(
        [],
        "heads made hard as a probe (`nmt.model.hard_attention`): their weights become a one-hot on the "
        "highest-scoring key; each spec KIND[:LAYER[:HEAD]], KIND enc, dec_self or dec_cross, from 0 "
        "(dec_cross: every cross-attention head; dec_cross:1:3: one head)",
    )


@dataclass
class ExportConfig:
    """Everything `nmt-export` needs: a checkpoint and the CTranslate2 model directory to write."""

    ckpt: str = option("???", "the checkpoint to export (model.pt or a training .ckpt)")
    output: str = option("???", "the directory to write (atomically); an earlier export there is replaced")
    quantization: str = option("float32", "CTranslate2 weight type", choices=QUANTIZATIONS)


@dataclass
class AlignConfig:
    """Everything `nmt-align` needs: a model, sentence pairs, how to read the attention, and optional gold links."""

    ckpt: str = option("???", "the model whose cross-attention aligns (model.pt or a training .ckpt)")
    input: str | None = option(None, "`source ||| target` lines (fast_align format); or give src and tgt")
    src: str | None = option(None, "source sentences, one per line (words: space-separated)")
    tgt: str | None = option(None, "their targets, line by line")
    output: str | None = option(None, "Pharaoh links per line, 0-indexed `i-j` (atomically); None: stdout")
    method: str = option(
        "attention",
        "how words are linked; shift (Chen et al. 2020): at the step where the word is the decoder input",
        choices=ALIGN_METHODS,
    )
    layer: int | None = option(
        None,
        "decoder layer whose cross-attention (mean over heads) is read; negative counts from the top; "
        "None: the layer the model was trained to align (optim.align_layer), else the last",
    )
    reverse_ckpt: str | None = option(None, "a target->source model: symmetrize both directions' links")
    symmetrize: str = option(
        "grow-diag",
        "how both directions' links combine (with reverse_ckpt)",
        choices=("intersection", "union", "grow-diag"),
    )
    gold: str | None = option(None, "gold links (`i-j` sure, `ipj` possible): print precision, recall and AER")
    gold_one_indexed: bool = option(False, "the gold file counts words from 1 (the Hansards set does)")
    all_layers: bool = option(False, "with gold: score both methods at every layer, as a table")
    max_tokens: int = option(4096, "padded target tokens per teacher-forcing batch")
    device: str = option("auto", _DEVICE)
    num_threads: int = option(0, _THREADS)


@dataclass
class PruneConfig:
    """Everything `nmt-prune` needs: a model, when to stop removing heads, and where to write the result."""

    ckpt: str = option("???", "the model to prune (model.pt or a training .ckpt)")
    output: str | None = option(
        None, "the pruned model to write (atomically), like a run's model.pt; None: report only"
    )
    fraction: float | None = option(None, "stop once this fraction of all attention heads is removed")
    tolerance: float | None = option(
        None, "or once validation BLEU falls by more than this; the last model within is kept"
    )
    step: float = option(0.1, "fraction of the heads removed per round (a point of the curve)")
    reestimate: bool = option(
        False, "score the remaining heads anew after each round, instead of once on the full model"
    )
    rank: str = option(
        "importance",
        "how heads are scored: importance (Michel et al.), normalized (per-layer L2), confidence (Voita et al.)",
        choices=PRUNE_RANKS,
    )
    data: DataConfig | None = option(None, "the corpus; None: the one the checkpoint was trained on")
    valid_split: str | None = option(None, "importance and the BLEU that decides; defaults to data.valid")
    report_split: str | None = option(None, "also translated every round, for the curve only (e.g. test2016)")
    curve: str | None = option(None, "write the rounds as JSON here (`nmt-plot --pruning` draws it)")
    decode: DecodeConfig = option(DecodeConfig, "how BLEU and speed are measured")
    max_tokens: int = option(4096, "padded target tokens per teacher-forcing batch when measuring importance")
    device: str = option("auto", _DEVICE)
    num_threads: int = option(0, _THREADS)


@dataclass
class AverageConfig:
    """Everything `nmt-average` needs: the checkpoints to average and the model to write."""

    ckpts: list[str] = option([], "checkpoints to average (model.pt or training .ckpt files)")
    run: str | None = option(None, "or a run directory: average its `last` latest kept checkpoints (keep_last)")
    last: int = option(5, "how many of the run's latest checkpoints")
    output: str = option("???", "the averaged model to write (atomically), like a run's model.pt")


@dataclass
class BacktranslateConfig:
    """Everything `nmt-backtranslate` needs: a reverse model, target-language text and where to write."""

    ckpt: str = option("???", "the reverse model: translates the monolingual text's language into the source language")
    input: str = option("???", "target-language monolingual text, one sentence per line (plain or .gz)")
    output: str = option("???", "the directory of the synthetic corpus (train.{src}, train.{tgt}, provenance.json)")
    tag: str | None = option("<bt>", "put before every synthetic source (tagged back-translation); null: untagged")
    decode: DecodeConfig = option(DecodeConfig, "the search")
    device: str = option("auto", _DEVICE)
    num_threads: int = option(0, _THREADS)


@dataclass
class PrepareConfig:
    """Everything `nmt-prepare` needs: a corpus, tokenizer options and the directory to write."""

    data: DataConfig = option(DataConfig, "the corpus and its filters")
    tokenizer: TokenizerConfig = option(TokenizerConfig, "the SentencePiece model trained on the corpus")
    output: str = option("???", "the directory to write (it must not exist); train on it with data.prepared=DIR")
    workers: int = option(0, "encoding processes; 0 = one per available core")
    tokenizer_from: str | None = option(
        None, "a checkpoint whose tokenizer to use as it is (to fine-tune or resume it)"
    )


@dataclass
class EvaluateConfig:
    """Everything `nmt-evaluate` needs: score files, or translate a test set and score it."""

    hyp: str | None = option(None, "hypothesis file to score (one line per segment)")
    # OmegaConf has no str | list type
    ref: Any = option(None, "one reference file, or a list of them (ref=[A,B])")
    ckpt: Any = option(
        None, "a checkpoint: translate a test set with it and score the translation; a list: their ensemble"
    )
    data: DataConfig | None = option(None, "the corpus `ckpt` translates; None: the one the checkpoint was trained on")
    split: str | None = option(None, "defaults to data.test")
    decode: DecodeConfig = option(DecodeConfig, "the search that translates the test set")
    metrics: list[str] = option(["bleu", "chrf", "ter"], "sacreBLEU metrics", choices=("bleu", "chrf", "chrf++", "ter"))
    tgt_lang: str | None = option(None, "chooses the sacreBLEU tokenizer; defaults to the data's target language")
    tokenize: str | None = option(
        None, "sacreBLEU tokenizer (13a, zh, intl, char, ...) or moses; None chooses by tgt_lang"
    )
    lowercase: bool = option(False, "score case-insensitively")
    bootstrap: int = option(0, "bootstrap resamples for a 95% confidence interval; 0 = off")
    baseline: str | None = option(None, "a baseline system's output: paired significance test against `hyp`")
    significance: str = option(
        "bs", "the paired test: bs (paired bootstrap) or ar (approximate randomisation)", choices=("bs", "ar")
    )
    json: bool = option(False, "print the result as JSON instead of Markdown tables")
    output: str | None = option(None, "where to save the translation when ckpt is given")
    constraints: str | None = option(
        None,
        "nmt-translate's jsonl input for the test set, one line per line, each `text` its source line: the "
        "translation (with ckpt) keeps its constraints, avoid and prefix; term use is reported (with hyp too)",
    )
    glossary: str | None = option(
        None,
        "as nmt-translate's: a source line containing a source term must contain its target term; term use is "
        "reported (with hyp, the source lines are the `text` of `constraints`)",
    )
    harden: list[str] = option(
        [],
        "heads made hard as a probe of `ckpt` (`nmt.model.hard_attention`): their weights become a one-hot on the "
        "highest-scoring key; each spec KIND[:LAYER[:HEAD]], KIND enc, dec_self or dec_cross, from 0 "
        "(dec_cross: every cross-attention head; dec_cross:1:3: one head)",
    )
    device: str = option("auto", _DEVICE)
    num_threads: int = option(0, _THREADS)


@dataclass
class BenchmarkConfig:
    """Everything `nmt-benchmark` needs: one checkpoint, test splits, and a grid of decode settings."""

    ckpt: Any = option("???", "the checkpoint to benchmark; a list: their ensemble (backends=[torch])")
    data: DataConfig | None = option(None, "the corpus to translate; None: the one the checkpoint was trained on")
    splits: list[str] = option([], "test splits; empty means [data.test]")
    decode: DecodeConfig = option(DecodeConfig, "the base settings the grid varies")
    beam_sizes: list[int] = option([1, 5], "beam sizes to try (1 = greedy)")
    length_penalties: list[float] = option([1.0], "GNMT alphas to try")
    precisions: list[str] = option(["32"], "decode.precision values to try", choices=PRECISIONS)
    backends: list[str] = option(["torch"], "backends to try (ctranslate2: exported on the fly)", choices=BACKENDS)
    repeats: int = option(3, "timed runs per setting; the median is reported")
    tokenize: str | None = option(None, "sacreBLEU tokenizer; None chooses by target language")
    glossary: str | None = option(
        None,
        "as nmt-translate's: every setting also runs with its terms as constraints, side by side "
        "(`constraints` column); every row then reports term use",
    )
    output: str | None = option(None, "JSON file to write (atomically); the Markdown table always goes to stdout")
    device: str = option("auto", _DEVICE)
    num_threads: int = option(0, _THREADS)


@dataclass
class ServeConfig:
    """Everything `nmt-serve` needs: one model, where to listen, how to batch, and the limits of a request."""

    ckpt: str = option("???", "the checkpoint to serve (model.pt or a training .ckpt)")
    decode: DecodeConfig = option(
        DecodeConfig,
        "the search, and its batches (max_tokens, max_sentences); requests may change beam_size, "
        "n_best, length_penalty and no_repeat_ngram within the bounds below",
    )
    device: str = option("auto", _DEVICE)
    num_threads: int = option(0, _THREADS)
    host: str = option("127.0.0.1", "address to listen on; 0.0.0.0 for every interface (e.g. behind a proxy)")
    port: int = option(5000, "TCP port to listen on (5000, as LibreTranslate)")
    max_wait_ms: float = option(
        5.0, "how long a batch waits for more sentences, after its first one arrived and after the last batch, in ms"
    )
    switch_interval_ms: float = option(
        0.5, "ms a thread may hold the interpreter while the worker waits for it (Python's default: 5; docs/serve.md)"
    )
    merge_requests: bool = option(True, "batch the sentences of concurrent requests together; false: one per batch")
    continuous: bool = option(
        True, "sentences join the running search between its steps, leave when done; false: batches run to their end"
    )
    join_share: float = option(0.125, "continuous: sentences join in groups of this share of those running (<=2 steps)")
    max_queue_tokens: int = option(
        16000,
        "source tokens waiting at most (size it to a second or two of the server's tokens/s); a request past it "
        "is answered 503 with Retry-After at once",
    )
    request_timeout: float = option(30.0, "seconds a request may wait and translate before it is answered 504")
    shutdown_grace: float = option(30.0, "on SIGTERM: seconds to finish the queued requests before exiting")
    keep_alive: float = option(
        75.0, "seconds an idle connection stays open; longer than a reverse proxy's, so that the proxy closes first"
    )
    max_body_bytes: int = option(1_000_000, "bytes of a request body; a larger one is answered 413")
    max_chars: int = option(20000, "characters of text per request")
    max_lines: int = option(1000, "lines per request, over all its texts (a line may hold several sentences)")
    max_alternatives: int = option(4, "LibreTranslate `alternatives` per request (the native n_best is this + 1)")
    max_beam_size: int = option(8, "largest beam_size a request may ask for")
    split: str = option(
        "sentences",
        "sentences: each request line (an HTML segment) is split into sentences, translated in the same batches and "
        "rejoined, as nmt-translate does; none: a line is one sentence (as always with n_best > 1 or alignments)",
        choices=("sentences", "none"),
    )
    splitter: str = option("rules", _SPLITTER)
    protect: list[str] | None = option(
        None,
        "untranslatable pieces passed through verbatim (kept from the model, put back along the search's "
        f"attention): {_PIECES}; None: all",
    )
    max_len: int | None = option(
        None,
        _CHUNKS
        + "then into balanced chunks (never refused, never truncated); None: the checkpoint's training data.max_len; "
        "0: never cut (a sentence longer than the model takes is refused)",
    )
    align_method: str = option(
        "attention", "how alignments, markup and protected pieces link words, as in nmt-align", choices=ALIGN_METHODS
    )
    align_layer: int | None = option(
        None,
        "decoder layer whose cross-attention gives alignments, the attention matrix and markup placement; "
        "None: the layer the model was trained to align (optim.align_layer), else the last",
    )
    api_keys: list[str] = option([], "keys a request must give (api_key, or Authorization: Bearer); [] = none needed")
    api_keys_file: str | None = option(None, "a file of further keys, one per line")
    cors_origins: list[str] = option([], 'origins browsers may call from (["*"]: any); [] = no CORS headers')
    page: bool = option(True, "serve the web page at /")
    log_requests: bool = option(True, "one JSON line per request on stderr")


def reference_paths(cfg: EvaluateConfig) -> list[str]:
    """`ref` as a list of paths, whether one path or several were given."""
    if cfg.ref is None:
        return []
    return [cfg.ref] if isinstance(cfg.ref, str) else [str(r) for r in cfg.ref]
