"""The meta-learned dynamics model: GRU belief encoder, feature MLP, linear head.

Everything is explicit state: `beliefs` folds transitions into h, `features` maps
(obs, action, h) to phi, the head is `phi @ W`. The runtime re-implements only the
head algebra (numpy); encoder and features are exported to ONNX as they are here.

An ensemble (`ModelArgs.ensemble` K > 1) has K feature MLPs sharing the encoder and the head: `features` is
their mean, so `features @ W` is exactly the ensemble's mean one-step prediction (the head is linear) and every
adaptation mode works unchanged on it, while `rollout_costs` propagates each candidate through every member
(trajectory sampling, N x K) and averages the costs. With `member_heads` each member owns a block of the features
(the others' entries are 0 in its phi), so it owns the head's rows of that block: K independent heads (PETS's
independent members) in the one (D, P) head the runtime adapts, with no change to the runtime or its graphs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import cast

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import FEATURE_ACTIVATIONS

ENCODER_CLIP = 3.0  # normalized units; in-range inputs pass almost unchanged (1.0 -> 0.98)


@dataclass(frozen=True)
class ModelArgs:
    """Constructor arguments, stored in every checkpoint so anyone can rebuild the model."""

    obs_dim: int
    action_dim: int
    hidden_size: int = 64
    feature_dim: int = 64
    mlp_width: int = 128
    n_task_params: int = 0
    """> 0 makes an oracle model: h is the normalized true task parameters, no encoder."""
    ensemble: int = 1
    """K feature MLPs (members) sharing the belief encoder and the head."""
    mlp_depth: int = 2
    """Hidden layers of each feature MLP (fx, f2, then depth - 2 more width x width layers); CaDM's MLPs have 4."""
    feature_activation: str = "tanh"
    """phi's activation: 'tanh' (bounded features) or 'linear' (phi @ W is then a plain MLP's linear output layer,
    as in PETS and CaDM: predictions extrapolate past the data instead of saturating)."""
    member_heads: bool = False
    """Each of the K members owns (feature_dim - 1) / K of the features and so its own rows of the head (only
    the constant feature's row, the bias, stays shared); False: every member predicts with the whole head."""

    def member_feature_dim(self) -> int:
        """Features of one member, without the constant 1: the whole D - 1, or its block with `member_heads`."""
        return (self.feature_dim - 1) // self.ensemble if self.member_heads else self.feature_dim - 1


def add_feature_layers(module: nn.Module, obs_dim: int, action_dim: int, hidden_size: int, width: int,
                       feature_dim: int, depth: int = 2) -> None:
    """Give `module` one member's feature layers `fx`, `fh`, `f2`, `fmid`, `f3` (the model holds member 0's)."""
    if depth < 2:
        raise ValueError(f"mlp_depth must be >= 2 hidden layers, got {depth}")
    module.fx = nn.Linear(obs_dim + action_dim, width)
    module.fh = nn.Linear(hidden_size, width, bias=False)  # h enters the first layer additively
    module.f2 = nn.Linear(width, width)
    module.fmid = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 2))  # empty at the default depth
    module.f3 = nn.Linear(width, feature_dim - 1)  # + a constant 1 = the head's bias


FEATURE_LAYERS = ("fx", "fh", "f2", "fmid", "f3")  # one member's layers, as `add_feature_layers` names them


def hidden_to_features(m: FeatureMLP | DynamicsModel, pre: torch.Tensor, activation: str = "tanh") -> torch.Tensor:
    """A member's layers after the first one's pre-activation: (..., width) -> phi without its 1, (..., D-1)."""
    z = F.silu(m.f2(F.silu(pre)))
    for layer in m.fmid:
        z = F.silu(layer(z))
    z = m.f3(z)
    return torch.tanh(z) if activation == "tanh" else z


class FeatureMLP(nn.Module):
    """One further member's feature MLP: (obs, action) and the projected belief -> phi without its constant 1."""

    fx: nn.Linear
    fh: nn.Linear
    f2: nn.Linear
    fmid: nn.ModuleList
    f3: nn.Linear

    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int, width: int, feature_dim: int,
                 depth: int = 2):
        super().__init__()
        add_feature_layers(self, obs_dim, action_dim, hidden_size, width, feature_dim, depth)


class DynamicsModel(nn.Module):
    """delta, reward ~ phi(obs, action, h) @ W, with h folded from observed transitions by a GRU."""

    # normalization buffers (registered in __init__), declared for type checkers
    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    action_mean: torch.Tensor
    action_std: torch.Tensor
    delta_mean: torch.Tensor
    delta_std: torch.Tensor
    reward_mean: torch.Tensor
    reward_std: torch.Tensor
    param_mean: torch.Tensor
    param_std: torch.Tensor
    # member 0's feature layers (`add_feature_layers`)
    fx: nn.Linear
    fh: nn.Linear
    f2: nn.Linear
    fmid: nn.ModuleList
    f3: nn.Linear

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        o, a = args.obs_dim, args.action_dim
        self.oracle = args.n_task_params > 0
        self.hidden_size = args.n_task_params if self.oracle else args.hidden_size
        self.out_dim = o + 1  # normalized delta and reward
        # normalization statistics (set from data before training; exported with the model)
        for name, dim in (("obs", o), ("action", a), ("delta", o), ("reward", 1), ("param", args.n_task_params)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        if not self.oracle:
            self.gru = nn.GRU(2 * o + a + 1, self.hidden_size, batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(self.hidden_size))
        if args.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1 members, got {args.ensemble}")
        if args.feature_activation not in FEATURE_ACTIVATIONS:
            raise ValueError(f"feature_activation must be one of {FEATURE_ACTIVATIONS}, "
                             f"got {args.feature_activation!r}")
        if args.member_heads and (args.ensemble < 2 or (args.feature_dim - 1) % args.ensemble):
            raise ValueError(f"member_heads needs ensemble >= 2 members and feature_dim - 1 divisible by it, got "
                             f"ensemble {args.ensemble}, feature_dim {args.feature_dim}")
        w = args.mlp_width
        d = args.mlp_depth
        fm = args.member_feature_dim() + 1  # one member's features with the constant 1
        add_feature_layers(self, o, a, self.hidden_size, w, fm, d)  # member 0 (a plain model's only)
        self.members = nn.ModuleList(FeatureMLP(o, a, self.hidden_size, w, fm, d)
                                     for _ in range(args.ensemble - 1))  # members 1 .. K-1
        self.W0 = nn.Parameter(torch.zeros(args.feature_dim, self.out_dim))
        nn.init.normal_(self.W0, std=0.01)
        # gradient mode: per-output inner step size (log-parameterized, so it stays positive)
        self.log_step_size = nn.Parameter(torch.full((self.out_dim,), -2.0))
        # bayes mode: prior precision Lambda0 = L L^T + eps I, per-output noise variance
        self.prior_chol = nn.Parameter(torch.eye(args.feature_dim) * 1.0)
        self.log_noise_var = nn.Parameter(torch.full((self.out_dim,), -2.0))
        # optional Gaussian head (--gaussian-nll): log-variance = phi @ V, trained by NLL
        self.V = nn.Parameter(torch.zeros(args.feature_dim, self.out_dim))

    # ------------------------------------------------------------------ normalization
    def set_normalization(self, stats: Mapping[str, torch.Tensor | np.ndarray]) -> None:
        """Copy mean/std statistics (keys like 'obs_mean') into the buffers."""
        for k, v in stats.items():
            getattr(self, k).copy_(torch.as_tensor(v, dtype=torch.float32))

    def transition_input(self, obs, action, next_obs, reward) -> torch.Tensor:
        """Normalized encoder input (..., 2*obs_dim + act_dim + 1), soft-clipped to +-ENCODER_CLIP.

        Out-of-range dynamics (a test task far outside training) would otherwise saturate the GRU
        gates; soft clipping keeps such beliefs at the edge of what training has seen.
        """
        x = torch.cat([
            (obs - self.obs_mean) / self.obs_std,
            (action - self.action_mean) / self.action_std,
            (next_obs - obs - self.delta_mean) / self.delta_std,
            (reward.unsqueeze(-1) - self.reward_mean) / self.reward_std,
        ], dim=-1)
        return ENCODER_CLIP * torch.tanh(x / ENCODER_CLIP)

    def targets(self, obs, next_obs, reward) -> torch.Tensor:
        """Normalized head targets (..., obs_dim + 1)."""
        d = (next_obs - obs - self.delta_mean) / self.delta_std
        r = (reward.unsqueeze(-1) - self.reward_mean) / self.reward_std
        return torch.cat([d, r], dim=-1)

    # ------------------------------------------------------------------ belief
    def gru_step(self, h, obs, action, next_obs, reward) -> torch.Tensor:
        """One encoder step, written out (Gemm/Sigmoid/Tanh) so ONNX export is exact. (B, hidden)."""
        x = self.transition_input(obs, action, next_obs, reward.reshape(-1))
        w = lambda name: cast(torch.Tensor, getattr(self.gru, name))  # noqa: E731  (nn.GRU's parameters)
        gi = F.linear(x, w("weight_ih_l0"), w("bias_ih_l0"))  # (B, 3*hidden)
        gh = F.linear(h, w("weight_hh_l0"), w("bias_hh_l0"))
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h

    def beliefs(self, obs, action, next_obs, reward, task_params=None) -> torch.Tensor:
        """Belief before each transition: h_t folds transitions < t. (B, L, ...) -> (B, L, hidden)."""
        B, L = obs.shape[:2]
        if self.oracle:
            hp = (task_params - self.param_mean) / self.param_std  # (B, n_params)
            return hp[:, None, :].expand(B, L, -1)
        x = self.transition_input(obs, action, next_obs, reward)  # (B, L, in)
        h0 = self.h0.expand(1, B, -1).contiguous()
        hs, _ = self.gru(x[:, :-1], h0)  # (B, L-1, hidden): h after each of the first L-1 transitions
        return torch.cat([h0.transpose(0, 1), hs], dim=1)  # (B, L, hidden)

    # ------------------------------------------------------------------ features and head
    def member(self, k: int) -> FeatureMLP | DynamicsModel:
        """Member k's layers (`fx`, `fh`, `f2`, `f3`); member 0's are the model's own."""
        return self if k == 0 else cast(FeatureMLP, self.members[k - 1])

    def features(self, obs, action, h) -> torch.Tensor:
        """phi(obs, action, h) with a trailing constant 1, the mean over members. (..., feature_dim)."""
        if self.args.ensemble == 1:
            return self.features_from_projection(obs, action, self.fh(h))
        return self.member_features(obs, action, h).mean(0)

    def member_features(self, obs, action, h) -> torch.Tensor:
        """Every member's phi(obs, action, h). (K, ..., feature_dim)."""
        return torch.stack([self.features_from_projection(obs, action, self.member(k).fh(h), k)
                            for k in range(self.args.ensemble)])

    def features_from_projection(self, obs, action, h_proj, k: int = 0) -> torch.Tensor:
        """Member k's phi given h already projected by its first layer (`member(k).fh(h)`), computed once by
        a planner."""
        m = self.member(k)
        x = torch.cat([(obs - self.obs_mean) / self.obs_std, (action - self.action_mean) / self.action_std], -1)
        z = hidden_to_features(m, m.fx(x) + h_proj, self.args.feature_activation)  # (..., member_feature_dim)
        if self.args.member_heads:  # member k's block of the D - 1 features; the others' are 0
            b = self.args.member_feature_dim()
            z = F.pad(z, (k * b, (self.args.ensemble - 1 - k) * b))  # (..., D-1)
        return torch.cat([z, torch.ones_like(z[..., :1])], dim=-1)

    def head_rows(self, k: int) -> torch.Tensor:
        """Rows of the head (and of any (D, D) matrix over features) that member k reads: its block and the
        constant feature's. (member_feature_dim + 1,)"""
        b, d = self.args.member_feature_dim(), self.args.feature_dim
        if not self.args.member_heads:
            return torch.arange(d, device=self.W0.device)
        return torch.cat([torch.arange(k * b, (k + 1) * b), torch.tensor([d - 1])]).to(self.W0.device)

    def next_obs(self, obs, head_out) -> torch.Tensor:
        """Raw next observation from normalized head output."""
        return obs + head_out[..., : self.args.obs_dim] * self.delta_std + self.delta_mean

    def reward(self, head_out) -> torch.Tensor:
        """Raw reward from normalized head output."""
        return head_out[..., self.args.obs_dim] * self.reward_std[0] + self.reward_mean[0]

    def step(self, x, a, h_proj, W, k: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One open-loop step of member k (the one place it is written): x (B,O), a (B,A), h_proj = member(k).fh(h)
        (B or 1, width), W (D,P) -> next x (B,O), phi (B,D), head output (B,P)."""
        phi = self.features_from_projection(x, a, h_proj, k)
        out = phi @ W
        return self.next_obs(x, out), phi, out

    def rollout_costs(self, obs, h, W, actions, target, q, r, terminal_weight, reward_weight, linear, w_cov=None,
                      uncertainty_weight=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll N action sequences open-loop and cost them (DESIGN §3): the exported `rollout*` graphs.

        obs (1,O), h (1,hidden), W (D,P), actions (N,H,A), target (H,O), q (O,), r (A,), terminal_weight,
        reward_weight (1,), linear (O,) [, w_cov (D,D), uncertainty_weight (1,): the risk graph] -> costs (N,),
        states (N,H,O).

        An ensemble rolls every sequence through each member (trajectory sampling, one particle per member) and
        returns the mean cost and the mean predicted states over members.
        """
        args = (obs, h, W, actions, target, q, r, terminal_weight, reward_weight, linear, w_cov, uncertainty_weight)
        if self.args.ensemble == 1:
            return self._member_rollout(0, *args)
        costs, states = zip(*(self._member_rollout(k, *args) for k in range(self.args.ensemble)), strict=True)
        return torch.stack(costs).mean(0), torch.stack(states).mean(0)  # (N,), (N, H, O): over (K, ...)

    def _member_rollout(self, k, obs, h, W, actions, target, q, r, terminal_weight, reward_weight, linear, w_cov,
                        uncertainty_weight) -> tuple[torch.Tensor, torch.Tensor]:
        """`rollout_costs` through member k alone: costs (N,), states (N,H,O).

        The same math as stepping `step` H times, laid out for a small graph: normalization and the belief
        are folded into the first layer once per call, all actions are projected before the loop, the head's
        constant feature and output scaling are folded into its weights, and the costs are computed on the
        stacked states after the loop. Without w_cov there is no risk term (and no (D, D) product).
        """
        m = self.member(k)
        if self.args.member_heads:  # member k's own head: its block's rows and the bias row
            rows = self.head_rows(k)
            W = W.index_select(0, rows)  # (b+1, P)
            if w_cov is not None:
                w_cov = w_cov.index_select(0, rows).index_select(1, rows)  # (b+1, b+1)
        n, horizon = actions.shape[:2]
        o, width = self.args.obs_dim, m.fx.weight.shape[0]
        d1 = W.shape[0] - 1  # features before the constant 1
        wx = m.fx.weight[:, :o] / self.obs_std  # (width, O): first layer on raw obs
        wa = m.fx.weight[:, o:] / self.action_std  # (width, A): ... and on raw actions
        wd, bd = W[:d1, :o] * self.delta_std, W[d1, :o] * self.delta_std + self.delta_mean  # raw delta head
        # the state before step t is obs + t * bd + e_t, with e_t the sum of the steps' z @ wd (e_0 = 0): the
        # constant parts enter the first layer through a per-step offset, computed once with all actions
        steps = torch.arange(horizon, dtype=obs.dtype, device=obs.device)[:, None]  # (H, 1)
        c = m.fx.bias - wx @ self.obs_mean - wa @ self.action_mean + m.fh(h) + obs @ wx.T  # (1, width)
        offset = c + steps * (bd @ wx.T)  # (H, width): h enters once per call
        pa = (actions @ wa.T + offset).reshape(n, horizon * width).split(width, dim=1)  # H x (N, width)
        es, zs = [], []
        e = None
        for t in range(horizon):
            pre = pa[t] if e is None else torch.addmm(pa[t], e, wx.T)  # (N, width)
            z = hidden_to_features(m, pre, self.args.feature_activation)  # (N, D-1)
            e = z @ wd if e is None else e + z @ wd  # (N, O); torch's addmm here loses digits the graph keeps
            es.append(e)
            zs.append(z)
        base = obs + (steps + 1) * bd  # (H, O): the state after step t, without e_{t+1}
        states = torch.cat(es, dim=1).reshape(n, horizon, o) + base  # (N, H, O)
        z_all = torch.cat(zs, dim=1)  # (N, H*(D-1))
        # every sum over steps and dimensions below is one 2-D product with a column of per-entry weights
        column = lambda v: v.reshape(-1, 1)  # noqa: E731
        step_w = torch.cat([torch.ones(horizon - 1, dtype=obs.dtype, device=obs.device), terminal_weight])  # (H,)
        dev = (states - target).reshape(n, horizon * o)  # (N, H*O)
        cost = (dev * dev) @ column(step_w[:, None] * q)  # (N, 1)
        cost = cost + states.reshape(n, horizon * o) @ column(step_w[:, None] * linear)  # the linear state term
        sq = (actions * actions).reshape(n, -1)  # (N, H*A)
        cost = cost + sq @ column(r.repeat(horizon))
        wr = (W[:d1, o] * self.reward_std).repeat(horizon)  # (H*(D-1),): the reward head, summed over steps
        reward = z_all @ column(wr) + horizon * (W[d1, o] * self.reward_std + self.reward_mean)  # (N, 1)
        cost = cost - reward_weight * reward
        if w_cov is not None:  # phi^T w_cov phi with phi = [z, 1], written out on the stacked features
            lin = (w_cov[:d1, d1] + w_cov[d1, :d1]).repeat(horizon)  # (H*(D-1),)
            quad = ((z_all.reshape(n * horizon, d1) @ w_cov[:d1, :d1]).reshape(n, -1) * z_all).sum(-1, keepdim=True)
            cost = cost + uncertainty_weight * (quad + z_all @ column(lin) + horizon * w_cov[d1, d1])
        cost = cost.reshape(n)
        return cost, states  # (N,), (N, H, O)

    # ------------------------------------------------------------------ adaptation parameters
    def step_size(self) -> torch.Tensor:
        """gradient mode: per-output inner step size (P,)."""
        return self.log_step_size.exp()  # (P,)

    def prior_precision(self) -> torch.Tensor:
        """bayes mode: prior precision Lambda0 (D, D), positive definite."""
        L = torch.tril(self.prior_chol)
        return L @ L.T + 1e-3 * torch.eye(L.shape[0], device=L.device)  # (D, D)

    def log_variance(self, phi: torch.Tensor) -> torch.Tensor:
        """Gaussian head: per-output log-variance of the normalized prediction, bounded for stability."""
        return (phi @ self.V).clamp(-12.0, 6.0)

    def noise_var(self) -> torch.Tensor:
        """bayes mode: per-output noise variance (P,) in normalized units."""
        return self.log_noise_var.exp()  # (P,)

    def member_model(self, k: int) -> DynamicsModel:
        """A plain model (ensemble 1) of member k's feature MLP with the shared encoder, head and adaptation
        parameters: what member k alone predicts (every member is trained to predict with the shared head; with
        `member_heads`, with its own rows of it and the prior marginalized onto them)."""
        if not 0 <= k < self.args.ensemble:
            raise ValueError(f"member must be in [0, {self.args.ensemble}), got {k}")
        plain = DynamicsModel(replace(self.args, ensemble=1, member_heads=False,
                                      feature_dim=self.args.member_feature_dim() + 1))
        state = {n: v for n, v in self.state_dict().items() if not n.startswith("members.")}
        if self.args.member_heads:  # member k's own rows of the head, and the prior's marginal over them
            rows = self.head_rows(k).cpu()
            state["W0"], state["V"] = state["W0"][rows], state["V"][rows]
            with torch.no_grad():
                cov = torch.linalg.inv(self.prior_precision().double().cpu())[rows][:, rows]  # marginal prior
                state["prior_chol"] = torch.linalg.cholesky(torch.linalg.inv(cov)).float()
        plain.load_state_dict(state)
        for name in FEATURE_LAYERS:  # member 0's are the model's own, copied above
            getattr(plain, name).load_state_dict(getattr(self.member(k), name).state_dict())
        return plain.to(self.W0.device).train(self.training)

    def checkpoint(self) -> dict:
        """Constructor arguments + weights: enough to rebuild the model anywhere."""
        return {"args": asdict(self.args), "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> DynamicsModel:
        """Rebuild from `checkpoint()`'s dict."""
        model = cls(ModelArgs(**ckpt["args"]))
        model.load_state_dict(ckpt["state_dict"])
        return model
