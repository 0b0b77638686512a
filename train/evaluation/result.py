"""`EvalResult`: per-task results of an evaluation and the aggregates people read (eval.json)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .protocol import EvalProtocol

ERROR_KEYS = ("one_step", "h_step", "one_step_nmse", "h_step_nmse")


def summarize(values: list[float]) -> dict[str, float]:
    """Mean, std and count of a list of numbers."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


def mean_or_none(values: list) -> float | None:
    """Mean of the values that exist; None when there are none (e.g. episodes too short for a window)."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


@dataclass
class TaskResult:
    """One test task: its prediction errors by mode and context size, and its MPC episodes by mode."""

    split: str
    params: dict[str, float]
    prediction: dict[str, dict[int, dict]] = field(default_factory=dict)  # mode -> m -> {error key: value}
    control: dict[str, list[dict]] = field(default_factory=dict)  # mode -> [{"return", "steps", ...}]


@dataclass
class EvalResult:
    """Every task's results; aggregates are computed from them, never stored twice."""

    family: str
    protocol: EvalProtocol
    modes: list[str]
    tasks: list[TaskResult]

    @property
    def splits(self) -> list[str]:
        """Split names in task order."""
        return list(dict.fromkeys(t.split for t in self.tasks))

    def prediction(self, mode: str, m: int, key: str = "one_step_nmse", split: str | None = None) -> float | None:
        """Mean over tasks (of one split) of a prediction error after m transitions."""
        return mean_or_none([t.prediction[mode][m].get(key) for t in self.tasks if split in (None, t.split)])

    def control_values(self, mode: str, key: str = "return", split: str | None = None) -> list[float]:
        """Every episode's `key` (return, position_rmse) over tasks (of one split)."""
        return [ep[key] for t in self.tasks if split in (None, t.split) for ep in t.control.get(mode, [])
                if key in ep]

    def mean_return(self, mode: str, split: str | None = None) -> float:
        """Mean MPC return over tasks (of one split) and seeds."""
        return float(np.mean(self.control_values(mode, "return", split)))

    def _control_table(self, key: str) -> dict:
        return {m: {"all": summarize(self.control_values(m, key)),
                    **{s: summarize(self.control_values(m, key, s)) for s in self.splits
                       if self.control_values(m, key, s)}} for m in self.modes}

    def to_json(self) -> dict:
        """eval.json: protocol, tasks, the adaptation curve and control summaries, and per-task episodes."""
        p, ctx = self.protocol, self.protocol.contexts
        out: dict = {
            "family": self.family, "modes": self.modes, "contexts": list(ctx), "horizon": p.horizon,
            "prediction_data": p.prediction_data, "protocol": dataclasses.asdict(p),
            "tasks": [{"split": t.split, **t.params} for t in self.tasks],
            "prediction": {m: {str(c): {k: self.prediction(m, c, k) for k in ERROR_KEYS} for c in ctx}
                           for m in self.modes},
            "bayes_coverage95": ({str(c): self.prediction("bayes", c, "coverage95") for c in ctx}
                                 if "bayes" in self.modes else None),
            "prediction_by_split": {m: {s: {str(c): {k: self.prediction(m, c, k, s) for k in ("one_step",
                                                                                                "one_step_nmse")}
                                            for c in ctx} for s in self.splits} for m in self.modes},
        }
        if p.seeds > 0:
            out["per_task"] = [{"split": t.split, "params": t.params, "control": t.control} for t in self.tasks]
            out["control"] = self._control_table("return")
            if any(self.control_values(m, "position_rmse") for m in self.modes):
                out["position_rmse"] = self._control_table("position_rmse")
        return out
