"""Tracking evaluation (`mbmrl eval --control-tasks`): fly a family's named reference trajectories in a sweep
of wind speeds, with every adaptation mode, the oracle and the family's classical baselines, and report the
mean position error after a settling time, as Neural-Fly (O'Connell et al. 2022) reports figure-eight error.

Each session holds the reference (sent once, `Session(reference=...)`) and is driven one `step` per control
step; the wind blows along x at the sweep's speed, optionally gusting (`8.5+2.4sin`: 8.5 + 2.4 sin t m/s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..episode import run_episode
from ..families import Params, TaskFamily
from .evaluate import close, stepping

NewSession = Callable[..., Any]  # (mode=, seed=, task_params=, reference=) -> Session
WINDS = "0,4.2,8.5,8.5+2.4sin,12.1"  # m/s: Neural-Fly's wind conditions


@dataclass(frozen=True)
class Wind:
    """A wind condition: `speed` m/s along x, plus `gust` * sin(t) m/s."""

    speed: float
    gust: float = 0.0

    @property
    def label(self) -> str:
        """As `--winds` writes it."""
        return f"{self.speed:g}" + (f"+{self.gust:g}sin" if self.gust else "")


def parse_winds(text: str) -> list[Wind]:
    """'0,4.2,8.5+2.4sin' -> [Wind(0), Wind(4.2), Wind(8.5, 2.4)]; a clear error for anything else."""
    winds = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        try:
            speed, _, gust = item.partition("+")
            winds.append(Wind(float(speed), float(gust.removesuffix("sin")) if gust else 0.0))
        except ValueError:
            raise ValueError(f"--winds: {item!r} is not a speed like '8.5' or a gust like '8.5+2.4sin'") from None
    if not winds:
        raise ValueError(f"--winds needs at least one wind speed, e.g. {WINDS!r}")
    return winds


def tracking_tasks(family: TaskFamily, split: str, max_tasks: int = 0) -> list[Params]:
    """The split's distinct physics with the wind taken out (the sweep sets it), heaviest payload first."""
    seen: dict[tuple, Params] = {}
    for _, params in family.test_tasks(split):
        p = {k: v for k, v in params.items() if not k.startswith("wind")}
        seen.setdefault(tuple(sorted(p.items())), p)
    tasks = sorted(seen.values(), key=lambda p: -p.get("payload", 0.0))
    return tasks[: max_tasks or None]


def position_error(infos: list[dict], dt: float, settle_s: float, steps: int) -> float:
    """Mean position error (m) after `settle_s`; inf if the episode ended early (a crash)."""
    err = np.array([i["position_error"] for i in infos])
    if len(err) < steps:
        return float("inf")
    return float(err[(np.arange(len(err)) + 1) * dt > settle_s].mean())


def fly(family: TaskFamily, params: Params, wind: Wind, task: str, controller: str, new_session: NewSession | None,
        seed: int, steps: int, settle_s: float, dt: float) -> dict:
    """One episode of `controller` (a mode, or one of the family's baselines) on one task and wind."""
    ref = family.control_tasks[task]
    physics = {**params, "wind_x": wind.speed, "wind_y": 0.0}
    env = family.make_env(physics, family.eval_start, task=ref, gust=(wind.gust, 1.0))  # type: ignore[call-arg]
    if new_session is None:
        policy = family.baselines[controller](ref)
        ep = run_episode(env, policy, steps, seed=seed)
    else:
        sess = new_session(mode=controller, seed=seed, task_params=physics, reference=ref)
        act, observe = stepping(sess)
        ep = run_episode(env, act, steps, seed=seed, observe=observe)
        close(sess)
    env.close()
    return {"error": position_error(ep.infos, dt, settle_s, steps), "path": ep.next_obs[:, :3].tolist()}


def evaluate_tracking(family: TaskFamily, tasks: list[Params], winds: list[Wind], control_tasks: list[str],
                      controllers: list[str], backends: Mapping[str, NewSession], seeds: int, steps: int,
                      settle_s: float = 2.0, workers: int = 1, progress: bool = True) -> dict:
    """Mean position error of every controller on every (control task, physics, wind), over `seeds` starts.

    `backends` maps a mode to a `new_session`; a controller not in it is a family baseline. Each row also reports
    the family's `actuation_needed` (the peak share of the actuators' limit that following the reference exactly
    takes: above 1 no controller can).
    """
    if family.reference is None:
        raise ValueError(f"family {family.name!r} declares no reference layout: it has nothing to track")
    dt = family.reference.dt  # s per control step
    if steps * dt <= settle_s:
        raise ValueError(f"episodes of {steps} steps last {steps * dt:g} s, not longer than the {settle_s:g} s the "
                         "error waits for: raise --episode-steps (0: the family's)")
    unknown = [c for c in controllers if c not in backends and c not in family.baselines]
    if unknown:
        raise ValueError(f"unknown controllers {unknown}: modes of the artifact or baselines {list(family.baselines)}")
    cells = [(task, ti, wind) for task in control_tasks for ti in range(len(tasks)) for wind in winds]

    def run_cell(cell: tuple[str, int, Wind]) -> dict:
        task, ti, wind = cell
        need = family.actuation_needed
        row: dict[str, Any] = {"task": task, "params": tasks[ti], "wind": wind.label, "wind_speed": wind.speed,
                               "gust": wind.gust, "error": {}, "errors": {}, "paths": {},
                               "actuation_needed": need(tasks[ti], family.control_tasks[task], wind.speed, wind.gust)
                               if need else None}
        for c in controllers:
            runs = [fly(family, tasks[ti], wind, task, c, backends.get(c), seed, steps, settle_s, dt)
                    for seed in range(seeds)]
            row["errors"][c] = [r["error"] for r in runs]
            row["error"][c] = float(np.mean(row["errors"][c]))
            row["paths"][c] = runs[0]["path"]
        return row

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(tqdm(pool.map(run_cell, cells), total=len(cells), desc="tracking", disable=not progress))
    refs = {t: family.control_tasks[t].at(np.arange(1, steps + 1) * dt)[0].tolist() for t in control_tasks}
    return {"family": family.name, "controllers": controllers, "settle_s": settle_s, "seeds": seeds, "steps": steps,
            "rows": rows, "references": refs}
