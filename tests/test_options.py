"""Options described once: `--help`, `check`, the cache keys, resume, sweep names and the reference page all
read the config fields' metadata, and reading it changes no key the hand-kept lists made before."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import sys
import types
from pathlib import Path

import pytest
import sentencepiece as spm
from omegaconf import OmegaConf

import nmt.config
from nmt.cli import train
from nmt.cli.hydra_config import CONF_DIR
from nmt.config import BenchmarkConfig, ConfigError, DataConfig, ModelConfig, TokenizerConfig, TrainConfig, check
from nmt.config.options import ROLES, fields_with_role, help_of, keys_with_role, option
from nmt.config.reference import COMMANDS, GROUPS, configuration_markdown
from nmt.data.prepare import ADDED_CORPUS_OPTIONS, VERSION, cache_key
from nmt.data.tokenizer import TRAINING_VERSION, _cache_key

CONFIGS = [*GROUPS.values(), *COMMANDS.values()]


def _help(args: list[str], monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, "argv", ["nmt-train", *args, "--help"])
    train.main()
    return capsys.readouterr().out


def test_help_and_reference_page_come_from_the_same_metadata(monkeypatch, capsys):
    (max_tokens,) = [f for f in dataclasses.fields(DataConfig) if f.name == "max_tokens"]
    metadata = {**max_tokens.metadata, "help": "a meaning written once"}
    monkeypatch.setattr(max_tokens, "metadata", types.MappingProxyType(metadata))
    assert "data.max_tokens=2048                     a meaning written once\n" in _help([], monkeypatch, capsys)
    assert "| `max_tokens` | int | `4096` |  | `runtime` | a meaning written once |" in configuration_markdown()


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_has_a_meaning_and_known_roles(cls):
    for f in dataclasses.fields(cls):
        assert help_of(cls, f.name).strip(), f"{cls.__name__}.{f.name} has no help"
        assert set(f.metadata["roles"]) <= set(ROLES)


def test_every_config_dataclass_is_on_the_reference_page():
    exported = {getattr(nmt.config, n) for n in nmt.config.__all__ if n.endswith("Config") and n != "ConfigError"}
    assert exported == set(CONFIGS)
    page = configuration_markdown()
    for name in [*GROUPS, *COMMANDS]:
        assert f"\n### {name}\n" in page


def test_option_refuses_an_unknown_role_and_copies_list_defaults():
    with pytest.raises(ValueError, match="`roles` must be among corpus, tokenizer"):
        option(0, "speed", roles=("fast",))
    assert ModelConfig().enc_heads is not ModelConfig().enc_heads


def test_choices_in_the_metadata_are_enforced_by_check():
    with pytest.raises(ConfigError, match=r"`model.norm` must be one of pre, post, but is 'middle' instead\."):
        check(TrainConfig(model=ModelConfig(norm="middle")))
    with pytest.raises(ConfigError, match=r"`precisions` must be a non-empty list of 32, bf16, fp16, int8, but is"):
        check(BenchmarkConfig(ckpt="m.pt", precisions=["fp8"]))


def test_roles_give_the_lists_that_were_kept_by_hand():
    # nmt/data/prepare.py cache_key left these data fields out of the prepared corpus's key
    old_excluded = ("test", "max_tokens", "max_sentences", "cache_dir", "prepared", "num_workers")
    names = [f.name for f in dataclasses.fields(DataConfig)]
    assert fields_with_role(DataConfig, "corpus") == tuple(n for n in names if n not in old_excluded)
    # nmt/train/resume.py TOKENIZER_DATA_KEYS, and every tokenizer option
    assert fields_with_role(DataConfig, "tokenizer") == ("name", "src_lang", "tgt_lang", "train", "builtin_train_size")
    assert fields_with_role(TokenizerConfig, "tokenizer") == tuple(f.name for f in dataclasses.fields(TokenizerConfig))
    # nmt/train/run.py with_prepared_data: the run's own options over a prepared directory's
    old_own = ("prepared", "max_tokens", "max_sentences", "num_workers", "cache_dir")
    assert set(fields_with_role(DataConfig, "runtime")) == set(old_own)
    # conf/train.yaml: YAML cannot call code, so it keeps the list, and it must be the one the roles give
    old_excluded_from_job_names = ["data.root", "data.cache_dir", "trainer.num_threads", "trainer.progress_bar"]
    old_excluded_from_job_names.append("trainer.trim_every")  # added later, incidental from the start
    yaml = OmegaConf.load(Path(CONF_DIR) / "train.yaml").hydra.job.config.override_dirname.exclude_keys
    assert keys_with_role(TrainConfig, "incidental") == list(yaml) == old_excluded_from_job_names


def _old_cache_key(data: DataConfig, tokenizer: TokenizerConfig) -> str:
    """`nmt.data.prepare.cache_key` of a built-in corpus as written before the roles (commit 74e1cb8)."""
    old_excluded = ("test", "max_tokens", "max_sentences", "cache_dir", "prepared", "num_workers")
    old_excluded += ADDED_CORPUS_OPTIONS  # did not exist then; they enter the key only when set
    key = {
        "version": VERSION,
        "data": {k: v for k, v in dataclasses.asdict(data).items() if k not in old_excluded},
        "files": [],
        "tokenizer": dataclasses.asdict(tokenizer),
        "tokenizer_training": TRAINING_VERSION,
        "sentencepiece": spm.__version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def test_cache_keys_are_those_of_the_hand_kept_lists():
    data = DataConfig(src_lang="de", tgt_lang="en", max_len=64, train=["a", "b"], max_tokens=123, num_workers=3)
    data = dataclasses.replace(data, cache_dir="/elsewhere", test="test2017", max_sentences=8, prepared=None)
    tokenizer = TokenizerConfig(vocab_size=1000, user_symbols=["<bt>"])
    for d, t in [(DataConfig(), TokenizerConfig()), (data, tokenizer)]:
        assert cache_key(d, t) == _old_cache_key(d, t)


def test_word_links_enter_the_cache_key_with_their_file(tmp_path):
    links = tmp_path / "train.align"
    links.write_text("0-0\n", encoding="utf-8")
    unset = cache_key(DataConfig(), TokenizerConfig())
    with_links = cache_key(DataConfig(train_links=str(links)), TokenizerConfig())
    links.write_text("0-1\n", encoding="utf-8")
    os.utime(links, ns=(1, 1))  # another content (and modification time): another corpus
    assert len({unset, with_links, cache_key(DataConfig(train_links=str(links)), TokenizerConfig())}) == 3


@pytest.mark.skipif(spm.__version__ != "0.2.3", reason="the keys hold the SentencePiece version")
def test_a_cache_prepared_before_is_still_found():
    # Printed by the code of commit 74e1cb8 (before the roles), with sentencepiece 0.2.3:
    #   cache_key(DataConfig(), TokenizerConfig()) and _cache_key(["a b", "c"], TokenizerConfig())
    assert cache_key(DataConfig(), TokenizerConfig()) == "9e62522bde7ced38a2520249"
    assert _cache_key(["a b", "c"], TokenizerConfig()) == (
        "55ca615ae3619c2ec299c650a8f9861b62741931672547a5fe5610f49d063ead"
    )


def test_help_needs_no_source_files(monkeypatch, capsys):
    def no_source(obj):
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    output = _help([], monkeypatch, capsys)
    assert "  model.attention=scaled_dot               attention score; one of scaled_dot | dot | additive" in output


def test_help_shows_the_values_an_experiment_sets(monkeypatch, capsys):
    experiment = OmegaConf.load(Path(CONF_DIR) / "experiment" / "multi30k_en_de.yaml")  # model: small
    small = OmegaConf.load(Path(CONF_DIR) / "model" / "small.yaml")
    default = _help([], monkeypatch, capsys)
    output = _help(["experiment=multi30k_en_de"], monkeypatch, capsys)
    assert "values as composed from conf/ with experiment=multi30k_en_de" in output
    for line in (f"trainer.max_steps={experiment.trainer.max_steps} ", f"model.d_model={small.d_model} "):
        assert f"  {line}" in output and f"  {line}" not in default
    assert "model: base, big, small (chosen), tiny" in output
