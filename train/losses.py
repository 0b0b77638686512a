"""Meta-training losses, one per adaptation mode. Each takes a batch of task segments.

A batch holds B segments of L transitions, each from one task. Position t is predicted
with the belief h_t that folded transitions < t, so every position is a target with
its own context size (0 .. L-1): one pass trains the whole adaptation curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import DynamicsModel


@dataclass
class Batch:
    """B task segments of L transitions each (one task per segment)."""

    obs: torch.Tensor  # (B, L, obs_dim)
    actions: torch.Tensor  # (B, L, act_dim)
    next_obs: torch.Tensor  # (B, L, obs_dim)
    rewards: torch.Tensor  # (B, L)
    params: torch.Tensor  # (B, n_params)


@dataclass
class Encoded:
    """What every loss needs: beliefs, features and normalized targets at every position.

    `phis` are the members' features (K, B, L, D) and `phi` their mean (a plain model: K = 1, phi = phis[0]).
    Adaptation runs on `phi`, as in the runtime; the losses score every member's prediction with the adapted
    head, since every member plans.
    """

    h: torch.Tensor  # (B, L, hidden)
    phi: torch.Tensor  # (B, L, D)
    y: torch.Tensor  # (B, L, P)
    phis: torch.Tensor  # (K, B, L, D)
    member_weight: torch.Tensor | None = None  # (K, B): each member's weight on each segment (--bootstrap)


def encode(model: DynamicsModel, b: Batch, member_weight: torch.Tensor | None = None) -> Encoded:
    """Fold every segment through the encoder and compute features and targets at every position.
    `member_weight` (K, B) weighs member k's errors on segment b in every loss (bootstrapped members)."""
    h = model.beliefs(b.obs, b.actions, b.next_obs, b.rewards, b.params)
    phis = model.member_features(b.obs, b.actions, h)  # (K, B, L, D)
    phi = phis[0] if model.args.ensemble == 1 else phis.mean(0)
    return Encoded(h, phi, model.targets(b.obs, b.next_obs, b.rewards), phis, member_weight)


def member_mean(err: torch.Tensor, e: Encoded, member: int | None = None) -> torch.Tensor:
    """Mean of every member's errors (K, B, ...), or of one `member`'s (B, ...), each member's error on segment b
    weighted by `e.member_weight`."""
    if e.member_weight is None:
        return err.mean()
    w = e.member_weight if member is None else e.member_weight[member]  # (K, B) or (B,)
    return (err * w.reshape(*w.shape, *(1,) * (err.ndim - w.ndim))).mean()


def recurrent_loss(model: DynamicsModel, e: Encoded, gaussian: bool = False,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """One-step error with h_t at every position and member, head at W0 (squared error, or Gaussian NLL);
    `weight` (P,) scales each output's squared error (mean weight 1 keeps the loss's scale)."""
    err2 = (e.phis @ model.W0 - e.y) ** 2  # (K, B, L, P)
    if weight is not None:
        err2 = err2 * weight
    if not gaussian:
        return member_mean(err2, e)
    logvar = model.log_variance(e.phis)
    return member_mean(0.5 * (err2 * torch.exp(-logvar) + logvar), e)


def none_loss(model: DynamicsModel, b: Batch, e: Encoded, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Context-free error (h frozen at h0), every member: trains h0 to be the best prior belief."""
    h0 = model.h0.expand_as(e.h)
    phi0 = model.member_features(b.obs, b.actions, h0)  # (K, B, L, D)
    err2 = (phi0 @ model.W0 - e.y) ** 2  # (K, B, L, P)
    return member_mean(err2 if weight is None else err2 * weight, e)


def multistep_loss(model: DynamicsModel, b: Batch, e: Encoded, k: int, n_starts: int = 4,
                   none_weight: float = 0.0, recurrent_weight: float = 1.0) -> torch.Tensor:
    """Open-loop K-step state error (normalized delta units), h and W0 held fixed as in the planner; each
    ensemble member rolls on its own. `none_weight` > 0 also rolls the prior belief h0 (mode `none`, and
    the guard's fall-back) with that weight: every belief the runtime plans with learns the horizon;
    `recurrent_weight` weighs the belief h_t (0: only h0 rolls)."""
    L, members = b.obs.shape[1], model.args.ensemble
    beliefs = [(recurrent_weight, lambda s: e.h[:, s])] if recurrent_weight > 0 else []  # (weight, s -> (B, hidden))
    if none_weight > 0 and not model.oracle:
        beliefs.append((none_weight, lambda s: model.h0.expand(b.obs.shape[0], -1)))
    total = torch.zeros((), device=b.obs.device)
    for s in torch.randint(0, L - k + 1, (n_starts,)).tolist():
        for weight, belief in beliefs:
            for m in range(members):
                h_proj, x = model.member(m).fh(belief(s)), b.obs[:, s]  # (B, width), (B, obs_dim)
                for j in range(k):
                    x = model.step(x, b.actions[:, s + j], h_proj, model.W0, m)[0]
                    err2 = ((x - b.next_obs[:, s + j]) / model.delta_std) ** 2  # (B, obs_dim)
                    total = total + weight * member_mean(err2, e, m)
    return total / (n_starts * k * members)


def gradient_head(model: DynamicsModel, phi_c: torch.Tensor, y_c: torch.Tensor, steps: int) -> torch.Tensor:
    """k explicit gradient steps on the head from W0 over a context (B, m, D), (B, m, P) -> W (B, D, P).

    The gradient of a linear head is closed-form, so this is exact second-order MAML for free.
    """
    W = model.W0.expand(phi_c.shape[0], -1, -1)
    m = phi_c.shape[1]
    for _ in range(steps):
        grad = (2.0 / m) * phi_c.transpose(1, 2) @ (phi_c @ W - y_c)  # (B, D, P)
        W = W - model.step_size() * grad
    return W


def gradient_loss(model: DynamicsModel, e: Encoded, window: int, steps: int) -> torch.Tensor:
    """Adapt W on a context of m <= window transitions, score on the transitions after it.

    The runtime's `gradient` mode adapts on its last `window` transitions: the contexts seen here.
    """
    L = e.phi.shape[1]
    m = int(torch.randint(1, min(window, L - 1) + 1, ()).item())
    W = gradient_head(model, e.phi[:, :m], e.y[:, :m], steps)  # (B, D, P)
    return member_mean((e.phis[:, :, m:] @ W - e.y[:, m:]) ** 2, e)  # every member, (K, B, L-m, P)


def bayes_posterior(model: DynamicsModel, phi_c: torch.Tensor, y_c: torch.Tensor):
    """Exact Gaussian posterior over W given a context: mean (B, D, P), covariance factor (B, D, D).

    Always float32, also inside a bfloat16 autocast region: the Cholesky needs the precision.
    """
    with torch.autocast(phi_c.device.type, enabled=False):
        phi_c, y_c = phi_c.float(), y_c.float()
        lam0 = model.prior_precision()  # (D, D)
        lam = lam0 + phi_c.transpose(1, 2) @ phi_c  # (B, D, D)
        rhs = lam0 @ model.W0 + phi_c.transpose(1, 2) @ y_c  # (B, D, P)
        chol = torch.linalg.cholesky(lam)
        W = torch.cholesky_solve(rhs, chol)
        cov = torch.cholesky_inverse(chol)  # (B, D, D) = Lambda^-1
    return W, cov


def noise_scale_posterior(model: DynamicsModel, phi_c: torch.Tensor, y_c: torch.Tensor, W: torch.Tensor,
                          a0: float) -> tuple[float, torch.Tensor]:
    """Posterior IG(a, b) (b: (B, P)) of the noise scale tau after the context, prior IG(a0, a0).

    Normal-inverse-gamma: b = a0 + (||y - phi W||^2 + (W - W0)^T Lambda0 (W - W0)) / (2 noise_var),
    the batch form of the runtime's per-transition `nig_update`.
    """
    with torch.autocast(phi_c.device.type, enabled=False):
        resid = ((phi_c.float() @ W - y_c.float()) ** 2).sum(1)  # (B, P)
        dW = W - model.W0  # (B, D, P)
        prior = (dW * (model.prior_precision() @ dW)).sum(1)  # (B, P)
        return a0 + 0.5 * phi_c.shape[1], a0 + 0.5 * (resid + prior) / model.noise_var()


def bayes_predict(model: DynamicsModel, phi: torch.Tensor, W: torch.Tensor, cov: torch.Tensor):
    """Predictive mean (B, T, P) and variance (B, T, P) at features phi (B, T, D), noise scale 1."""
    mean = phi @ W
    quad = ((phi @ cov) * phi).sum(-1, keepdim=True)  # (B, T, 1)
    return mean, model.noise_var() * (1.0 + quad)


def student_t_nll(err: torch.Tensor, scale2: torch.Tensor, nu: float) -> torch.Tensor:
    """Elementwise negative log-density of a Student-t with nu dof and squared scale `scale2`."""
    nu_t = torch.as_tensor(nu, dtype=err.dtype, device=err.device)
    return (torch.lgamma(nu_t / 2) - torch.lgamma((nu_t + 1) / 2) + 0.5 * torch.log(nu_t * torch.pi * scale2)
            + 0.5 * (nu_t + 1) * torch.log1p(err**2 / (nu_t * scale2)))


def bayes_loss(model: DynamicsModel, e: Encoded, window: int, noise_prior: float = 0.0) -> torch.Tensor:
    """Held-out NLL after a posterior update on m <= window context transitions.

    The runtime's `bayes` mode recomputes this posterior from its last `window` transitions.

    noise_prior a0 > 0: the noise scale is learned from the context too (Student-t predictive with
    2a dof); a0 = 0: known noise variance (Gaussian predictive).
    """
    L = e.phi.shape[1]
    m = int(torch.randint(0, min(window, L - 1) + 1, ()).item())
    W, cov = bayes_posterior(model, e.phi[:, :m], e.y[:, :m])
    mean, var = bayes_predict(model, e.phis[:, :, m:], W, cov)  # every member: (K, B, L-m, P)
    if noise_prior <= 0:
        return member_mean(0.5 * ((mean - e.y[:, m:]) ** 2 / var + var.log()), e)
    a, b = noise_scale_posterior(model, e.phi[:, :m], e.y[:, :m], W, noise_prior)
    return member_mean(student_t_nll(mean - e.y[:, m:], var * (b / a)[:, None, :], 2 * a), e)
