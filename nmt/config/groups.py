"""The option groups that several commands share: data, tokenizer, model, optimisation, trainer, decoding.

Each field's meaning, allowed values and roles are its metadata (`nmt.config.options.option`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nmt.config.options import option

PRECISIONS = ("32", "bf16", "fp16", "int8")  # decode.precision


@dataclass
class AugmentConfig:
    """Augmentation of the training pairs, drawn afresh every epoch (`nmt.data.augment`)."""

    switchout: float = option(
        0.0,
        "SwitchOut's temperature tau (Wang et al. 2018): random words put into both sides, about "
        "1/(e^(1/tau) - 1) per long sentence; 0 = off",
    )
    synonyms: str | None = option(
        None, "a file of synonym sets, one per line (scripts/build_synonyms.py): source words replaced by them"
    )
    synonym_rate: float = option(0.1, "chance that each source word found in `synonyms` is replaced, per epoch")
    synonym_min_count: int = option(5, "occurrences in the training sources a replacement needs")


@dataclass
class DataConfig:
    """Which parallel corpus to read, and how to filter and batch it.

    For `name=files`, `train`/`valid`/`test` are path prefixes: the files are
    `{prefix}.{src_lang}` and `{prefix}.{tgt_lang}` (optionally `.gz`), like
    fairseq's `--trainpref`. For named corpora they are split names.
    """

    name: str = option(
        "builtin",
        "the corpus",
        choices=("builtin", "multi30k", "tatoeba", "wmt14", "files"),
        roles=("corpus", "tokenizer"),
    )
    src_lang: str = option(
        "en", "source language code (for files: the suffix of the source files)", roles=("corpus", "tokenizer")
    )
    tgt_lang: str = option(
        "de", "target language code (for files: the suffix of the target files)", roles=("corpus", "tokenizer")
    )
    root: str | None = option(
        None, "local directory with the corpus files; None: download", roles=("corpus", "incidental")
    )
    cache_dir: str = option(
        "~/.cache/nmt", "downloads and trained SentencePiece models", roles=("runtime", "incidental")
    )
    # OmegaConf has no str | list type
    train: Any = option(
        "train",
        "training split (for files: a path prefix), or a list of them read as one corpus (train=[europarl,news])",
        roles=("corpus", "tokenizer"),
    )
    train_links: str | None = option(
        None,
        "word links of the training pairs for guided alignment (optim.align_weight): one Pharaoh line (`0-0 1-2`, "
        "0-indexed words) per pair, in the training files' order",
        roles=("corpus",),
    )
    valid: str = option("valid", "validation split: picks the best checkpoint", roles=("corpus",))
    test: str = option("test", "test split scored by nmt-evaluate and nmt-benchmark")
    max_len: int = option(128, "subword tokens per side; longer training pairs are dropped", roles=("corpus",))
    max_ratio: float = option(3.0, "drop training pairs whose length ratio exceeds this", roles=("corpus",))
    max_tokens: int = option(
        4096,
        "padded positions per side of a training or validation batch (pairs x the longest side in it)",
        roles=("runtime",),
    )
    max_sentences: int | None = option(
        None,
        "pairs per training and validation batch, as fairseq's --batch-size; 0 or null: no cap (max_tokens alone)",
        roles=("runtime",),
    )
    builtin_train_size: int = option(20000, "pairs in the built-in corpus's train split", roles=("corpus", "tokenizer"))
    prepared: str | None = option(
        None,
        "a directory written by nmt-prepare; None: prepare the corpus above into cache_dir",
        roles=("runtime",),
    )
    # Not `incidental` (though it is), so that sweep job directories keep the names they had.
    num_workers: int = option(
        0,
        "DataLoader worker processes assembling training batches; 0 = in the training process",
        roles=("runtime",),
    )


@dataclass
class TokenizerConfig:
    """SentencePiece options; the trained model is cached by a hash of data and options."""

    model_type: str = option("unigram", "subword algorithm", choices=("unigram", "bpe"), roles=("tokenizer",))
    vocab_size: int = option(
        8000, "pieces asked for; a small corpus may give fewer (the real size is printed)", roles=("tokenizer",)
    )
    joint: bool = option(True, "one model for both languages (needed to share all embeddings)", roles=("tokenizer",))
    character_coverage: float = option(
        1.0, "share of characters covered by the vocabulary (0.9995 for Chinese)", roles=("tokenizer",)
    )
    input_sentence_size: int = option(
        1_000_000, "pairs sampled (seeded, uniformly) from the corpus to train on", roles=("tokenizer",)
    )
    sample_seed: int = option(
        0, "seed of that sample: the same corpus and options give the same tokenizer", roles=("tokenizer",)
    )
    normalization: str = option(
        "nmt_nfkc",
        'SentencePiece normalisation: nmt_nfkc and nfkc apply NFKC (full-width "，" becomes ","), the _cf ones '
        "also case-fold, identity keeps the text as is (and the full-width punctuation of Chinese references)",
        choices=("nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"),
        roles=("tokenizer",),
    )
    user_symbols: list[str] = option([], 'pieces kept whole, e.g. a back-translation tag "<bt>"', roles=("tokenizer",))


@dataclass
class ModelConfig:
    """Transformer shape and variants (Vaswani et al. 2017 names in the help)."""

    d_model: int = option(512, "d_model: embedding and hidden size")
    n_heads: int = option(8, "h: attention heads (d_model must divide by it)")
    enc_layers: int = option(6, "N (encoder)")
    dec_layers: int = option(6, "N (decoder)")
    d_ff: int = option(2048, "d_ff: hidden size of the feed-forward sublayers")
    dropout: float = option(0.1, "P_drop on sublayer outputs and embeddings")
    attn_dropout: float = option(0.0, "dropout on attention weights")
    act_dropout: float = option(0.0, "dropout after the feed-forward activation")
    activation: str = option("relu", "feed-forward activation", choices=("relu", "gelu"))
    attention: str = option("scaled_dot", "attention score", choices=("scaled_dot", "dot", "additive"))
    attention_weights: str = option(
        "softmax",
        "how scores become weights: softmax (the fused kernel), entmax15 or sparsemax (sparse; the entmax extra), "
        "topk (softmax over the attention_topk best keys), hard (one-hot on the best key, straight-through "
        "softmax gradient)",
        choices=("softmax", "entmax15", "sparsemax", "topk", "hard"),
    )
    attention_topk: int = option(4, "keys each query keeps with attention_weights=topk")
    positions: str = option("sinusoidal", "position encoding", choices=("sinusoidal", "learned"))
    max_positions: int = option(1024, "longest sequence the model accepts, in tokens")
    norm: str = option("pre", "LayerNorm placement around each sublayer", choices=("pre", "post"))
    tie_output: bool = option(True, "decoder input embedding == output projection")
    share_all_embeddings: bool = option(False, "encoder embedding too; needs a joint vocabulary")
    # Heads kept in each layer after pruning (nmt-prune), each of width d_model / n_heads.
    enc_heads: list[int] = option(
        [], "heads kept per encoder layer (self-attention) after nmt-prune; [] = n_heads everywhere"
    )
    dec_self_heads: list[int] = option(
        [], "heads kept per decoder layer in self-attention after nmt-prune; [] = n_heads everywhere"
    )
    dec_cross_heads: list[int] = option(
        [], "heads kept per decoder layer in cross-attention after nmt-prune; [] = n_heads everywhere"
    )

    def heads(self, attention: str) -> list[int]:
        """Heads per layer of one kind of attention: `enc`, `dec_self` or `dec_cross`."""
        counts = getattr(self, f"{attention}_heads")
        return list(counts) or [self.n_heads] * (self.enc_layers if attention == "enc" else self.dec_layers)


@dataclass
class OptimConfig:
    """Optimizer, schedule and loss."""

    optimizer: str = option("adamw", "the optimizer", choices=("adam", "adamw"))
    lr: float = option(5e-4, "peak learning rate")
    betas: tuple[float, float] = option((0.9, 0.98), "Adam's beta1, beta2 (Vaswani et al. 2017)")
    eps: float = option(1e-9, "Adam's epsilon")
    weight_decay: float = option(0.0, "decoupled weight decay (adamw)")
    schedule: str = option(
        "inverse_sqrt",
        "learning rate after warmup (linear decays to 0 at trainer.max_steps, or by time at trainer.max_time)",
        choices=("inverse_sqrt", "linear"),
    )
    schedule_by: str = option(
        "steps",
        "what the schedule counts: steps (warmup_steps, trainer.max_steps, ema_start, trainer.val_check_interval) "
        "or time: shares of trainer.max_time, the wall time of the fit with validation included, across resumes "
        "(warmup_fraction, ema_start_fraction, trainer.val_check_fraction); max_time alone then ends the run",
        choices=("steps", "time"),
    )
    warmup_steps: int = option(4000, "steps of linear warmup to `lr` (schedule_by=steps)")
    warmup_fraction: float = option(
        0.1, "share of trainer.max_time spent in linear warmup to `lr` (schedule_by=time), in [0, 1)"
    )
    label_smoothing: float = option(0.1, "epsilon_ls of the smoothed cross-entropy, in [0, 1)")
    align_weight: float = option(
        0.0,
        "guided alignment (Garg et al. 2019): weight of the cross-entropy of align_layer's cross-attention "
        "(mean over heads) against data.train_links; 0: off",
    )
    align_layer: int = option(
        -1, "the decoder layer whose cross-attention align_weight trains (negative: from the top)"
    )
    max_bad_steps: int = option(10, "stop after this many consecutive non-finite losses (32 and bf16-mixed)")
    fp16_init_scale: float = option(128.0, "16-mixed: the GradScaler's first loss scale (fairseq's --fp16-init-scale)")
    fp16_min_scale: float = option(
        1e-4, "16-mixed: stop when the loss scale falls below this (fairseq's --min-loss-scale)"
    )


@dataclass
class TrainerConfig:
    """The subset of Lightning Trainer options a run chooses."""

    accelerator: str = option("cpu", "the device kind to train on", choices=("cpu", "gpu", "auto"))
    devices: int = option(1, "devices (GPUs) to train on, per node")
    num_nodes: int = option(1, "machines taking part (multi-node DDP, launched by torchrun or SLURM)")
    strategy: str = option("auto", "Lightning's distribution strategy: auto | ddp")
    precision: str = option(
        "32",
        "training arithmetic; auto: bf16-mixed where the hardware computes bf16, else 32",
        choices=("32", "bf16-mixed", "16-mixed", "auto"),
    )
    max_steps: int = option(-1, "optimizer steps to train; -1 = no limit (not used with optim.schedule_by=time)")
    max_epochs: int = option(100, "passes over the training data (not used with optim.schedule_by=time)")
    max_time: str | None = option(
        None,
        'wall-clock budget "DD:HH:MM:SS" of the fit, validation included, across resumes; with '
        "optim.schedule_by=time also the length of the schedule",
    )
    gradient_clip_val: float = option(1.0, "clip the gradient norm to this")
    accumulate_grad_batches: int = option(1, "batches summed into one optimizer step")
    val_check_interval: int = option(
        500, "training batches between validations (loss + BLEU); with optim.schedule_by=time: val_check_fraction"
    )
    val_check_fraction: float = option(
        0.1, "optim.schedule_by=time: validate at the end of max_time and every this share of it before, in (0, 1]"
    )
    log_every_n_steps: int = option(50, "training loss and learning rate logged every this many steps")
    num_threads: int = option(0, "torch intra-op threads; 0 = one per available core", roles=("incidental",))
    progress_bar: bool | None = option(
        None,
        "a progress bar on stderr; null = where stderr is a terminal, else log lines",
        roles=("incidental",),
    )
    compile: bool = option(False, "torch.compile the model for training")
    trim_every: int = option(
        10,
        "CPU: training steps between handing the memory that training freed back to the system (glibc's "
        "malloc_trim); fewer: a lower peak of resident memory; 0 = never",
        roles=("incidental",),
    )


@dataclass
class DecodeConfig:
    """Search options for translation and validation BLEU."""

    beam_size: int = option(5, "hypotheses kept per sentence; 1 = greedy")
    length_penalty: float = option(1.0, "alpha of GNMT ((5+len)/6)^alpha (Wu et al. 2016)")
    length_norm: str = option("gnmt", "divisor of the summed log-probs", choices=("gnmt", "average", "none"))
    max_len_a: float = option(1.5, "max output length = a * source length + b; a >= 0")
    max_len_b: int = option(10, "b of the max output length; a + b >= 1")
    min_len: int = option(1, "shortest output before EOS is allowed, in tokens")
    n_best: int = option(1, 'hypotheses printed per input (as "i ||| text ||| score" when > 1); <= beam_size')
    no_repeat_ngram: int = option(0, "block repeated n-grams of this size (0 = off)")
    max_tokens: int = option(8000, "source tokens per translation batch (padded, counted before the beam)")
    max_sentences: int | None = option(
        None,
        "sentences per translation batch, counted before the beam (a batch runs max_sentences x beam_size "
        "hypotheses), as fairseq's --batch-size; 0 or null: no cap",
    )
    precision: str = option(
        "32",
        "arithmetic of the search: bf16 = bfloat16 weights; fp16 = float16 weights, CUDA only; int8 = int8 linear "
        "layers, CPU only (backend torch), or CTranslate2's int8 (on CUDA int8_float16: int8 weights, float16 rest)",
        choices=PRECISIONS,
    )
    sampling: bool = option(
        False, "draw every token at random instead of searching (decode=sample): n_best samples per input"
    )
    temperature: float = option(1.0, "sampling: logits are divided by it; towards 0 sampling approaches greedy search")
    top_k: int = option(0, "sampling: draw among the k most probable tokens (0 = all)")
    top_p: float = option(1.0, "sampling: draw among the fewest tokens whose probability reaches p (nucleus; 1 = all)")
    epsilon: float = option(0.0, "sampling: never draw a token less probable than this (0 = no limit)")
    seed: int = option(0, "sampling: the random seed; the same seed, input and options give the same samples")
    ordered_constraints: bool = option(
        False, "positive constraints (glossary terms, jsonl constraints) must appear in the order given"
    )
