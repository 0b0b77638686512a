"""Deadlines: a running model of what one rollout call costs on this CPU, and the sample count that fits.

A planning iteration over N sequences costs about `a + b N` (a: per-call dispatch, b: per sequence: the rollout,
and the sampling, clipping and weighting around it). The first deadline calibrates with rollout calls of 1
and 16 sequences (t1 = a + b); every plan then measures its iterations whole: b = (t_iteration - t1) / (N - 1).
`samples_for` picks the largest N whose predicted time fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAFETY = 0.8  # plan for 80% of the deadline: the rest is session work, validation and jitter
MIN_SAMPLES = 8
EMA = 0.2  # weight of a new measurement


@dataclass
class RolloutTimer:
    """Running estimates (ms) of a one-sequence rollout call (`t1_ms`) and of each further sequence (`b_ms`)."""

    t1_ms: float | None = None
    b_ms: float | None = None

    def record(self, n: int, ms: float) -> None:
        """Fold one measured rollout call of `n` sequences that took `ms`."""
        if n == 1:
            self.t1_ms = ms if self.t1_ms is None else (1 - EMA) * self.t1_ms + EMA * ms
        elif self.t1_ms is not None:
            b = max(ms - self.t1_ms, 0.0) / (n - 1)
            self.b_ms = b if self.b_ms is None else (1 - EMA) * self.b_ms + EMA * b

    def calibrate(self, rollout: Callable[[np.ndarray], object], plan: np.ndarray,
                  clock: Callable[[], float]) -> None:
        """Until both costs are measured, time `rollout` on 1 and on 16 copies of `plan` (H, A)."""
        while not self.ready:
            for n in (1, 16):
                t = clock()
                rollout(np.repeat(plan[None], n, axis=0))
                self.record(n, (clock() - t) * 1e3)

    @property
    def ready(self) -> bool:
        """Both costs have been measured."""
        return self.t1_ms is not None and self.b_ms is not None

    @property
    def a_ms(self) -> float:
        """Per-call cost a = t1 - b."""
        assert self.t1_ms is not None and self.b_ms is not None
        return max(self.t1_ms - self.b_ms, 0.0)

    def samples_for(self, deadline_ms: float, iterations: int, cap: int, spent_ms: float = 0.0) -> int:
        """The most samples (MIN_SAMPLES..cap) whose `iterations` planning calls fit in SAFETY x `deadline_ms`,
        `spent_ms` of it already used (the plan's states come from the last planning call: no other call)."""
        assert self.b_ms is not None and self.t1_ms is not None
        budget = SAFETY * deadline_ms - spent_ms - iterations * self.a_ms
        n = int(budget / (iterations * max(self.b_ms, 1e-6)))
        return max(min(n, cap), min(MIN_SAMPLES, cap))
