"""The worker's recent rate of work, in source tokens per second: what `Retry-After` is estimated from."""

from __future__ import annotations

import math

WINDOW = 0.25  # seconds of work over which one rate is measured


class WorkRate:
    """A moving average of tokens/s over windows of `WINDOW` seconds of work (not of idle time)."""

    def __init__(self) -> None:
        self.tokens_per_second = 0.0
        self._window = [0.0, 0.0]  # tokens done and seconds spent since the rate was last updated

    def add(self, tokens: int, seconds: float) -> None:
        """Count work done: `tokens` in `seconds`."""
        self._window[0] += tokens
        self._window[1] += seconds
        if self._window[1] < WINDOW:
            return
        rate = self._window[0] / self._window[1]
        self.tokens_per_second = rate if self.tokens_per_second == 0 else 0.8 * self.tokens_per_second + 0.2 * rate
        self._window = [0.0, 0.0]

    def seconds_for(self, tokens: int) -> float:
        """Seconds the worker needs for `tokens` at its recent rate, rounded up, at least 1 (1 before any work)."""
        if self.tokens_per_second <= 0:
            return 1.0
        return max(1.0, math.ceil(tokens / self.tokens_per_second))
