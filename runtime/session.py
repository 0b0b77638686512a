"""`Session`: one robot's adaptation state and its plan, over any `Dynamics` engine.

`observe` folds transitions into the belief (h, and the mode's head state) and reports surprise; `act`
plans with MPPI/CEM under the adapted model; `predict` rolls it open-loop. While the adaptation guard
(`mbmrl.runtime.guard`) finds the adapted model predicting worse than the prior (h0, W0), both use the prior.
What differs between adaptation modes lives in the mode objects (`mbmrl.runtime.modes`), not here.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from .cost import Cost
from .deadline import RolloutTimer
from .dynamics import CostTerms
from .gain import GainConfig, fold_plant, gain_planner, gain_report, gain_terms, init_gain, session_gain
from .guard import (
    GuardConfig,
    fold_guard,
    guard_report,
    guard_settings,
    init_guard,
    manifest_guard,
    mix,
    one_step_weight,
)
from .model import Runtime
from .modes import make_mode
from .open_loop import open_loop
from .planner import PlannerConfig, fit_plan, plan_with_weights, shift_plan
from .recording import Recorder
from .reference import Reference, Tracking
from .session_state import restore_arrays, session_arrays
from .types import ActResult, PlanningError
from .validation import all_finite, as_actions, as_vector, check_scale, parse_transition

clock = time.perf_counter  # what plan timings and deadlines measure (tests may replace it)


class Session:
    """Per-session adaptation state. Thread-safe: every public call holds the session lock."""

    def __init__(self, rt: Runtime, mode: str | None = None, planner: PlannerConfig | dict | None = None,
                 cost: Cost | dict | None = None, seed: int | None = None, task_params: dict | None = None,
                 recorder: Recorder | None = None, reference: Reference | dict | None = None,
                 window: int | None = None, guard: GuardConfig | dict | bool | None = None,
                 gain: GainConfig | dict | bool | None = None):
        self.rt = rt
        self.recorder = recorder  # MCAP recording of every transition and plan (`mbmrl.runtime.recording`)
        self.mode = mode or rt.default_mode
        self.adapter = make_mode(self.mode, rt.manifest, rt.params, window)  # window None: the artifact's
        self.guard_config = guard_settings(guard, self.adapter, manifest_guard(rt.manifest))  # None: no guard
        self.gain_config = session_gain(gain, rt)  # None: no gain adaptation
        base = rt.default_planner
        self.planner = base.replace(**planner) if isinstance(planner, dict) else (planner or base)
        self.planner.validate()
        rt.check_horizon(self.planner.horizon)
        self.cost = rt.default_cost.merged(cost, rt.obs_dim, rt.action_dim) if isinstance(cost, dict) else (
            cost or rt.default_cost)
        self.seed, self.task_params = seed, task_params
        self.lock = threading.RLock()
        self.timer = RolloutTimer()  # this CPU's rollout cost (kept across resets)
        self.tracking = Tracking()  # the held reference and its clock
        self.reset()
        self.set_reference(reference)

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget everything observed: back to the prior belief (h0, W0) and an empty plan; a held reference
        stays and starts again from its beginning."""
        with self.lock:
            self.rng = np.random.default_rng(self.seed)
            self.h = self.adapter.initial_belief(self.rt.h0, self.task_params)  # (hidden,)
            self.state = self.adapter.init()
            self.guard = init_guard(self.rt.obs_dim)
            self.gain = init_gain(self.gain_config, self.rt.obs_dim, self.rt.action_dim)  # None: no gain
            self.n_observed = 0
            self.plan = self._initial_plan(self.planner.horizon)
            self.tracking = Tracking(self.tracking.reference)

    def set_reference(self, reference: Reference | dict | None, time: float = 0.0) -> None:
        """Hold a reference trajectory (None: drop it; recorded) with its clock at `time` s: every `act` then plans
        to follow it and advances the clock one control period. ValueError: no reference layout, or malformed."""
        ref = Reference.from_dict(reference) if isinstance(reference, dict) else reference
        with self.lock:
            tracking = self.tracking.holding(ref, time, self.rt.reference_layout)
            if self.recorder is not None and (ref or self.tracking.reference):  # a change to record
                self.recorder.reference(None if ref is None else ref.to_dict(), tracking.time)
            self.tracking = tracking

    @property
    def g(self) -> float:
        """The actuator gain the model runs at: plant action = g x model action (1: no gain adaptation)."""
        return 1.0 if self.gain is None else float(self.gain.gain)

    @property
    def W(self) -> np.ndarray:
        """The adapted head (D, P)."""
        return self.adapter.head(self.state)

    def _model(self, adapted: bool | None = None) -> tuple[np.ndarray, np.ndarray, object]:
        """The belief h (hidden,), head W (D, P) (float32) and head state: the adapted ones or the prior (h0, W0);
        by default those plans use (the prior while the guard holds the session on it)."""
        if not (adapted if adapted is not None else self.guard_config is None or bool(self.guard.adapted)):
            return self.rt.h0.astype(np.float32), self.rt.W0.astype(np.float32), self.adapter.init()
        return self.h.astype(np.float32), self.W.astype(np.float32), self.state

    def _initial_plan(self, horizon: int) -> np.ndarray:
        return np.tile((self.rt.action_low + self.rt.action_high) / 2, (horizon, 1)).astype(np.float32)

    def info(self) -> dict:
        """A JSON-able summary of the session."""
        with self.lock:
            return {
                "mode": self.mode,
                "n_observed": self.n_observed,
                "planner": self.planner.to_dict(),
                "cost": self.cost.to_dict(),
                "h_norm": float(np.linalg.norm(self.h)),
                "w_shift": float(np.linalg.norm(self.W - self.rt.W0)),
                "window": getattr(self.adapter, "window", None),
                "reference": None if self.tracking.reference is None else self.tracking.reference.summary(),
                "reference_time": self.tracking.time,
                "guard": guard_report(self.guard, self.guard_config),
                "gain": gain_report(self.gain, self.gain_config),
            }

    # ----------------------------------------------------------------- adaptation
    def _fold(self, obs, action, next_obs, reward, y) -> float:
        """Fold one validated transition (call with the lock held); returns its surprise."""
        rt = self.rt
        if self.gain is not None and self.gain_config is not None:  # the plant's gain first; the model folds a / g
            self.gain, action = fold_plant(self.gain_config, self.gain, obs, action, next_obs, rt)
        W = self.W  # (D, P) the adapted head before this transition
        phi = rt.dynamics.features(obs[None], action[None], self.h[None])[0]  # (D,)
        pred = phi @ W  # (P,)
        surprise = float(np.mean((pred - y)[: rt.obs_dim] ** 2))
        r = reward
        if reward is None:  # unknown reward: use the model's own prediction, not a zero
            y[rt.obs_dim] = pred[rt.obs_dim]
            r = np.float32(rt.norm.reward(pred[None])[0])
        if (g := self.guard_config) is not None:  # score both predictors on it before the belief moves
            self.guard = fold_guard(g, self.guard, obs, action, next_obs, self.h, W, rt.h0, rt.W0, rt.dynamics.features,
                                    rt.norm.next_obs, rt.norm.delta_std, g.dim_weights(self.cost))
        if self.adapter.adapts_belief:
            self.h = rt.dynamics.encoder_step(self.h[None], obs[None], action[None], next_obs[None],
                                              np.array([[r]], dtype=np.float32))[0]
        self.state = self.adapter.fold(self.state, phi, y)
        self.n_observed += 1
        return surprise

    def observe(self, obs, action, next_obs, reward=None) -> float:
        """Fold one transition; returns its surprise (normalized squared error of the prior prediction)."""
        return self.observe_many([{"obs": obs, "action": action, "next_obs": next_obs, "reward": reward}])[0]

    def observe_many(self, transitions: list[dict]) -> list[float]:
        """Fold transitions in order (dicts with obs, action, next_obs and optional reward), all or none.

        Every transition is validated before any is folded; if folding leaves a non-finite belief,
        the session is put back as it was. Either way a ValueError names what was wrong.
        """
        where = (lambda i: f"transitions[{i}].") if len(transitions) > 1 else (lambda i: "")  # noqa: E731
        parsed = [parse_transition(self.rt, t["obs"], t["action"], t["next_obs"], t.get("reward"), where(i))
                  for i, t in enumerate(transitions)]
        with self.lock:
            before = (self.h, self.state, self.n_observed, self.guard, self.gain)
            surprises = [self._fold(*p) for p in parsed]
            state = [getattr(self.state, f.name) for f in dataclasses.fields(self.state)]
            if not all_finite(self.h, *state, surprises):
                self.h, self.state, self.n_observed, self.guard, self.gain = before
                raise ValueError("these transitions drive the model's belief to non-finite values; the session "
                                 "is unchanged (check units and sensors)")
            if self.recorder is not None:
                counts = range(self.n_observed - len(parsed) + 1, self.n_observed + 1)
                for (o, a, n, r, _), sp, count in zip(parsed, surprises, counts, strict=True):
                    self.recorder.transition(o, a, n, r, sp, count)
            return surprises

    # ----------------------------------------------------------------- planning
    def act(self, obs, cost: dict | None = None, planner: dict | None = None, time: float | None = None
            ) -> ActResult:
        """Plan from `obs` under the adapted model; returns the first action and the whole plan.

        Targets: a per-request `cost.target`, else the held reference from `time` (s; None: where the last act
        left its clock), else the session cost's target (rows advance one per act): `Tracking.cost_for`."""
        rt = self.rt
        obs = as_vector(obs, rt.obs_dim, "obs")
        check_scale(obs, rt.norm.obs_mean, rt.norm.obs_std, "obs")
        with self.lock:
            cfg = gain_planner(self.planner, planner, self.gain_config, self.gain)  # + the gain's horizon
            rt.check_horizon(cfg.horizon)
            c, start = self.tracking.cost_for(self.cost.merged(cost, rt.obs_dim, rt.action_dim), cfg.horizon,
                                              rt.reference_layout, bool(cost and cost.get("target") is not None),
                                              time)
            h, W, head = self._model()  # (hidden,), (D, P)
            risk = self.adapter.risk(head) if c.uncertainty_weight > 0 else None
            g = self.g  # plan model-unit actions u within the plant's bounds / g
            terms = gain_terms(CostTerms.build(c, cfg.horizon, rt.feature_dim, w_cov=risk, start=start), g,
                               self.gain_config)
            mean = self.plan if self.plan.shape[0] == cfg.horizon else fit_plan(  # another horizon: its first steps
                self.plan, self._initial_plan(cfg.horizon))
            t0 = clock()
            last: dict[str, np.ndarray] = {}

            def rollout(actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (N, H, A) -> (N,), (N, H, O)
                last["costs"], last["states"] = rt.dynamics.rollout(obs, h, W, actions, terms)
                return last["costs"], last["states"]

            if cfg.deadline_ms > 0:
                self.timer.calibrate(rollout, mean, clock)  # first deadline: the per-call and per-sequence cost
                spent = (clock() - t0) * 1e3
                cfg = cfg.replace(samples=self.timer.samples_for(cfg.deadline_ms, cfg.iterations, cfg.samples, spent))
            t_plan = clock()
            new_plan, w = plan_with_weights(lambda a: rollout(a)[0], mean, rt.action_low / g, rt.action_high / g,
                                            cfg, self.rng)
            # the plan is sum_i w_i a_i over the last call's samples: the same weights give its expected states
            # and cost, with no second rollout call
            used = w > 0
            if used.any() and all_finite(new_plan):
                states = np.tensordot(w[used], last["states"][used], axes=1).astype(np.float32)  # (H, O)
                expected = float(w[used] @ last["costs"][used])
                # what one iteration of N samples costs here, sampling and weighting included, for deadlines
                self.timer.record(cfg.samples, (clock() - t_plan) * 1e3 / cfg.iterations)
                if all_finite(states, expected):
                    return self._planned(obs, new_plan, states, expected, False, cfg, t0)
            # never answer with a non-finite number: fall back to the last finite plan, then to the neutral one
            for candidate in (mean, self._initial_plan(cfg.horizon)):
                if all_finite(candidate):
                    costs, states = rollout(candidate[None])  # (1,), (1, H, O)
                    if all_finite(costs, states):
                        return self._planned(obs, candidate, states[0], float(costs[0]), True, cfg, t0)
            raise PlanningError("the model predicts non-finite states for every plan from this observation; "
                                "reset the session or check the observation")

    def _planned(self, obs: np.ndarray, plan_: np.ndarray, states: np.ndarray, cost: float, fallback: bool,
                 cfg: PlannerConfig, t0: float) -> ActResult:
        """Keep `plan_` (shifted) for the next warm start; the act result (call with the lock held)."""
        tail = self._initial_plan(1)[0] / np.float32(self.g) if cfg.warm_tail == "neutral" else None
        self.plan = shift_plan(plan_, tail)  # model units: the next warm start
        plant = np.clip(plan_ * np.float32(self.g), self.rt.action_low, self.rt.action_high).astype(np.float32)
        result = ActResult(plant[0].copy(), plant, states, cost, fallback=fallback, samples_used=cfg.samples,
                           plan_ms=(clock() - t0) * 1e3,
                           guard=guard_report(self.guard, self.guard_config))
        if self.recorder is not None:
            self.recorder.plan(obs, result)
        return result

    def step(self, obs, transition: dict | None = None, cost: dict | None = None,
             planner: dict | None = None, time: float | None = None) -> tuple[float | None, ActResult]:
        """One control step: fold the previous `transition` (dict with obs, action, next_obs, optional reward;
        None on the first step), then plan from `obs`. All or nothing: if planning fails, the fold is undone.
        Returns (surprise of the transition or None, the act result)."""
        with self.lock:
            before = self.state_dict()
            try:
                surprise = self.observe_many([transition])[0] if transition is not None else None
                return surprise, self.act(obs, cost=cost, planner=planner, time=time)
            except BaseException:
                self.load_state_dict(before)
                raise

    def predict(self, obs, actions) -> tuple[np.ndarray, np.ndarray | None]:
        """Open-loop prediction: obs (obs_dim,), actions (T, act_dim) -> (T, obs_dim) [+ variance].

        The variance (raw units) comes from the mode (bayes), else from the Gaussian head when the artifact has
        one, else None. For T > 1: each step's one-step variance at the predicted state (not propagated). Under a
        guard one step is its blend of the adapted and the prior predictors (`one_step_weight`), with the mixture's
        variance; more steps use the model plans use."""
        rt = self.rt
        obs = as_vector(obs, rt.obs_dim, "obs")
        check_scale(obs, rt.norm.obs_mean, rt.norm.obs_std, "obs")
        actions = as_actions(actions, rt.action_dim)
        with self.lock:
            actions = np.clip(actions, rt.action_low, rt.action_high) / np.float32(self.g)
            # (model units) one step with a guard: its blend of both predictors; more: the model plans use
            w = (one_step_weight(self.guard_config, self.guard) if len(actions) == 1 else float(self.guard.adapted)
                 ) if self.guard_config is not None else 1.0
            pred, variance = mix([(wi, *open_loop(rt, self.adapter, obs, actions, *self._model(a)))
                                  for a, wi in ((True, w), (False, 1.0 - w)) if wi > 0])
            if not all_finite(pred, variance if variance is not None else 0.0):
                raise PlanningError("the model predicts non-finite states for these actions; reset the session")
            return pred, variance

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to restore this session exactly, as named arrays (`session_state`)."""
        with self.lock:
            return session_arrays(self)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what `state_dict` saved (a KeyError names a missing array)."""
        with self.lock:
            restore_arrays(self, state)
