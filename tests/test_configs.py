"""Every shipped config composes, validates against its schema, and bad values fail with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
from nmt.config import ConfigError, EvaluateConfig, ExportConfig, TrainConfig, TranslateConfig

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
