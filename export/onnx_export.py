"""`mbmrl export RUN --out ARTIFACT`: checkpoint -> verified ONNX artifact (DESIGN §4)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from mbmrl.runtime.manifest import FORMAT, FORMAT_VERSION, write_manifest
from mbmrl.train.model import DynamicsModel

from .graphs import EncoderStep, Features, Rollout
from .parity import check_parity


@dataclass(frozen=True)
class ExportConfig:
    """Export settings."""

    run: str = field(default="runs/pendulum", metadata={"help": "run directory written by `mbmrl train`"})
    out: str = field(default="artifact", metadata={"help": "artifact directory to write"})
    horizons: tuple[int, ...] = field(default=(15, 30), metadata={"help": "planning horizons to export"})
    tolerance: float = field(default=1e-4, metadata={"help": "max abs torch-vs-ORT error allowed"})


def _quiet_exporter() -> None:
    """The dynamo exporter logs torchvision and deprecation notes that say nothing about our graphs."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    for cat in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=cat, module=r"torch\..*|copyreg|onnxscript\..*")


def export_graph(module: torch.nn.Module, args: tuple, path: Path, dynamic: dict[str, dict[int, str]]) -> None:
    """torch -> ONNX with the dynamo exporter, dynamic batch dims, one file, checker + shape inference."""
    dims = {name: torch.export.Dim(name, min=1, max=1 << 16) for axes in dynamic.values() for name in axes.values()}
    dynamic_shapes = {n: ({ax: dims[d] for ax, d in dynamic[n].items()} if n in dynamic else None)
                      for n in module.input_names}
    module.eval()
    program = torch.onnx.export(
        module, args, dynamo=True, input_names=module.input_names, output_names=module.output_names,
        dynamic_shapes=dynamic_shapes, external_data=False, optimize=True, verbose=False,
    )
    program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def example_inputs(model: DynamicsModel, batch: int = 4, horizon: int = 15) -> dict[str, tuple]:
    """Random example inputs for each graph (also the random half of the parity check)."""
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
                    0.1 * torch.eye(a.feature_dim), torch.tensor([0.3])),
    }


def git_commit() -> str | None:
    """The commit of the code that exported (provenance), or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def mode_specs(model: DynamicsModel, train_cfg: dict) -> dict:
    """The adaptation modes this model was meta-trained for, with their run-time settings."""
    if model.oracle:
        return {"oracle": {}}
    modes: dict = {"none": {}, "recurrent": {}}
    if train_cfg.get("gradient_weight", 0) > 0:
        modes["gradient"] = {"steps": train_cfg["gradient_steps"], "window": train_cfg["window"],
                             "step_size": model.step_size().tolist()}
    if train_cfg.get("bayes_weight", 0) > 0:
        modes["bayes"] = {"window": train_cfg["window"], "noise_var": model.noise_var().tolist(),
                          "noise_prior": train_cfg.get("noise_prior", 0.0)}
    return modes


def export_checkpoint(ckpt_path: Path, out: Path, cfg: ExportConfig, data_path: Path | None = None) -> dict:
    """Write one artifact directory from one checkpoint; returns its manifest."""
    _quiet_exporter()
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = DynamicsModel.from_checkpoint(ckpt).eval()
    fam = ckpt["family_info"]
    out.mkdir(parents=True, exist_ok=True)
    graphs, files = {}, {}
    with torch.no_grad():
        ex = example_inputs(model, horizon=cfg.horizons[0])
        jobs = [("features", Features(model), ex["features"], {"obs": {0: "batch"}, "action": {0: "batch"},
                                                               "h": {0: "batch"}})]
        if not model.oracle:
            enc_dyn = {n: {0: "batch"} for n in EncoderStep.input_names}
            jobs.insert(0, ("encoder_step", EncoderStep(model), ex["encoder_step"], enc_dyn))
        for i, H in enumerate(cfg.horizons):
            name = "rollout" if i == 0 else f"rollout_h{H}"
            args = example_inputs(model, horizon=H)["rollout"]
            jobs.append((name, Rollout(model, H), args, {"actions": {0: "samples"}}))
        for name, module, args, dyn in jobs:
            file = f"{name}.onnx"
            export_graph(module, args, out / file, dyn)
            graphs[name] = {"file": file, "inputs": module.input_names, "outputs": module.output_names}
            if name.startswith("rollout"):
                graphs[name]["horizon"] = module.horizon
            files[file] = {}
    params = {"h0": model.h0.detach().numpy(), "W0": model.W0.detach().numpy()}
    if not model.oracle:
        params["grad_step_size"] = model.step_size().detach().numpy()
        params["bayes_P0"] = torch.linalg.inv(model.prior_precision()).detach().numpy()
        params["bayes_noise_var"] = model.noise_var().detach().numpy()
        params["bayes_noise_a0"] = np.array(ckpt["config"].get("noise_prior", 0.0), dtype=np.float32)
    if ckpt["config"].get("gaussian_nll"):
        params["V"] = model.V.detach().numpy()  # Gaussian head: log-variance = clamp(phi @ V, -12, 6)
    np.savez(out / "params.npz", **params)
    files["params.npz"] = {}
    buf = lambda n: getattr(model, n).tolist()  # noqa: E731
    run_dir = ckpt_path.parent
    run_metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    metrics = run_metrics.get("final", {})
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "family": fam["name"], "description": fam["description"],
        "obs_dim": model.args.obs_dim, "action_dim": model.args.action_dim,
        "obs_names": fam["obs_names"], "action_names": fam["action_names"],
        "action_low": ckpt["action_low"], "action_high": ckpt["action_high"],
        "hidden_size": model.hidden_size, "feature_dim": model.args.feature_dim, "output_dim": model.out_dim,
        "normalization": {"obs_mean": buf("obs_mean"), "obs_std": buf("obs_std"),
                          "delta_mean": buf("delta_mean"), "delta_std": buf("delta_std"),
                          "reward_mean": float(model.reward_mean[0]), "reward_std": float(model.reward_std[0])},
        "modes": mode_specs(model, ckpt["config"]),
        "gaussian_head": bool(ckpt["config"].get("gaussian_nll")),
        "default_mode": "oracle" if model.oracle else "recurrent",
        "default_cost": fam["default_cost"],
        "default_planner": {"method": "mppi", "iterations": 1, **fam["default_planner"],
                            "horizon": cfg.horizons[0]},
        "graphs": graphs, "params_file": "params.npz", "files": files,
        "provenance": {"task_family": fam["name"], "param_ranges": fam["param_ranges"],
                       "seed": ckpt["config"]["seed"], "git_commit": git_commit(),
                       "train_config": ckpt["config"], "metrics_at_export": metrics,
                       "train_seconds": run_metrics.get("wall_seconds")},
    }
    if model.oracle:
        manifest["oracle"] = {"param_names": ckpt["param_names"], "param_mean": buf("param_mean"),
                              "param_std": buf("param_std")}
    shutil.copy(ckpt_path, out / "model.pt")  # for `mbmrl bench`'s PyTorch comparison; not needed on device
    manifest["torch_checkpoint"] = "model.pt"
    write_manifest(out, manifest)
    manifest["parity"] = check_parity(model, out, data_path, cfg.tolerance)
    write_manifest(out, manifest)
    return manifest


def export_run(cfg: ExportConfig) -> Path:
    """Export RUN/model.pt to OUT, and RUN/oracle.pt (if present) to OUT/oracle."""
    run, out = Path(cfg.run), Path(cfg.out)
    if not (run / "model.pt").is_file():
        raise FileNotFoundError(f"{run}/model.pt not found: expected a run directory written by `mbmrl train`")
    data = run / "data.npz" if (run / "data.npz").is_file() else None
    export_checkpoint(run / "model.pt", out, cfg, data)
    if (run / "oracle.pt").is_file():
        export_checkpoint(run / "oracle.pt", out / "oracle", cfg, data)
    return out
