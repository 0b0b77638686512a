"""The three exported graphs as small torch modules with fixed, named inputs (DESIGN §4).

State goes in and comes out: `encoder_step` (h, transition) -> h'; `features`
(obs, action, h) -> phi; `rollout` (obs, h, W, actions, cost terms) -> (costs, states).
"""

from __future__ import annotations

import torch.nn as nn
from mbmrl.train.model import DynamicsModel


class EncoderStep(nn.Module):
    """(h (B,hidden), obs (B,O), action (B,A), next_obs (B,O), reward (B,1)) -> h_next (B,hidden)."""

    input_names = ["h", "obs", "action", "next_obs", "reward"]
    output_names = ["h_next"]

    def __init__(self, model: DynamicsModel):
        super().__init__()
        self.model = model

    def forward(self, h, obs, action, next_obs, reward):
        return self.model.gru_step(h, obs, action, next_obs, reward)


class Features(nn.Module):
    """(obs (B,O), action (B,A), h (B,hidden)) -> phi (B,D)."""

    input_names = ["obs", "action", "h"]
    output_names = ["phi"]

    def __init__(self, model: DynamicsModel):
        super().__init__()
        self.model = model

    def forward(self, obs, action, h):
        return self.model.features(obs, action, h)


class Rollout(nn.Module):
    """Roll N action sequences over a fixed horizon and cost them (DESIGN §3 quadratic cost).

    obs (1,O), h (1,hidden), W (D,P), actions (N,H,A), target (H,O), q (O,), r (A,),
    terminal_weight (1,), reward_weight (1,), w_cov (D,D), uncertainty_weight (1,) -> costs (N,), states (N,H,O).
    `w_cov` scales the risk term phi^T w_cov phi (the Bayesian head's epistemic variance; zeros otherwise).
    """

    input_names = ["obs", "h", "W", "actions", "target", "q", "r", "terminal_weight", "reward_weight", "w_cov",
                   "uncertainty_weight"]
    output_names = ["costs", "states"]

    def __init__(self, model: DynamicsModel, horizon: int):
        super().__init__()
        self.model = model
        self.horizon = horizon

    def forward(self, obs, h, W, actions, target, q, r, terminal_weight, reward_weight, w_cov, uncertainty_weight):
        return self.model.rollout_costs(obs, h, W, actions, target, q, r, terminal_weight, reward_weight, w_cov,
                                        uncertainty_weight)
