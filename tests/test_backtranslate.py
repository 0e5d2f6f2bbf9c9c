"""Back-translation end to end on the built-in corpus: synthetic pairs written once with their provenance,
reused on a rerun, tagged with a reserved piece, and trained on beside real pairs.

The session's tiny en->de model plays the reverse model, so the forward model here is de->en and the
monolingual text is English: built-in training sentences the real pairs do not include.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import train_config
from sacrebleu import corpus_bleu

from nmt.cli import backtranslate as cli
from nmt.config import BacktranslateConfig, DataConfig, DecodeConfig, check
from nmt.data.prepare import load_training_data
from nmt.data.sources import get_corpus
from nmt.errors import UserError
from nmt.workflows.backtranslate import PROVENANCE, backtranslate

pytestmark = pytest.mark.usefixtures("one_thread")

GREEDY = DecodeConfig(beam_size=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    """Real de-en pairs (`real.*`, `valid.*`) and English monolingual text (`mono.en`) with its references."""
    root = tmp_path_factory.mktemp("bt-corpus")
    train, valid = get_corpus(DataConfig(builtin_train_size=900), "train"), get_corpus(DataConfig(), "valid")
    for name, text, rows in (("real", train, slice(0, 500)), ("valid", valid, slice(0, 100))):
        (root / f"{name}.de").write_text("".join(f"{line}\n" for line in text.tgt[rows]))
        (root / f"{name}.en").write_text("".join(f"{line}\n" for line in text.src[rows]))
    mono, german = train.src[500:900], train.tgt[500:900]
    (root / "mono.en").write_text("".join(f"{line}\n" for line in mono) + "\n")  # an empty last line: skipped
    return root, mono, german


def test_back_translation_writes_tagged_synthetic_pairs_once(model_path, corpus) -> None:
    root, mono, german = corpus
    record, reused = backtranslate(model_path, root / "mono.en", root / "bt", GREEDY, tag="<bt>", device="cpu")
    assert not reused and record["pairs"] == len(mono) and record["empty_translations"] == 0
    synthetic = (root / "bt" / "train.de").read_text().splitlines()
    assert (root / "bt" / "train.en").read_text().splitlines() == mono  # the target side is the text as given
    assert all(line.startswith("<bt> ") for line in synthetic)
    assert corpus_bleu([s.removeprefix("<bt> ") for s in synthetic], [german]).score > 50  # real translations
    provenance = record["provenance"]
    assert (provenance["src_lang"], provenance["tgt_lang"], provenance["tag"]) == ("de", "en", "<bt>")
    assert provenance["decode"]["beam_size"] == 1 and len(provenance["reverse_model_sha256"]) == 64
    stamp = (root / "bt" / "train.de").stat().st_mtime_ns
    again, reused = backtranslate(model_path, root / "mono.en", root / "bt", GREEDY, tag="<bt>", device="cpu")
    assert reused and again == record and (root / "bt" / "train.de").stat().st_mtime_ns == stamp
    sampled = DecodeConfig(sampling=True, beam_size=1, seed=2)
    other, reused = backtranslate(model_path, root / "mono.en", root / "untagged", sampled, tag=None, device="cpu")
    assert not reused and other["provenance"]["tag"] is None
    assert not (root / "untagged" / "train.de").read_text().startswith("<bt>")


@pytest.mark.parametrize("case", ["other files", "input inside", "empty"])
def test_an_output_it_did_not_write_is_refused_and_kept(model_path, corpus, tmp_path, case) -> None:
    """The output directory is replaced whole: one holding other files, or the input itself, is refused before
    anything is translated, and left as it was; an empty one is written."""
    root, mono, _ = corpus
    out, source = tmp_path / "data", root / "mono.en"
    out.mkdir()
    if case == "other files":
        (out / "train.de").write_text("a real corpus\n")
    elif case == "input inside":
        source = out / "mono.en"
        source.write_text((root / "mono.en").read_text())
    before = {p.name: p.read_text() for p in out.iterdir()}
    if case == "empty":
        assert backtranslate(model_path, source, out, GREEDY, device="cpu")[0]["pairs"] == len(mono)
        return
    with pytest.raises(UserError, match="replaced whole"):
        backtranslate(model_path, source, out, GREEDY, device="cpu")
    assert {p.name: p.read_text() for p in out.iterdir()} == before


def test_the_command_reports_what_it_wrote_and_reuses_it(model_path, corpus, tmp_path, capsys) -> None:
    root, mono, _ = corpus
    cfg = check(BacktranslateConfig(ckpt=str(model_path), input=str(root / "mono.en"), output=str(tmp_path / "bt")))
    cfg.decode, cfg.num_threads = GREEDY, 1
    cli.run(cfg)
    assert f"wrote {tmp_path / 'bt'}: {len(mono):,} synthetic de-en pairs" in capsys.readouterr().out
    cli.run(cfg)
    assert "reused" in capsys.readouterr().out
    assert (tmp_path / "bt" / PROVENANCE).is_file()


def test_the_forward_model_trains_on_real_and_tagged_pairs(model_path, corpus, spm_cache, tmp_path) -> None:
    from nmt.train.run import train

    root, mono, _ = corpus
    backtranslate(model_path, root / "mono.en", root / "bt", GREEDY, tag="<bt>", device="cpu")
    options = [
        "data=files",
        f"data.root={root}",
        "data.train=[real,real,bt/train]",  # the real pairs twice: a 2:1 mix with the synthetic ones
        "data.valid=valid",
        "data.src_lang=de",
        "data.tgt_lang=en",
        "tokenizer.vocab_size=400",
        'tokenizer.user_symbols=["<bt>"]',
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "trainer.num_threads=1",
    ]
    cfg = train_config(tmp_path / "forward", spm_cache, options)
    data = load_training_data(cfg.data, cfg.tokenizer)
    assert len(data.train) == 2 * 500 + len(mono)
    tag = data.tokenizer.src_pieces().index("<bt>")  # a reserved piece, never split
    assert data.tokenizer.encode_src(["<bt> ein Haus"])[0].count(tag) == 1
    assert tag not in data.tokenizer.encode_src(["ein < bt > Haus"])[0]
    assert train(cfg).model_path
