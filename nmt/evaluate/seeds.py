"""Results over seeds: the `scores.json` files that `nmt-evaluate json=true baseline=...` wrote for several runs of
each arm of an experiment, summarised as mean ± sample standard deviation per metric, with each seed's paired
bootstrap p-value against the baseline of the same seed.

An arm's difference to the baseline is "within two standard deviations" when it is no larger than twice the larger
of the two arms' standard deviations: then more seeds are needed before the difference says anything.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Arm:
    """One arm's scores over its seeds: values and p-values against the baseline, by metric (e.g. `BLEU`)."""

    name: str
    seeds: list[str] = field(default_factory=list)  # the run directories, in seed order
    values: dict[str, list[float]] = field(default_factory=dict)
    p_values: dict[str, list[float | None]] = field(default_factory=dict)

    def mean(self, metric: str) -> float:
        return statistics.fmean(self.values[metric])

    def sd(self, metric: str) -> float:
        """Sample standard deviation over seeds; 0 for a single seed."""
        found = self.values[metric]
        return statistics.stdev(found) if len(found) > 1 else 0.0


def read_arm(name: str, runs: list[Path]) -> Arm:
    """An arm from its runs' `scores.json` (one per seed).

    Raises:
        FileNotFoundError: a run has no `scores.json`; ValueError: one is not `nmt-evaluate`'s JSON.
    """
    arm = Arm(name)
    for run in runs:
        path = run / "scores.json"
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            scores = {s["metric"]: s["value"] for s in report["scores"]}
            p_values = {c["metric"]: c.get("p_value") for c in report.get("comparisons", [])}
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a `nmt-evaluate json=true` report ({err}).") from err
        arm.seeds.append(str(run))
        for metric, value in scores.items():
            arm.values.setdefault(metric, []).append(value)
            arm.p_values.setdefault(metric, []).append(p_values.get(metric))
    return arm


def within_two_sd(arm: Arm, baseline: Arm, metric: str) -> bool:
    """Whether the arm's mean is within twice the larger standard deviation of the baseline's mean."""
    spread = max(arm.sd(metric), baseline.sd(metric))
    return abs(arm.mean(metric) - baseline.mean(metric)) <= 2 * spread


def markdown_table(arms: list[Arm], metrics: list[str]) -> str:
    """A Markdown table: each arm's seeds, mean ± sd per metric, the difference to the first arm (the baseline) and
    whether it is within two standard deviations, and the per-seed p-values of the first metric."""
    baseline, first = arms[0], metrics[0]
    header = ["arm", "seeds", *(f"{m} mean ± sd" for m in metrics)]
    header += [f"Δ {first}", "within 2 sd", f"p ({first}) per seed"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    for arm in arms:
        cells = [arm.name, str(len(arm.seeds))]
        cells += [f"{arm.mean(m):.2f} ± {arm.sd(m):.2f}" for m in metrics]
        if arm is baseline:
            cells += ["", "", ""]
        else:
            p = ", ".join("–" if v is None else f"{v:.3f}" for v in arm.p_values[first])
            near = "yes" if within_two_sd(arm, baseline, first) else "no"
            cells += [f"{arm.mean(first) - baseline.mean(first):+.2f}", near, p]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
