"""Faults: `nmt-train` killed with SIGKILL at random moments resumes to the same final step, and `last.ckpt`
is never a half-written file."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import torch

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


def _global_step(path: Path) -> int:
    """Loads with weights_only=True: raises if the file is torn."""
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def test_sigkill_at_random_moments_then_resume_reaches_the_same_final_step(tmp_path, spm_cache):
    run_dir, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    rng = random.Random(0)
    steps_at_kill = []
    for _ in range(3):
        process = subprocess.Popen(
            _command(run_dir, spm_cache, last.exists()), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(8.0, 14.0))  # imports take ~6 s; then training and checkpointing
        process.send_signal(signal.SIGKILL)
        process.wait()
        if last.exists():
            steps_at_kill.append(_global_step(last))  # never half-written
    print("global step at each kill:", steps_at_kill)
    finished = subprocess.run(_command(run_dir, spm_cache, last.exists()), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert steps_at_kill, "no checkpoint was written before the kills; lengthen the sleeps"
    interrupted = [step for step in steps_at_kill if step < MAX_STEPS]
    assert len(interrupted) >= 2, f"kills at steps {steps_at_kill}: fewer than two interrupted training"
    assert steps_at_kill == sorted(steps_at_kill)  # each resumed run continued, never restarted from zero
    assert _global_step(last) == MAX_STEPS
    assert f"{MAX_STEPS} steps)" in finished.stdout  # nmt-train's closing line counts optimizer steps
