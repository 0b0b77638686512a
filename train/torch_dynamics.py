"""`TorchDynamics`: the `Dynamics` protocol over the torch model (the twin of the exported graphs).

Model-based exploration, `mbmrl bench`'s PyTorch column and parity tests drive the same `Session`
as the device does, with this engine in place of ONNX Runtime.
"""

from __future__ import annotations

import numpy as np
import torch
from mbmrl.runtime.dynamics import CostTerms, rollout_feeds
from mbmrl.runtime.model import Runtime

from .checkpoint import Checkpoint, manifest_for, params_for
from .model import DynamicsModel


class TorchDynamics:
    """numpy in, numpy out; computes with `model` on its device, without gradients."""

    horizons: list[int] | None = None  # any horizon

    def __init__(self, model: DynamicsModel, compiled: bool = False):
        self.model = model
        self.device = model.W0.device
        # torch.compile'd rollout (`mbmrl bench`'s column): compiled once per input shape, on first use
        self._rollout = torch.compile(model.rollout_costs, dynamic=False) if compiled else model.rollout_costs

    def _t(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)

    @torch.no_grad()
    def features(self, obs, action, h) -> np.ndarray:
        """phi(obs, action, h): (B, O), (B, A), (B, hidden) -> (B, D)."""
        return self.model.features(self._t(obs), self._t(action), self._t(h)).cpu().numpy()

    @torch.no_grad()
    def encoder_step(self, h, obs, action, next_obs, reward) -> np.ndarray:
        """(B, hidden), (B, O), (B, A), (B, O), (B, 1) -> (B, hidden)."""
        args = [self._t(x) for x in (h, obs, action, next_obs, reward)]
        return self.model.gru_step(*args).cpu().numpy()

    @torch.no_grad()
    def rollout(self, obs, h, W, actions, terms: CostTerms) -> tuple[np.ndarray, np.ndarray]:
        """The exported rollout graphs' computation (the risk one only when `terms.risk`): -> costs (N,),
        states (N, H, O)."""
        feeds = {k: self._t(v) for k, v in rollout_feeds(obs, h, W, actions, terms).items()}  # as ORT's graphs
        costs, states = self._rollout(**feeds)
        return costs.cpu().numpy(), states.cpu().numpy()


def torch_runtime(model: DynamicsModel, ckpt: Checkpoint) -> Runtime:
    """A `Runtime` over the torch model: what `mbmrl export` would ship, without exporting."""
    return Runtime(manifest_for(model, ckpt), params_for(model, ckpt), TorchDynamics(model))
