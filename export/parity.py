"""Torch-vs-ONNX Runtime parity of every exported graph, on random and on real inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from mbmrl.runtime.dynamics import ROLLOUT_INPUTS, CostTerms
from mbmrl.runtime.loader import load
from mbmrl.train.data import Segments
from mbmrl.train.model import DynamicsModel

from .graphs import EncoderStep, Features, Rollout, example_inputs


class ParityError(RuntimeError):
    """An exported graph disagrees with the torch model beyond tolerance."""


def real_inputs(model: DynamicsModel, segs: Segments, batch: int = 16, horizon: int = 15) -> dict[str, tuple]:
    """Inputs taken from collected data, with beliefs folded by the torch model over real context."""
    rng = np.random.default_rng(0)
    idx = rng.choice(len(segs), size=min(batch, len(segs)), replace=False)
    t = lambda x: torch.as_tensor(x[idx])  # noqa: E731
    obs, act, nxt, rew, par = t(segs.obs), t(segs.actions), t(segs.next_obs), t(segs.rewards), t(segs.params)
    hs = model.beliefs(obs, act, nxt, rew, par)  # (B, L, hidden)
    pos = min(16, obs.shape[1] - horizon - 1)
    h = hs[:, pos]
    W = model.W0.detach()
    return {
        "encoder_step": (h, obs[:, pos], act[:, pos], nxt[:, pos], rew[:, pos, None]),
        "features": (obs[:, pos], act[:, pos], h),
        "rollout": (obs[:1, pos], h[:1], W, act[:, pos : pos + horizon], nxt[0, pos : pos + horizon],
                    torch.ones(obs.shape[-1]), torch.full((act.shape[-1],), 0.01), torch.tensor([2.0]),
                    torch.tensor([0.1]), -0.1 * torch.ones(obs.shape[-1]), 0.1 * torch.eye(model.args.feature_dim),
                    torch.tensor([0.3])),
    }


def error_contexts(model: DynamicsModel, data_path: Path | None, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """n (obs, h) pairs to measure approximation error on: real states with beliefs folded over real context
    when the run's data is there, else random states around the data statistics and random beliefs."""
    with torch.no_grad():
        if data_path is not None:
            ex = real_inputs(model, Segments.load(data_path), batch=n)["features"]
        else:
            ex = example_inputs(model, batch=n)["features"]
    return ex[0].numpy(), ex[2].numpy()  # (n, O), (n, hidden)


def _max_err(ref: list[torch.Tensor], got: list[np.ndarray]) -> tuple[float, float]:
    err = max(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got, strict=True))
    scale = max(float(r.abs().max()) for r in ref)
    return err, scale


def check_parity(model: DynamicsModel, artifact: Path, data_path: Path | None, tolerance: float) -> dict:
    """Run every graph in torch and through `mbmrl.runtime`; returns max abs errors, raises past tolerance."""
    dyn = load(artifact, verify=True).dynamics
    report: dict = {"tolerance": tolerance}
    kinds: dict[str, Callable[[int], dict]] = {"random": lambda H: example_inputs(model, batch=8, horizon=H)}
    if data_path is not None:
        segs = Segments.load(data_path)
        kinds["real"] = lambda H: real_inputs(model, segs, horizon=H)

    def run_rollout(a: tuple) -> list[np.ndarray]:
        n = [v.numpy() for v in a]
        if len(n) == len(ROLLOUT_INPUTS):  # the plain graph: no risk term
            n += [np.zeros((model.args.feature_dim,) * 2, np.float32), np.zeros(1, np.float32)]
        terms = CostTerms(*n[4:])
        return list(dyn.rollout(n[0][0], n[1][0], n[2], n[3], terms))

    with torch.no_grad():
        for kind, make in kinds.items():
            for H in dyn.horizons or []:
                ex = make(H)
                plain, risky = Rollout(model, H), Rollout(model, H, risk=True)
                checks: dict[str, tuple[torch.nn.Module, tuple, Callable]] = {
                    f"rollout_h{H}": (plain, plain.inputs(ex["rollout"]), run_rollout),
                    f"rollout_risk_h{H}": (risky, risky.inputs(ex["rollout"]), run_rollout)}
                if H == (dyn.horizons or [])[0]:
                    checks["features"] = (Features(model), ex["features"],
                                          lambda a: [dyn.features(*[v.numpy() for v in a])])
                    if not model.oracle:
                        checks["encoder_step"] = (EncoderStep(model), ex["encoder_step"],
                                                  lambda a: [dyn.encoder_step(*[v.numpy() for v in a])])
                for name, (module, args, run_ort) in checks.items():
                    ref = module(*args)
                    ref = list(ref) if isinstance(ref, tuple) else [ref]
                    err, scale = _max_err(ref, run_ort(args))
                    report[f"{name}/{kind}"] = err
                    if err > tolerance * (1.0 + scale):
                        raise ParityError(f"{name} on {kind} inputs: max abs error {err:.3g} exceeds "
                                          f"{tolerance:g} x (1 + {scale:.3g}); the ONNX graph is not faithful")
    return report
