"""The data pipeline as corpora grow: preparation speed per worker count, and the training process's
memory and time to its first batch, on synthetic corpora of Multi30k sentences.

    python scripts/benchmark_data.py corpus --pairs 1000000 --out /tmp/synth/1m
    python scripts/benchmark_data.py prepare --corpus /tmp/synth/1m --workers 1 2 --repeats 2
    python scripts/benchmark_data.py train /tmp/prepared/100k /tmp/prepared/10m --steps 30 -- model=small

(nmt-train overrides for `train` follow `--`.)

`corpus` writes N training pairs drawn from Multi30k's (a fresh seeded shuffle of all 29k pairs per pass,
so lengths are Multi30k's) plus Multi30k's validation split, as plain files. `prepare` times `nmt-prepare`
on such a corpus (the tokenizer cache is warmed first, untimed; runs are interleaved). `train` trains from
prepared directories, each in a fresh process, and reports its peak resident memory, its anonymous
(private) memory at the end, and the wall time from launching the process to the end of its first batch.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PREPARE_TIME = re.compile(r"time:\s+([\d.]+) s \(([\d,]+) training pairs/s\)")


def write_corpus(pairs: int, out: Path, seed: int = 0) -> None:
    """`out/train.{en,de}` with `pairs` Multi30k pairs (shuffled passes) and `out/valid.{en,de}`."""
    from nmt.config import DataConfig
    from nmt.data.sources import get_corpus

    data = DataConfig(name="multi30k", root=str(SHARED), src_lang="en", tgt_lang="de")
    train, valid = get_corpus(data, "train"), get_corpus(data, "val")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with (out / "train.en").open("w") as en, (out / "train.de").open("w") as de:
        left = pairs
        while left > 0:
            order = list(range(len(train)))
            rng.shuffle(order)
            for i in order[:left]:
                en.write(train.src[i] + "\n")
                de.write(train.tgt[i] + "\n")
            left -= len(order)
    (out / "valid.en").write_text("".join(line + "\n" for line in valid.src))
    (out / "valid.de").write_text("".join(line + "\n" for line in valid.tgt))


def prepare_command(corpus: Path, output: Path, workers: int, cache: Path) -> list[str]:
    return [
        "nmt-prepare",
        "data=files",
        f"data.root={corpus}",
        "data.train=train",
        "data.valid=valid",
        f"data.cache_dir={cache}",
        "tokenizer.vocab_size=8000",
        "tokenizer.input_sentence_size=100000",
        f"workers={workers}",
        f"output={output}",
    ]


def time_prepare(corpus: Path, workers: list[int], repeats: int) -> None:
    """Print a table of preparation speed per worker count (interleaved runs, the best of each)."""
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        warm = prepare_command(corpus, Path(scratch) / "warm", max(workers), cache)
        subprocess.run(warm, capture_output=True, check=True)  # trains the tokenizer into the cache
        best: dict[int, list[float]] = {w: [] for w in workers}
        for r in range(repeats):
            for w in workers:
                out = Path(scratch) / f"out-{w}-{r}"
                command = prepare_command(corpus, out, w, cache)
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                best[w].append(float(PREPARE_TIME.search(done.stdout).group(2).replace(",", "")))
                shutil.rmtree(out)
    print("| workers | training pairs/s (each run) | vs 1 worker |")
    print("| ---: | ---: | ---: |")
    for w in workers:
        runs = " / ".join(f"{x:,.0f}" for x in best[w])
        print(f"| {w} | {runs} | {max(best[w]) / max(best[workers[0]]):.2f}x |")


def train_once(prepared: Path, steps: int, overrides: list[str]) -> dict[str, float]:
    """Train from `prepared` in a fresh process; its memory and time to the first batch."""
    with tempfile.TemporaryDirectory() as run_dir:
        launched = time.time()
        command = [sys.executable, __file__, "_train", str(prepared), str(steps), run_dir, *overrides]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"training from {prepared} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["first_batch_s"] = result.pop("first_batch_wall") - launched
    return result


def _train_child(prepared: str, steps: str, run_dir: str, overrides: list[str]) -> None:
    """In the child process: train, then print one JSON line of measurements."""
    import lightning as L
    from hydra import compose, initialize_config_dir

    from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
    from nmt.config import TrainConfig
    from nmt.train.run import train

    first: dict[str, float] = {}

    class FirstBatch(L.Callback):
        def on_train_batch_end(self, *_args) -> None:
            first.setdefault("wall", time.time())

    register_schemas()
    base = [f"data.prepared={prepared}", f"trainer.max_steps={steps}", f"trainer.val_check_interval={int(steps) * 10}"]
    base += ["trainer.progress_bar=false", "trainer.max_time=null", f"run_dir={run_dir}"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = to_dataclass(compose(config_name="train", overrides=base + overrides), TrainConfig)
    result = train(cfg, callbacks=[FirstBatch()])
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kib = {key: int(status[key].split()[0]) for key in ("VmHWM", "RssAnon", "RssFile")}
    print(
        json.dumps(
            {
                "first_batch_wall": first["wall"],
                "peak_rss_gb": kib["VmHWM"] * 1024 / 1e9,
                "anon_gb": kib["RssAnon"] * 1024 / 1e9,
                "file_gb": kib["RssFile"] * 1024 / 1e9,
                "tok_s": result.throughput["median_tok_s"],
            }
        )
    )


def main() -> None:
    if sys.argv[1:2] == ["_train"]:
        _train_child(*sys.argv[2:5], sys.argv[5:])
        return
    argv, overrides = sys.argv[1:], []
    if "--" in argv:  # nmt-train overrides follow `--` (argparse sub-commands would take them for their own)
        argv, overrides = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    corpus = commands.add_parser("corpus", help="write a synthetic corpus")
    corpus.add_argument("--pairs", type=int, required=True)
    corpus.add_argument("--out", type=Path, required=True)
    prepare = commands.add_parser("prepare", help="time nmt-prepare per worker count")
    prepare.add_argument("--corpus", type=Path, required=True)
    prepare.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    prepare.add_argument("--repeats", type=int, default=2)
    training = commands.add_parser("train", help="memory and first-batch time of training from prepared dirs")
    training.add_argument("prepared", type=Path, nargs="+")
    training.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    if args.command == "corpus":
        write_corpus(args.pairs, args.out)
    elif args.command == "prepare":
        time_prepare(args.corpus, args.workers, args.repeats)
    else:
        rows = [(p, train_once(p, args.steps, overrides)) for p in args.prepared]
        print("| prepared corpus | pairs | peak RSS (GB) | private (anon) at end (GB) | first batch after (s) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for path, r in rows:
            pairs = json.loads((path / "manifest.json").read_text())["splits"]["train"]["pairs"]
            memory = f"{r['peak_rss_gb']:.2f} | {r['anon_gb']:.2f}"
            print(f"| {path.name} | {pairs:,} | {memory} | {r['first_batch_s']:.1f} |")


if __name__ == "__main__":
    main()
