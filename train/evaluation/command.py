"""`mbmrl eval ARTIFACT`: evaluate an artifact in-process, write eval.json, plots and (optionally) results.md."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from mbmrl.runtime.gain import GainConfig
from mbmrl.runtime.guard import GuardConfig
from mbmrl.runtime.loader import load
from mbmrl.runtime.model import Runtime
from mbmrl.runtime.planner import parse_planner
from mbmrl.runtime.session import Session

from ..config import cost_overrides
from ..families import TaskFamily, get_family
from .evaluate import evaluate
from .protocol import EvalConfig
from .report import markdown_tables, plot_curves
from .tracking import evaluate_tracking, parse_winds, tracking_tasks
from .tracking_report import plot_tracking, tracking_tables


def available_modes(requested: str, rt: Runtime, oracle_rt: Runtime | None) -> list[str]:
    """Requested modes this artifact offers (oracle only when ARTIFACT/oracle exists)."""
    offered = set(rt.modes) | (set(oracle_rt.modes) if oracle_rt is not None else set())
    return [m for m in (x.strip() for x in requested.split(",")) if m in offered]


def _named_session(rt: Runtime, real_mode: str, planner: dict, **kw) -> Session:
    """A session of `real_mode` whatever label the evaluation passes as its mode (e.g. 'bayes@int8')."""
    kw.pop("mode", None)
    return Session(rt, real_mode, planner=planner, **kw)


def parse_guard(text: str) -> tuple[dict | bool | None, bool]:
    """`--guard`: (the guard argument of every session, whether to add MODE@unguarded twins)."""
    text = text.strip()
    if text in ("on", "both", ""):
        return None, text == "both"
    if text == "off":
        return False, False
    try:
        settings = json.loads(text)
    except json.JSONDecodeError:
        settings = None
    if not isinstance(settings, dict):
        raise ValueError(f"--guard must be 'on', 'off', 'both' or a JSON object of guard settings, got {text!r}")
    GuardConfig.from_dict(settings)  # a clear error before any work
    return settings, False


def parse_gain(text: str) -> tuple[dict | bool | None, bool]:
    """`--gain`: (the gain argument of every session, whether to add MODE+gain twins with it on)."""
    text = text.strip()
    if text in ("default", ""):
        return None, False
    if text in ("on", "off", "both"):
        return text == "on", text == "both"
    try:
        settings = json.loads(text)
    except json.JSONDecodeError:
        settings = None
    if not isinstance(settings, dict):
        raise ValueError(f"--gain must be 'default', 'on', 'off', 'both' or a JSON object of gain settings, got "
                         f"{text!r}")
    GainConfig.from_dict(settings)  # a clear error before any work
    return settings, False


def parse_cost(text: str, rt: Runtime) -> dict | None:
    """`--cost`: a JSON object of cost fields, checked against the artifact (a clear error before any work)."""
    patch = cost_overrides(text)
    if not patch:
        return None
    rt.default_cost.merged(patch, rt.obs_dim, rt.action_dim)
    return patch


@dataclass
class Setup:
    """What both evaluations start from: the artifact (and its oracle), the family, the modes on offer, and a
    `new_session` per mode with the flags' planner, cost and window (checked before any work starts)."""

    rt: Runtime
    oracle_rt: Runtime | None
    family: TaskFamily
    modes: list[str]
    planner: dict
    cost: dict | None
    guard: dict | bool | None
    gain: dict | bool | None
    backends: dict[str, partial[Session]]

    @classmethod
    def of(cls, cfg: EvalConfig) -> Setup:
        """Load and check everything the flags name."""
        rt = load(cfg.artifact, threads=cfg.threads)
        oracle_dir = Path(cfg.artifact) / "oracle"
        oracle_rt = load(oracle_dir, threads=cfg.threads) if (oracle_dir / "manifest.json").is_file() else None
        modes = available_modes(cfg.modes, rt, oracle_rt)
        planner = parse_planner(cfg.planner)
        rt.default_planner.replace(**planner)  # a clear error for a bad override before any work starts
        cost = parse_cost(cfg.cost, rt)
        guard, twins = parse_guard(cfg.guard)
        gain, gain_twins = parse_gain(cfg.gain)
        backends = {m: partial(Session, rt if m in rt.modes else oracle_rt, planner=planner, cost=cost,
                               window=cfg.window or None, guard=guard, gain=gain) for m in modes}
        if gain_twins:  # every mode again with actuator-gain adaptation, side by side
            backends.update({f"{m}+gain": partial(_named_session, rt, m, planner, cost=cost, window=cfg.window or None,
                                                  guard=guard, gain=True) for m in modes if m in rt.modes})
        if twins:  # the same adaptive modes without a guard, side by side
            adaptive = [m for m in modes if m in rt.modes and m not in ("none", "oracle")]
            backends.update({f"{m}@unguarded": partial(_named_session, rt, m, planner, cost=cost,
                                                       window=cfg.window or None, guard=False, gain=gain)
                             for m in adaptive})
        modes = list(backends)
        return cls(rt, oracle_rt, get_family(cfg.family or rt.manifest.family), modes, planner, cost, guard, gain,
                   backends)


def evaluate_artifact(cfg: EvalConfig) -> dict:
    """Prediction curves and MPC returns for every mode on every test task; returns eval.json's content."""
    t0 = time.time()
    setup = Setup.of(cfg)
    rt, family, modes, planner, cost, backends = (setup.rt, setup.family, setup.modes, setup.planner, setup.cost,
                                                  setup.backends)
    precisions = [x.strip() for x in cfg.precision.split(",") if x.strip()]
    if not precisions or set(precisions) - {"fp32", "int8"}:
        raise ValueError(f"--precision must be 'fp32', 'int8' or 'fp32,int8', got {cfg.precision!r}")
    tasks = [t for sp in family.split_names(cfg.split) for t in family.test_tasks(sp)[: cfg.max_tasks or None]]
    if "int8" in precisions:  # MODE@int8: the same mode planning with the quantized rollout graphs
        rt8 = load(cfg.artifact, threads=cfg.threads, precision="int8")
        int8 = {f"{m}@int8": partial(_named_session, rt8, m, planner, cost=cost, window=cfg.window or None,
                                     guard=setup.guard, gain=setup.gain)
                for m in modes if m in rt8.modes}
        backends = {**(backends if "fp32" in precisions else {}), **int8}
        modes = list(backends)
    protocol = cfg.protocol(family.episode_steps)
    result = evaluate(protocol, family, tasks, modes, lambda: backends, rt.norm.delta_std,
                      prediction_controller=partial(Session, rt) if cfg.prediction_data == "mpc" else None,
                      workers=cfg.workers, progress=cfg.progress)
    return {**result.to_json(), "split": cfg.split, "artifact": str(cfg.artifact), "config": dataclasses.asdict(cfg),
            "wall_seconds": time.time() - t0}


def track_artifact(cfg: EvalConfig) -> dict:
    """The tracking evaluation (`--control-tasks`): tracking.json's content."""
    t0 = time.time()
    setup = Setup.of(cfg)
    family = setup.family
    tasks = [t.strip() for t in cfg.control_tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in family.control_tasks]
    if unknown:
        raise ValueError(f"family {family.name!r} has no control tasks {unknown}; it has {list(family.control_tasks)}")
    if setup.rt.reference_layout is None:
        raise ValueError(f"{cfg.artifact} declares no reference layout: re-export it with this mbmrl (`mbmrl export`)")
    baselines = list(family.baselines) if cfg.baselines == "all" else [
        b.strip() for b in cfg.baselines.split(",") if b.strip() and b.strip() != "none"]
    result = evaluate_tracking(
        family, tracking_tasks(family, cfg.split, cfg.max_tasks), parse_winds(cfg.winds), tasks,
        setup.modes + baselines, setup.backends, seeds=cfg.seeds, steps=cfg.episode_steps or family.episode_steps,
        workers=cfg.workers, progress=cfg.progress)
    return {**result, "artifact": str(cfg.artifact), "config": dataclasses.asdict(cfg),
            "wall_seconds": time.time() - t0}


def run_eval(cfg: EvalConfig) -> dict:
    """`mbmrl eval`: evaluate, write eval.json + plots (+ results.md), print the tables; with `--control-tasks`,
    the tracking evaluation (tracking.json, tracking.md, tracking.png)."""
    if cfg.control_tasks:
        result = track_artifact(cfg)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tracking.json").write_text(json.dumps(result))
        plot_tracking(result, out)
        md = tracking_tables(result)
        (out / "tracking.md").write_text(md)
        print(md)
        print(f"wrote {out}/tracking.json, tracking.md, tracking.png in {result['wall_seconds']:.0f} s")
        return result
    result = evaluate_artifact(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    plot_curves(result, out)
    md = markdown_tables(result)
    if cfg.markdown:
        (out / "results.md").write_text(md)
    print(md)
    plots = "adaptation_curve.png, returns.png" if "control" in result else "adaptation_curve.png"
    print(f"wrote {out}/eval.json, {plots} in {result['wall_seconds']:.0f} s")
    return result
