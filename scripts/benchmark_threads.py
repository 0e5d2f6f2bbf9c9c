"""CPU thread settings on a quiet and on a shared machine: how decoding and training steps degrade.

    python scripts/benchmark_threads.py --repeats 3

Each setting runs in its own process, because OpenMP reads `OMP_WAIT_POLICY` once, at start. "Shared"
runs a busy process on one core beside the measured one, as a second job or a test run would. The
workloads use a randomly initialised `small` model (3+3 layers, d_model 256, 8k vocabulary), so no
checkpoint is needed: greedy decoding of 32 sentences forced to 30 tokens, and training steps
(forward + backward) on a 4k-token batch. Prints a Markdown table of median seconds per workload.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {  # name: (num_threads as nmt takes it, environment)
    "2 threads (OpenMP's default wait policy)": (2, {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "1 thread": (1, {}),
    "num_threads=0 (nmt's default: free cores)": (0, {}),
}


def workload(threads: int, repeats: int) -> dict[str, float]:
    """Median seconds of each workload in this process (called in a child process)."""
    import torch

    from nmt.config import DecodeConfig, ModelConfig
    from nmt.decode.search import greedy_search
    from nmt.device import set_threads
    from nmt.model import Transformer

    used = set_threads(threads)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(d_model=256, n_heads=4, enc_layers=3, dec_layers=3, d_ff=1024), 8000, 8000, 0)
    src = torch.randint(4, 8000, (32, 20))
    decode = DecodeConfig(beam_size=1, min_len=30, max_len_a=0.0, max_len_b=30)
    tgt = torch.randint(4, 8000, (160, 25))
    times: dict[str, list[float]] = {"greedy decode, 32 sentences": [], "training step, 4k tokens": []}
    for _ in range(repeats + 1):  # the first round warms up
        model.eval()
        start = time.perf_counter()
        greedy_search(model, src, src.eq(0), decode, 1, 2)
        times["greedy decode, 32 sentences"].append(time.perf_counter() - start)
        model.train()
        start = time.perf_counter()
        model(tgt, tgt).float().logsumexp(-1).mean().backward()
        times["training step, 4k tokens"].append(time.perf_counter() - start)
    return {"threads": used, **{name: statistics.median(values[1:]) for name, values in times.items()}}


def measure(threads: int, env: dict[str, str], repeats: int, shared: bool) -> dict[str, float]:
    """Run `workload` in a fresh process, with a busy process beside it when `shared`."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if shared else None
    try:
        time.sleep(0.5)  # let the busy process start, as a job already running would have
        code = f"import json, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import benchmark_threads as b; "
        code += f"print(json.dumps(b.workload({threads}, {repeats})))"
        out = subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.splitlines()[-1])
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for shared in (False, True):  # settings interleaved within each machine state
        for name, (threads, env) in SETTINGS.items():
            result = measure(threads, env, args.repeats, shared)
            rows.append((("shared" if shared else "quiet"), name, result))
    names = [n for n in rows[0][2] if n != "threads"]
    print("| machine | setting | threads | " + " | ".join(f"{n} (s)" for n in names) + " |")
    print("| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |")
    for machine, setting, result in rows:
        cells = " | ".join(f"{result[n]:.3f}" for n in names)
        print(f"| {machine} | {setting} | {result['threads']} | {cells} |")


if __name__ == "__main__":
    main()
