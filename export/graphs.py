"""The three exported graphs as small torch modules with fixed, named inputs (DESIGN §4), and example inputs.

State goes in and comes out: `encoder_step` (h, transition) -> h'; `features`
(obs, action, h) -> phi; `rollout` (obs, h, W, actions, cost terms) -> (costs, states).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from mbmrl.runtime.dynamics import ROLLOUT_INPUTS, ROLLOUT_RISK_INPUTS
from mbmrl.train.model import DynamicsModel


class EncoderStep(nn.Module):
    """(h (B,hidden), obs (B,O), action (B,A), next_obs (B,O), reward (B,1)) -> h_next (B,hidden)."""

    input_names = ["h", "obs", "action", "next_obs", "reward"]
    output_names = ["h_next"]

    def __init__(self, model: DynamicsModel):
        super().__init__()
        self.model = model

    def forward(self, h, obs, action, next_obs, reward):
        """Fold one transition into each belief."""
        return self.model.gru_step(h, obs, action, next_obs, reward)


class Features(nn.Module):
    """(obs (B,O), action (B,A), h (B,hidden)) -> phi (B,D)."""

    input_names = ["obs", "action", "h"]
    output_names = ["phi"]

    def __init__(self, model: DynamicsModel):
        super().__init__()
        self.model = model

    def forward(self, obs, action, h):
        """Features of each (obs, action, h)."""
        return self.model.features(obs, action, h)


class Rollout(nn.Module):
    """Roll N action sequences over a fixed horizon and cost them (`DynamicsModel.rollout_costs`).

    Inputs are `mbmrl.runtime.dynamics.ROLLOUT_INPUTS`: obs (1,O), h (1,hidden), W (D,P), actions (N,H,A),
    then the `CostTerms` -> costs (N,), states (N,H,O). With `risk`, `ROLLOUT_RISK_INPUTS`: w_cov (D,D) and
    uncertainty_weight (1,) too, and the risk term in the cost (the graph the runtime runs when it is on).
    """

    output_names = ["costs", "states"]

    def __init__(self, model: DynamicsModel, horizon: int, risk: bool = False):
        super().__init__()
        self.model = model
        self.horizon = horizon
        self.risk = risk
        self.input_names = list(ROLLOUT_RISK_INPUTS if risk else ROLLOUT_INPUTS)

    def forward(self, obs, h, W, actions, target, q, r, terminal_weight, reward_weight, linear, w_cov=None,
                uncertainty_weight=None):
        """Costs (N,) and predicted states (N, H, O) of N action sequences."""
        return self.model.rollout_costs(obs, h, W, actions, target, q, r, terminal_weight, reward_weight, linear,
                                        w_cov, uncertainty_weight)

    def inputs(self, args: tuple) -> tuple:
        """The example `rollout` inputs (all twelve) this graph takes."""
        return tuple(args[: len(self.input_names)])


def example_inputs(model: DynamicsModel, batch: int = 4, horizon: int = 15) -> dict[str, tuple]:
    """Random example inputs for each graph (what export traces, and the random half of the parity check)."""
    g = torch.Generator().manual_seed(0)
    a = model.args
    rn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    obs = rn(batch, a.obs_dim) * model.obs_std + model.obs_mean
    act = torch.rand(batch, a.action_dim, generator=g) * 2 - 1
    act = act * model.action_std + model.action_mean
    h = rn(batch, model.hidden_size)
    nxt = obs + rn(batch, a.obs_dim) * model.delta_std + model.delta_mean
    W = model.W0.detach() + 0.1 * rn(*model.W0.shape)
    acts = (torch.rand(batch, horizon, a.action_dim, generator=g) * 2 - 1) * model.action_std + model.action_mean
    return {
        "encoder_step": (h, obs, act, nxt, rn(batch, 1)),
        "features": (obs, act, h),
        "rollout": (obs[:1], h[:1], W, acts, rn(horizon, a.obs_dim), torch.rand(a.obs_dim, generator=g),
                    torch.rand(a.action_dim, generator=g), torch.tensor([2.0]), torch.tensor([0.5]),
                    rn(a.obs_dim), 0.1 * torch.eye(a.feature_dim), torch.tensor([0.3])),
    }
