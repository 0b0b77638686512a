"""`Runtime`: a loaded, verified artifact and its ONNX Runtime sessions (numpy in, numpy out).

Graphs are pure functions of their inputs (state goes in and comes out); sessions that
hold `h` and `W` live in `mbmrl.runtime.session`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .cost import Cost
from .manifest import ArtifactError, Normalization, load_manifest
from .planner import PlannerConfig


def make_session_options(threads: int = 1) -> ort.SessionOptions:
    """ORT options for duty-cycled control loops: few threads, no spinning after each run."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class Runtime:
    """A verified artifact: dims, normalization, parameters, and ONNX graphs ready to run."""

    def __init__(self, artifact: str | Path, threads: int = 1, verify: bool = True):
        self.path = Path(artifact)
        self.manifest = load_manifest(self.path, verify=verify)
        m = self.manifest
        self.obs_dim: int = m["obs_dim"]
        self.action_dim: int = m["action_dim"]
        self.hidden_size: int = m["hidden_size"]
        self.feature_dim: int = m["feature_dim"]
        self.output_dim: int = m["output_dim"]
        self.action_low = np.asarray(m["action_low"], dtype=np.float32)
        self.action_high = np.asarray(m["action_high"], dtype=np.float32)
        self.norm = Normalization.from_dict(m["normalization"])
        self.modes: dict = m["modes"]
        self.default_mode: str = m["default_mode"]
        self.default_cost = Cost.from_dict(m["default_cost"], self.obs_dim, self.action_dim)
        self.default_planner = PlannerConfig(**m["default_planner"])
        with np.load(self.path / m["params_file"]) as npz:
            self.params = {k: npz[k].astype(np.float32) for k in npz.files}
        self.h0 = self.params["h0"]  # (hidden,)
        self.W0 = self.params["W0"]  # (D, P)
        self._zero_cov = np.zeros((self.feature_dim, self.feature_dim), np.float32)
        opts = make_session_options(threads)
        providers = ["CPUExecutionProvider"]
        graphs = m["graphs"]
        self._features = ort.InferenceSession(str(self.path / graphs["features"]["file"]), opts, providers=providers)
        self._encoder = (
            ort.InferenceSession(str(self.path / graphs["encoder_step"]["file"]), opts, providers=providers)
            if "encoder_step" in graphs
            else None
        )
        self._rollouts = {
            int(g["horizon"]): ort.InferenceSession(str(self.path / g["file"]), opts, providers=providers)
            for name, g in graphs.items()
            if name.startswith("rollout")
        }
        if not self._rollouts:
            raise ArtifactError(f"{self.path}: the manifest lists no rollout graph")

    @property
    def horizons(self) -> list[int]:
        return sorted(self._rollouts)

    def encoder_step(self, h, obs, action, next_obs, reward) -> np.ndarray:
        """Fold a batch of transitions into beliefs: (B, hidden) -> (B, hidden)."""
        if self._encoder is None:
            raise ArtifactError("this artifact has no encoder (an oracle model adapts from task_params only)")
        return self._encoder.run(None, {
            "h": h, "obs": obs, "action": action, "next_obs": next_obs, "reward": reward,
        })[0]

    def features(self, obs: np.ndarray, action: np.ndarray, h: np.ndarray) -> np.ndarray:
        """phi(obs, action, h): (B, obs_dim), (B, act_dim), (B, hidden) -> (B, D)."""
        return self._features.run(None, {"obs": obs, "action": action, "h": h})[0]

    def rollout(self, obs, h, W, actions, cost: Cost, start: int = 0,
                w_cov: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Roll N action sequences through the model and cost them, in one ONNX call.

        obs (obs_dim,), h (hidden,), W (D, P), actions (N, H, act_dim) -> costs (N,), states (N, H, obs_dim).
        `w_cov` (D, D) weights the risk term (Bayesian head); None means no uncertainty is known.
        """
        horizon = actions.shape[1]
        sess = self._rollouts.get(horizon)
        if sess is None:
            raise ValueError(f"planner.horizon={horizon} was not exported; this artifact has {self.horizons}")
        costs, states = sess.run(None, {
            "obs": obs.reshape(1, -1).astype(np.float32),
            "h": h.reshape(1, -1).astype(np.float32),
            "W": W.astype(np.float32),
            "actions": actions.astype(np.float32),
            "target": cost.target_for(horizon, start),
            "q": cost.q,
            "r": cost.r,
            "terminal_weight": np.array([cost.terminal_weight], dtype=np.float32),
            "reward_weight": np.array([cost.reward_weight], dtype=np.float32),
            "w_cov": self._zero_cov if w_cov is None else w_cov.astype(np.float32),
            "uncertainty_weight": np.array([cost.uncertainty_weight], dtype=np.float32),
        })
        return costs, states

    def to_next_obs(self, obs: np.ndarray, head_out: np.ndarray) -> np.ndarray:
        """Raw next observation from normalized head output: (B, obs_dim), (B, P) -> (B, obs_dim)."""
        d = head_out[:, : self.obs_dim] * self.norm.delta_std + self.norm.delta_mean
        return (obs + d).astype(np.float32)

    def new_session(self, mode: str | None = None, **kwargs):
        """A fresh adaptation session (see `Session`)."""
        from .session import Session

        return Session(self, mode or self.default_mode, **kwargs)
