"""The option groups that several commands share: data, tokenizer, model, optimisation, trainer, decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    # pairs per training and validation batch, as fairseq's --batch-size; 0 or null: no cap (max_tokens alone)
    max_sentences: int | None = None
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
    max_bad_steps: int = 10  # stop after this many consecutive non-finite losses (32 and bf16-mixed)
    fp16_init_scale: float = 128.0  # 16-mixed: the GradScaler's first loss scale (fairseq's --fp16-init-scale)
    fp16_min_scale: float = 1e-4  # 16-mixed: stop when the loss scale falls below this (fairseq's --min-loss-scale)


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
    progress_bar: bool | None = None  # a progress bar on stderr; null = where stderr is a terminal, else log lines
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
    # sentences per translation batch, counted before the beam (a batch runs max_sentences x beam_size
    # hypotheses), as fairseq's --batch-size; 0 or null: no cap
    max_sentences: int | None = None
    # arithmetic of the search: 32 | bf16 (bfloat16 weights) | fp16 (float16 weights, CUDA only) | int8 (backend
    # torch: int8 linear layers, CPU only; backend ctranslate2: int8, on CUDA int8_float16 = int8 weights, float16 rest)
    precision: str = "32"
    sampling: bool = False  # draw every token at random instead of searching (decode=sample): n_best samples per input
    temperature: float = 1.0  # sampling: logits are divided by it; towards 0 sampling approaches greedy search
    top_k: int = 0  # sampling: draw among the k most probable tokens (0 = all)
    top_p: float = 1.0  # sampling: draw among the fewest tokens whose probability reaches p (nucleus; 1 = all)
    epsilon: float = 0.0  # sampling: never draw a token less probable than this (0 = no limit)
    seed: int = 0  # sampling: the random seed; the same seed, input and options give the same samples
