"""`EvalResult`: per-task results of an evaluation and the aggregates people read (eval.json)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .protocol import EvalProtocol

ERROR_KEYS = ("one_step", "h_step", "one_step_nmse", "h_step_nmse")
HURT_ABS, HURT_REL, WORSE_RATIO = 20.0, 0.10, 1.05  # what counts as adaptation making a task worse


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

    def regressions(self, baseline: str = "none") -> dict:
        """Per adaptive mode, how it does task by task against `baseline` (the same tasks, starts and seeds):
        the worst task's return change and NMSE ratio, and how many tasks adaptation made worse.

        A task counts as hurt when the mode's mean return is below the baseline's by more than
        max(HURT_ABS, HURT_REL x |baseline|); a prediction as worse when its NMSE is over WORSE_RATIO x the
        baseline's. Modes compared with `baseline` are the others (e.g. `bayes@int8` too).
        """
        out: dict = {}
        if baseline not in self.modes:
            return out
        ctx = [c for c in (16, 50) if c in self.protocol.contexts]
        for mode in (m for m in self.modes if m != baseline):
            rows = []
            for t in self.tasks:
                row: dict = {"split": t.split, "params": t.params}
                ours, base = t.control.get(mode), t.control.get(baseline)
                if ours and base:
                    r, r0 = (float(np.mean([ep["return"] for ep in eps])) for eps in (ours, base))
                    row.update(ret=r, ret_none=r0, ret_delta=r - r0,
                               hurt=r < r0 - max(HURT_ABS, HURT_REL * abs(r0)))
                for c in ctx:
                    e, e0 = (t.prediction.get(k, {}).get(c, {}).get("one_step_nmse") for k in (mode, baseline))
                    if e is not None and e0:
                        row[f"nmse_ratio@{c}"] = e / e0
                rows.append(row)
            rets = [r for r in rows if "ret" in r]
            summary: dict = {"tasks": len(rows)}
            if rets:
                worst = min(rets, key=lambda r: r["ret_delta"])
                summary.update(tasks_hurt=sum(r["hurt"] for r in rets), worst_return_delta=worst["ret_delta"],
                               worst_return=worst["ret"], worst_return_none=worst["ret_none"],
                               worst_task={"split": worst["split"], **worst["params"]})
            for c in ctx:
                ratios = [r[f"nmse_ratio@{c}"] for r in rows if f"nmse_ratio@{c}" in r]
                if ratios:
                    summary[f"worst_nmse_ratio@{c}"] = max(ratios)
                    summary[f"tasks_nmse_worse@{c}"] = sum(x > WORSE_RATIO for x in ratios)
            out[mode] = {"summary": summary, "per_task": rows}
        return out

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
        out["regressions"] = self.regressions()  # NMSE ratios per task even without MPC episodes
        if p.seeds > 0:
            out["per_task"] = [{"split": t.split, "params": t.params, "control": t.control} for t in self.tasks]
            out["control"] = self._control_table("return")
            if any(self.control_values(m, "position_rmse") for m in self.modes):
                out["position_rmse"] = self._control_table("position_rmse")
        return out
