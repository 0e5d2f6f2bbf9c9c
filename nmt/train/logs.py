"""A CSV logger that continues a resumed run's `metrics.csv` instead of deleting it (Lightning's does)."""

from __future__ import annotations

import csv
import io
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger

from nmt.atomic import atomic_write_bytes
from nmt.train.compat import CSVExperimentWriter


class _ContinuingWriter(CSVExperimentWriter):
    """Keeps the rows logged before `resume_step` (the steps the checkpoint holds) and appends after them.

    Rows from `resume_step` on were logged by the interrupted run after its checkpoint; the resumed run
    logs those steps again, so they are dropped rather than duplicated.
    """

    def __init__(self, log_dir: str, resume_step: int) -> None:
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            keys = list(reader.fieldnames or [])
            rows = [row for row in reader if _step(row) < self.resume_step]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.metrics_file_path, out.getvalue().encode("utf-8"))
        self.metrics_keys = keys


def _step(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class ContinuingCSVLogger(CSVLogger):
    """`CSVLogger` whose `metrics.csv` survives a resume (see `_ContinuingWriter`); a fresh run starts anew."""

    def __init__(self, save_dir: str, resume_step: int | None, **kwargs: Any) -> None:
        super().__init__(save_dir, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> CSVExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            if self.resume_step is None:
                self._experiment = CSVExperimentWriter(log_dir=self.log_dir)
            else:
                self._experiment = _ContinuingWriter(self.log_dir, self.resume_step)
        return self._experiment
