"""Every shipped config composes, validates against its schema, and bad values fail with the key named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
from nmt.config import (
    AlignConfig,
    AverageConfig,
    BenchmarkConfig,
    ConfigError,
    EvaluateConfig,
    ExportConfig,
    PruneConfig,
    TrainConfig,
    TranslateConfig,
)

GROUPS = ["data", "model", "trainer", "decode", "experiment"]
FILES_LANGS = ["data.src_lang=en", "data.tgt_lang=it"]


def _compose(name: str, overrides: list[str]):
    register_schemas()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


TRANSLATION_ONLY = {("decode", "sample")}  # validation BLEU searches; sampling is for translation


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in GROUPS for o in _options(g) if (g, o) not in TRANSLATION_ONLY],
    ids=lambda x: str(x),
)
def test_every_group_option_composes_into_a_valid_train_config(group, option):
    overrides = [f"{group}={option}", "run_dir=/tmp/nmt-test-run"]
    if (group, option) == ("data", "files"):
        overrides += FILES_LANGS
    cfg = to_dataclass(_compose("train", overrides), TrainConfig)
    assert isinstance(cfg, TrainConfig)


def test_sampling_composes_for_translation_and_is_refused_for_training():
    cfg = to_dataclass(_compose("translate", ["decode=sample", "ckpt=m.pt", "decode.n_best=3"]), TranslateConfig)
    assert cfg.decode.sampling and cfg.decode.n_best == 3
    with pytest.raises(ConfigError, match=r"`decode.sampling` must be false for training"):
        to_dataclass(_compose("train", ["decode=sample", "run_dir=/tmp/x"]), TrainConfig)


def test_defaults_train_tiny_on_builtin():
    cfg = to_dataclass(_compose("train", ["run_dir=/tmp/x"]), TrainConfig)
    assert (cfg.data.name, cfg.model.d_model, cfg.decode.beam_size) == ("builtin", 64, 1)


def test_model_presets_follow_vaswani_dimensions():
    base = to_dataclass(_compose("train", ["model=base", "run_dir=/tmp/x"]), TrainConfig).model
    big = to_dataclass(_compose("train", ["model=big", "run_dir=/tmp/x"]), TrainConfig).model
    assert (base.d_model, base.d_ff, base.n_heads, base.enc_layers) == (512, 2048, 8, 6)
    assert (big.d_model, big.d_ff, big.n_heads, big.dropout) == (1024, 4096, 16, 0.3)


def test_translate_and_evaluate_configs_compose():
    tcfg = to_dataclass(_compose("translate", ["ckpt=m.pt", "decode=greedy"]), TranslateConfig)
    assert (tcfg.decode.beam_size, tcfg.input, tcfg.output) == (1, None, None)
    ecfg = to_dataclass(_compose("evaluate", ["hyp=h.txt", "ref=[a.txt,b.txt]"]), EvaluateConfig)
    assert ecfg.ref == ["a.txt", "b.txt"]


def test_export_config_composes_and_checks_the_quantization():
    cfg = to_dataclass(_compose("export", ["ckpt=m.pt", "output=m_ct2"]), ExportConfig)
    assert (cfg.ckpt, cfg.output, cfg.quantization) == ("m.pt", "m_ct2", "float32")
    with pytest.raises(ConfigError, match="`quantization` must be one of float32, int8"):
        to_dataclass(_compose("export", ["ckpt=m.pt", "output=m_ct2", "quantization=int4"]), ExportConfig)
    tcfg = to_dataclass(_compose("translate", ["ckpt=m_ct2", "backend=ctranslate2"]), TranslateConfig)
    assert tcfg.backend == "ctranslate2"


def test_unknown_key_fails_naming_it():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as err:
        _compose("train", ["model.d_modle=64"])
    assert "d_modle" in str(err.value) + str(err.value.__cause__)


def test_wrong_type_fails_naming_the_key():
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        _compose("train", ["model.d_model=wide"])
    assert "d_model" in str(err.value) + str(err.value.__cause__)


def test_rule_violations_are_collected_and_reported_together():
    dcfg = _compose("train", ["model.n_heads=5", "decode.n_best=4", "model.attention=cosine", "run_dir=/tmp/x"])
    with pytest.raises(ConfigError) as err:
        to_dataclass(dcfg, TrainConfig)
    message = str(err.value)
    assert "`model.d_model` must be divisible by n_heads (5), but is 64 instead." in message
    assert "`decode.n_best` must be <= `decode.beam_size` (1), but is 4 instead." in message
    assert "`model.attention` must be one of scaled_dot, dot, additive" in message


def test_missing_mandatory_value_fails_naming_it():
    with pytest.raises(ConfigError, match="`ckpt` is required, but is not given: add ckpt=... to the command line"):
        to_dataclass(_compose("translate", []), TranslateConfig)


def test_translate_refuses_output_equal_to_input():
    with pytest.raises(ConfigError, match="`output` must differ from `input`"):
        to_dataclass(_compose("translate", ["ckpt=m.pt", "input=a.txt", "output=a.txt"]), TranslateConfig)


def test_sentence_caps_and_fp16_compose_and_negative_caps_are_refused():
    overrides = ["ckpt=m.pt", "decode.precision=fp16", "decode.max_sentences=32"]
    tcfg = to_dataclass(_compose("translate", overrides), TranslateConfig)
    assert (tcfg.decode.precision, tcfg.decode.max_sentences) == ("fp16", 32)
    cfg = to_dataclass(_compose("train", ["run_dir=/tmp/x", "data.max_sentences=null"]), TrainConfig)
    assert cfg.data.max_sentences is None and cfg.decode.max_sentences is None  # the default: no cap
    with pytest.raises(ConfigError) as err:
        to_dataclass(
            _compose("train", ["run_dir=/tmp/x", "data.max_sentences=-1", "decode.max_sentences=-2"]), TrainConfig
        )
    message = str(err.value)
    assert "`data.max_sentences` must be >= 0 (0 or null: no cap), but is -1 instead." in message
    assert "`decode.max_sentences` must be >= 0 (0 or null: no cap), but is -2 instead." in message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.n_heads=0", "`model.n_heads` must be >= 1, but is 0 instead."),
        ("model.n_heads=-4", "`model.n_heads` must be >= 1, but is -4 instead."),
        ("model.d_ff=0", "`model.d_ff` must be >= 1, but is 0 instead."),
        ("trainer.accumulate_grad_batches=0", "`trainer.accumulate_grad_batches` must be >= 1, but is 0 instead."),
        ("trainer.val_check_interval=0", "`trainer.val_check_interval` must be >= 1, but is 0 instead."),
        ("trainer.gradient_clip_val=-1", "`trainer.gradient_clip_val` must be >= 0 (0 = off), but is -1.0 instead."),
        ("optim.betas=[0.9,1.0]", "`optim.betas` must be two values in [0, 1), but is [0.9, 1.0] instead."),
        ("optim.eps=-1e-9", "`optim.eps` must be > 0, but is -1e-09 instead."),
        ("optim.weight_decay=-0.1", "`optim.weight_decay` must be >= 0, but is -0.1 instead."),
    ],
)
def test_training_values_that_would_crash_or_climb_the_loss_are_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        to_dataclass(_compose("train", ["run_dir=/tmp/x", override]), TrainConfig)
    assert message in str(err.value)
    to_dataclass(_compose("train", ["run_dir=/tmp/x"]), TrainConfig)  # the defaults pass


def test_guided_alignment_on_a_layer_without_cross_attention_heads_is_refused():
    overrides = ["run_dir=/tmp/x", "optim.align_weight=0.5", "data.train_links=links.txt", "model.dec_layers=2"]
    with pytest.raises(ConfigError, match=r"`optim.align_layer` -1 has no cross-attention heads"):
        to_dataclass(_compose("train", [*overrides, "model.dec_cross_heads=[4,0]"]), TrainConfig)
    to_dataclass(_compose("train", [*overrides, "model.dec_cross_heads=[0,4]"]), TrainConfig)


@pytest.mark.parametrize(
    ("command", "overrides", "refused"),
    [
        ("translate", ["ckpt=m.pt", "decode=sample", "glossary=t.tsv"], "glossary"),
        ("evaluate", ["ckpt=m.pt", "decode=sample", "constraints=c.jsonl"], "constraints"),
        ("benchmark", ["ckpt=m.pt", "decode=sample", "glossary=t.tsv"], "glossary"),
    ],
)
def test_sampling_with_terms_is_refused_before_any_line(command, overrides, refused):
    schema = {"translate": TranslateConfig, "evaluate": EvaluateConfig, "benchmark": BenchmarkConfig}[command]
    with pytest.raises(ConfigError, match=rf"{refused} \(terms, prefixes, words to avoid\) need beam or greedy"):
        to_dataclass(_compose(command, overrides), schema)
    to_dataclass(_compose(command, overrides[:1] + overrides[2:]), schema)  # with beam search: accepted


def test_sampling_benchmarked_with_ctranslate2_is_refused():
    overrides = ["ckpt=m.pt", "decode=sample", "backends=[torch,ctranslate2]"]
    with pytest.raises(ConfigError, match=r"`decode.sampling` needs `backends` \[torch\]"):
        to_dataclass(_compose("benchmark", overrides), BenchmarkConfig)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["all_layers=true", "output=links.txt"], "`output` must be unset with all_layers"),
        (["all_layers=true", "reverse_ckpt=r.pt"], "`reverse_ckpt` must be unset with all_layers"),
        (["max_tokens=0"], "`max_tokens` must be >= 1, but is 0 instead."),
    ],
)
def test_align_options_it_would_ignore_or_crash_on_are_refused(overrides, message):
    base = ["ckpt=m.pt", "src=a.en", "tgt=a.fr", "gold=a.gold"]
    with pytest.raises(ConfigError, match=re.escape(message)):
        to_dataclass(_compose("align", base + overrides), AlignConfig)
    to_dataclass(_compose("align", [*base, "all_layers=true"]), AlignConfig)


@pytest.mark.parametrize(
    ("command", "overrides", "message"),
    [
        ("average", ["run=runs/a", "output=runs/a/checkpoints/last.ckpt"], "`output` must differ from the inputs"),
        ("average", ["ckpts=[a.ckpt,b.ckpt]", "output=./b.ckpt"], "`output` must differ from the inputs"),
        ("prune", ["ckpt=m.pt", "fraction=0.5", "output=m.pt"], "`output` must differ from the inputs"),
        ("prune", ["ckpt=m.pt", "fraction=0.5", "curve=m.pt"], "`curve` must differ from the inputs"),
        ("evaluate", ["ckpt=m.pt", "ref=mine.de"], "`ref` scores `hyp`"),
        ("evaluate", ["hyp=h.de", "ref=r.de", "output=o.de"], "`output` needs `ckpt`"),
        ("evaluate", ["hyp=h.de", "ref=r.de", "split=test"], "`split` needs `ckpt`"),
        ("evaluate", ["hyp=h.de", "ref=r.de", "metrics=[bleu,meteor]"], "`metrics` must be a non-empty list of bleu"),
    ],
)
def test_options_that_would_destroy_an_input_or_be_ignored_are_refused(command, overrides, message):
    schema = {"average": AverageConfig, "prune": PruneConfig, "evaluate": EvaluateConfig}[command]
    with pytest.raises(ConfigError, match=re.escape(message)):
        to_dataclass(_compose(command, overrides), schema)
