"""Faults: `nmt-train` killed with SIGKILL at random moments resumes to the uninterrupted run's final weights,
bit for bit, and `last.ckpt` is never a half-written file; `nmt-translate` killed mid-file leaves the old output
whole; the temporary of a killed write is cleared afterwards."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import torch

from nmt.atomic import remove_stale_temporaries
from nmt.config import DataConfig
from nmt.data.sources import get_corpus

MAX_STEPS = 200
OVERRIDES = [
    "data.builtin_train_size=2000",
    "tokenizer.vocab_size=300",
    f"trainer.max_steps={MAX_STEPS}",
    "trainer.val_check_interval=10",  # a checkpoint every 10 steps: many chances to be killed mid-write
    "trainer.log_every_n_steps=1",
    "trainer.progress_bar=false",
    "trainer.num_threads=1",
    "decode.max_len_a=0",
    "decode.max_len_b=1",
    "val_samples=0",
]


def _command(run_dir: Path, cache: Path, resume: bool) -> list[str]:
    extra = ["resume=last"] if resume else []
    return ["nmt-train", *OVERRIDES, f"hydra.run.dir={run_dir}", f"data.cache_dir={cache}", *extra]


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def _global_step(path: Path) -> int:
    """Loads with weights_only=True: raises if the file is torn."""
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def _wait_for_progress(last: Path, step: int, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Block until `last` holds a step beyond `step` (this run checkpointed progress), or the run ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if last.exists() and _global_step(last) > step:
            return
        time.sleep(0.2)


def test_sigkill_at_random_moments_then_resume_ends_with_the_uninterrupted_weights(tmp_path, spm_cache):
    """Three runs, each killed at a random moment after it checkpointed progress, then one that finishes:
    its weights are an uninterrupted run's, tensor by tensor (resume is exact at any step, on CPU)."""
    run_dir, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    rng = random.Random(0)
    steps_at_kill = []
    for _ in range(3):
        resume = last.exists()
        process = subprocess.Popen(
            _command(run_dir, spm_cache, resume), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_progress(last, _global_step(last) if resume else -1, process)
        time.sleep(rng.uniform(0.0, 3.0))  # a random moment: mid-step, mid-validation or mid-write
        process.send_signal(signal.SIGKILL)
        process.wait()
        steps_at_kill.append(_global_step(last))  # loads with weights_only=True: never half-written
    print("global step at each kill:", steps_at_kill)
    finished = subprocess.run(_command(run_dir, spm_cache, True), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    # Each resumed run continued from the last checkpoint and got further; none had finished when killed.
    assert steps_at_kill == sorted(set(steps_at_kill)) and steps_at_kill[-1] < MAX_STEPS, steps_at_kill
    assert _global_step(last) == MAX_STEPS
    assert f"{MAX_STEPS} steps)" in finished.stdout  # nmt-train's closing line counts optimizer steps
    uninterrupted = subprocess.run(_command(tmp_path / "whole", spm_cache, False), capture_output=True, text=True)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    expected, resumed = _final_weights(tmp_path / "whole"), _final_weights(run_dir)
    assert resumed.keys() == expected.keys()
    different = [name for name in expected if not torch.equal(resumed[name], expected[name])]
    assert not different, f"after kills at steps {steps_at_kill}, these tensors differ: {different}"


def test_sigkill_mid_translation_keeps_the_old_output(model_path, tmp_path):
    """Killed while its temporary file already holds translations, the destination still has its old content;
    the temporary it left is then cleared, and nothing else."""
    sentences = get_corpus(DataConfig(), "test").src
    (tmp_path / "in.txt").write_text("\n".join(sentences[i % len(sentences)] for i in range(20_000)) + "\n")
    out = tmp_path / "out.txt"
    out.write_text("old output\n")
    args = [f"ckpt={model_path}", "input=in.txt", "output=out.txt", "decode=greedy", "num_threads=1", "buffer_size=100"]
    process = subprocess.Popen(["nmt-translate", *args], cwd=tmp_path, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not _written_temporary(tmp_path):
        time.sleep(0.05)
    assert process.poll() is None, "translation ended (or failed) before it could be killed mid-file"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert out.read_text() == "old output\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".tmp")) == ["in.txt", "out.txt"]
    assert remove_stale_temporaries(tmp_path, "out.txt") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def _written_temporary(directory: Path) -> bool:
    """Whether a hidden temporary output beside the destination already holds translated text."""
    return any(p.stat().st_size > 0 for p in directory.glob(".out.txt.*.tmp"))
