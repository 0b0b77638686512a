"""`OnnxDynamics`: the exported graphs under ONNX Runtime (the engine on the device)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .artifact import ArtifactError, GraphSpec, Manifest
from .dynamics import CostTerms, rollout_feeds


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


class OnnxDynamics:
    """`Dynamics` over an artifact's ONNX graphs (numpy in, numpy out)."""

    def __init__(self, root: str | Path, manifest: Manifest, threads: int = 1, precision: str = "fp32"):
        opts = make_session_options(threads)
        self.precision = precision

        def load(g: GraphSpec) -> ort.InferenceSession:
            path = Path(root) / g.file
            try:
                sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - ORT raises several types; all mean "not this graph"
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ArtifactError(f"{path} is not a loadable ONNX graph ({first}); re-export the run") from e
            names = tuple(i.name for i in sess.get_inputs())
            if names != tuple(g.inputs):
                raise ArtifactError(f"{path} takes inputs {list(names)}, the manifest says {list(g.inputs)}; "
                                    "re-export the run")
            return sess

        graphs = manifest.graphs
        if "features" not in graphs:
            raise ArtifactError(f"{root}: the manifest lists no features graph")
        self._features = load(graphs["features"])
        self._encoder = load(graphs["encoder_step"]) if "encoder_step" in graphs else None
        # (horizon, risk) -> (session, input names); a graph that takes w_cov can cost with or without risk
        self._rollouts = {(int(g.horizon), g.risk or "w_cov" in g.inputs): (load(g), g.inputs)
                          for g in graphs.values() if g.horizon is not None and g.precision == precision}
        if not self._rollouts:
            hint = (" at int8: export with `mbmrl export RUN --int8 f2`" if precision == "int8" else
                    "" if precision == "fp32" else f" at precision {precision!r} (known: 'fp32', 'int8')")
            raise ArtifactError(f"{root}: the manifest lists no rollout graph{hint}")
        self.horizons: list[int] | None = sorted({H for H, _ in self._rollouts})

    def features(self, obs: np.ndarray, action: np.ndarray, h: np.ndarray) -> np.ndarray:
        """phi(obs, action, h): (B, O), (B, A), (B, hidden) -> (B, D)."""
        return self._features.run(None, {"obs": obs, "action": action, "h": h})[0]

    def encoder_step(self, h, obs, action, next_obs, reward) -> np.ndarray:
        """Fold a batch of transitions into beliefs: (B, hidden) -> (B, hidden)."""
        if self._encoder is None:
            raise ArtifactError("this artifact has no encoder (an oracle model adapts from task_params only)")
        return self._encoder.run(None, {"h": h, "obs": obs, "action": action, "next_obs": next_obs,
                                        "reward": reward})[0]

    def rollout(self, obs, h, W, actions, terms: CostTerms) -> tuple[np.ndarray, np.ndarray]:
        """Roll N action sequences and cost them in one ONNX call: -> costs (N,), states (N, H, O).

        The plain graph runs unless `terms.risk`; then the risk variant (or a graph that takes w_cov).
        """
        H, risk = actions.shape[1], terms.risk
        graph = self._rollouts.get((H, risk)) or self._rollouts.get((H, True))
        if graph is None:
            have = "" if (H, False) not in self._rollouts else " with the risk term (uncertainty_weight > 0)"
            raise ValueError(f"planner.horizon={H} was not exported{have}; this artifact has {self.horizons}")
        sess, names = graph
        feeds = rollout_feeds(obs, h, W, actions, terms, risk="w_cov" in names, names=tuple(names))
        costs, states = sess.run(None, feeds)
        return costs, states
