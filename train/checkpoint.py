"""The training side of the artifact contract: the checkpoint record (`model.pt`) and what a `Runtime`
needs from it (`manifest_for`, `params_for`), built here once for export and for torch-engine sessions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mbmrl.runtime.artifact import Manifest, ModeSpec, Normalization, OracleSpec, Params

from .families import BUILTIN, get_family
from .model import DynamicsModel


@dataclass(frozen=True)
class Checkpoint:
    """model.pt: constructor arguments and weights, plus the run facts export needs (nanoGPT style)."""

    args: dict
    state_dict: dict
    family: str
    param_names: list[str]
    action_low: list[float]
    action_high: list[float]
    config: dict  # the resolved TrainConfig
    family_info: dict  # name, description, names, default cost and planner, parameter ranges

    @classmethod
    def of(cls, model: DynamicsModel, **facts: Any) -> Checkpoint:
        """The checkpoint of `model` (weights on the CPU) with the run's facts."""
        ck = model.checkpoint()
        return cls(ck["args"], {k: v.detach().cpu() for k, v in ck["state_dict"].items()}, **facts)

    def facts(self) -> dict[str, Any]:
        """The run's facts besides the weights (what `Checkpoint.of` and `collect_mpc` take)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("args", "state_dict")}

    def save(self, path: str | Path) -> None:
        """Write with torch.save (a plain dict, readable without mbmrl)."""
        torch.save(dataclasses.asdict(self), path)

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Read a `model.pt` / `oracle.pt` written by `mbmrl train`."""
        d = torch.load(path, map_location="cpu", weights_only=False)
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})

    def model(self) -> DynamicsModel:
        """Rebuild the model (CPU, eval mode)."""
        return DynamicsModel.from_checkpoint({"args": self.args, "state_dict": self.state_dict}).eval()


def mode_specs(model: DynamicsModel, train_cfg: dict) -> dict[str, ModeSpec]:
    """The adaptation modes this model was meta-trained for, with their run-time settings."""
    if model.oracle:
        return {"oracle": ModeSpec()}
    modes = {"none": ModeSpec(), "recurrent": ModeSpec()}
    if train_cfg.get("gradient_weight", 0) > 0:
        modes["gradient"] = ModeSpec(steps=train_cfg["gradient_steps"], window=train_cfg["window"])
    if train_cfg.get("bayes_weight", 0) > 0:
        modes["bayes"] = ModeSpec(window=train_cfg["window"], noise_prior=float(train_cfg.get("noise_prior", 0.0)))
    return modes


def reference_layout(fam: dict) -> dict | None:
    """The family's reference layout as the checkpoint stored it; for runs saved before checkpoints kept it,
    the built-in family's own (None for a user's family)."""
    if "reference" in fam:
        return fam["reference"]
    layout = get_family(fam["name"]).reference if fam["name"] in BUILTIN else None
    return layout.to_dict() if layout else None


def family_default(fam: dict, key: str) -> dict:
    """A family's session settings (`default_guard`, `default_gain`) as the checkpoint stored them; for runs saved
    before checkpoints kept them, the built-in family's own (none for a user's family)."""
    if key in fam:
        return dict(fam[key])
    return dict(getattr(get_family(fam["name"]), key)) if fam["name"] in BUILTIN else {}


def default_guard(fam: dict) -> dict:
    """The family's guard settings (empty: the runtime's defaults)."""
    return family_default(fam, "default_guard")


def default_gain(fam: dict) -> dict:
    """The family's gain settings (empty: no gain adaptation by default)."""
    return family_default(fam, "default_gain")


def manifest_for(model: DynamicsModel, ckpt: Checkpoint, horizons: tuple[int, ...] | None = None) -> Manifest:
    """The manifest of `model` without graphs and files (export adds those): dims, bounds, modes, defaults.

    The default planner's horizon is the family's (15 if it names none) when `horizons` (those exported; None:
    any) has it, else the first exported one."""
    fam, buf = ckpt.family_info, (lambda n: getattr(model, n).detach().cpu().tolist())
    norm = Normalization.from_dict({
        "obs_mean": buf("obs_mean"), "obs_std": buf("obs_std"), "delta_mean": buf("delta_mean"),
        "delta_std": buf("delta_std"), "reward_mean": float(model.reward_mean[0]),
        "reward_std": float(model.reward_std[0])})
    oracle = OracleSpec(tuple(ckpt.param_names), tuple(buf("param_mean")), tuple(buf("param_std"))) \
        if model.oracle else None
    horizon = int(fam["default_planner"].get("horizon", 15))
    horizon = horizon if horizons is None or horizon in horizons else horizons[0]
    return Manifest(
        family=fam["name"], description=fam["description"], obs_dim=model.args.obs_dim,
        action_dim=model.args.action_dim, hidden_size=model.hidden_size, feature_dim=model.args.feature_dim,
        output_dim=model.out_dim, action_low=tuple(ckpt.action_low), action_high=tuple(ckpt.action_high),
        obs_names=tuple(fam["obs_names"]), action_names=tuple(fam["action_names"]), normalization=norm,
        modes=mode_specs(model, ckpt.config), default_mode="oracle" if model.oracle else "recurrent",
        default_cost=fam["default_cost"],
        default_planner={"method": "mppi", "iterations": 1, **fam["default_planner"], "horizon": horizon},
        gaussian_head=bool(ckpt.config.get("gaussian_nll")), ensemble=model.args.ensemble, oracle=oracle,
        reference=reference_layout(fam),
        periodic_obs={int(k): float(v) for k, v in fam.get("periodic_obs", {}).items()},
        # an ensemble's sessions start without the family's gain adaptation: narrowing the actions to the bounds / g
        # leaves the members' saturated-action gaits, where they disagree (docs/cadm.md, "Every member explores in
        # turn"); a session can still ask for it
        default_guard=default_guard(fam), default_gain=default_gain(fam) if model.args.ensemble == 1 else {},
        provenance={"task_family": fam["name"], "param_ranges": fam["param_ranges"], "seed": ckpt.config["seed"],
                    "train_config": ckpt.config},
    )


def params_for(model: DynamicsModel, ckpt: Checkpoint) -> Params:
    """The arrays a runtime adapts from: h0, W0 and the meta-learned mode parameters."""
    with torch.no_grad():
        a = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
        if model.oracle:
            return Params(h0=a(model.h0), W0=a(model.W0))
        return Params(h0=a(model.h0), W0=a(model.W0), step_size=a(model.step_size()),
                      P0=a(torch.linalg.inv(model.prior_precision())), noise_var=a(model.noise_var()),
                      V=a(model.V) if ckpt.config.get("gaussian_nll") else None)
