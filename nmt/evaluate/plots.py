"""Plots (needs the `plots` extra): learning curves of a training run, and BLEU against decoding speed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from nmt.errors import MissingExtraError, UserError


class PlotInputError(UserError, FileNotFoundError):
    """The run directory or benchmark file to plot is missing or holds no data to plot."""


def _pyplot():
    """matplotlib's pyplot on a file-only backend, or a clear hint to install the extra."""
    try:
        import matplotlib
    except ImportError as err:
        raise MissingExtraError("plots need matplotlib: pip install 'nmt-toolkit[plots]'.") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out: str | Path, title: str | None) -> Path:
    """Title, lay out, write and close a figure."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def read_metrics(run_dir: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Each metric of `run_dir/logs/metrics.csv` as (step, value) pairs, in step order."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        raise PlotInputError(f"no training log at {path}; is {run_dir} an nmt-train run directory?")
    series: dict[str, list[tuple[float, float]]] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in ("", None):
                    series.setdefault(key, []).append((float(row["step"]), float(value)))
    return series


def plot_learning_curves(run_dir: str | Path, out: str | Path, title: str | None = None) -> Path:
    """Train/valid loss and validation BLEU against step, and BLEU against wall time, as one PNG."""
    plt = _pyplot()
    series = read_metrics(run_dir)
    fig, (loss_ax, bleu_ax, time_ax) = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("train/loss", "train loss"), ("val/loss", "valid loss")):
        if key in series:
            loss_ax.plot(*zip(*series[key], strict=True), label=label)
    loss_ax.set(xlabel="step", ylabel="label-smoothed loss per token", title="loss")
    loss_ax.legend()
    bleu = series.get("val/bleu", [])
    if bleu:
        bleu_ax.plot(*zip(*bleu, strict=True), marker="o")
    bleu_ax.set(xlabel="step", ylabel="BLEU (sacreBLEU, detokenized)", title="validation BLEU")
    elapsed = dict(series.get("val/elapsed_s", []))
    timed = [(elapsed[step] / 60, value) for step, value in bleu if step in elapsed]
    if timed:
        time_ax.plot(*zip(*timed, strict=True), marker="o")
    time_ax.set(xlabel="training wall time (min)", ylabel="BLEU", title="validation BLEU vs time")
    return _save(plt, fig, out, title)


def plot_bleu_vs_speed(benchmark_json: str | Path, out: str | Path, title: str | None = None) -> Path:
    """BLEU against sentences/s (log scale) for every decode setting in an `nmt-benchmark` JSON file.

    One line per test split joins its settings from slowest to fastest, so the
    price of each beam size reads off the chart.
    """
    plt = _pyplot()
    data = json.loads(Path(benchmark_json).read_text(encoding="utf-8"))
    splits: dict[str, list[dict]] = {}
    for row in data["results"]:
        splits.setdefault(row["split"], []).append(row)
    several_penalties = len({row["length_penalty"] for row in data["results"]}) > 1
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for split, rows in splits.items():
        rows = sorted(rows, key=lambda row: row["sent_per_s"])
        ax.plot([r["sent_per_s"] for r in rows], [r["bleu"] for r in rows], marker="o", label=split)
        for row in rows:
            label = "greedy" if row["beam_size"] == 1 else f"beam {row['beam_size']}"
            if several_penalties and row["beam_size"] > 1:
                label += f", lp {row['length_penalty']:g}"
            ax.annotate(label, (row["sent_per_s"], row["bleu"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    env = data.get("environment", {})
    where = f" ({env['device']}, {env['threads']} threads)" if {"device", "threads"} <= set(env) else ""
    ax.set_xscale("log")
    ax.set(xlabel=f"sentences / s{where}", ylabel="BLEU", title=title or "quality vs decoding speed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def plot_pruning_curve(curve_json: str | Path, out: str | Path, title: str | None = None) -> Path:
    """BLEU and decoding speed against the share of attention heads removed, from an `nmt-prune` curve file."""
    plt = _pyplot()
    data = json.loads(Path(curve_json).read_text(encoding="utf-8"))
    rounds = data["rounds"]
    removed = [100 * r["removed_fraction"] for r in rounds]
    fig, (bleu_ax, speed_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("valid", "validation (decides)"), ("report", "report split")):
        if rounds[0].get(f"{key}_bleu") is not None:
            bleu_ax.plot(removed, [r[f"{key}_bleu"] for r in rounds], marker="o", label=label)
            speed_ax.plot(removed, [r[f"{key}_sent_per_s"] for r in rounds], marker="o", label=label)
    kept = rounds[data["kept"]]
    bleu_ax.axvline(100 * kept["removed_fraction"], color="grey", linestyle=":", label="model kept")
    bleu_ax.set(xlabel=f"attention heads removed (% of {data['total_heads']})", ylabel="BLEU", title="quality")
    speed_ax.set(xlabel=f"attention heads removed (% of {data['total_heads']})", ylabel="sentences / s", title="speed")
    bleu_ax.legend()
    speed_ax.legend()
    return _save(plt, fig, out, title)
