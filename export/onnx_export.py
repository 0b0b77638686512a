"""`mbmrl export RUN --out ARTIFACT`: checkpoint -> verified ONNX artifact (DESIGN §4)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import warnings
from pathlib import Path

import onnx
import torch
from mbmrl.runtime.artifact import GraphSpec, Manifest
from mbmrl.runtime.loader import load
from mbmrl.train.checkpoint import Checkpoint, default_gain, manifest_for, params_for

from .config import ExportConfig
from .graphs import EncoderStep, Features, Rollout, example_inputs
from .int8 import check_budget, measure_error, parse_layers, quantize_graph
from .parity import check_parity, error_contexts


def _quiet_exporter() -> None:
    """The dynamo exporter logs torchvision and deprecation notes that say nothing about our graphs."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    for cat in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=cat, module=r"torch\..*|copyreg|onnxscript\..*")


def export_graph(module: torch.nn.Module, args: tuple, path: Path, dynamic: dict[str, dict[int, str]]) -> None:
    """torch -> ONNX with the dynamo exporter, dynamic batch dims, one file, checker + shape inference."""
    dims = {name: torch.export.Dim(name, min=1, max=1 << 16) for axes in dynamic.values() for name in axes.values()}
    names = list(module.input_names)  # type: ignore[arg-type]
    dynamic_shapes = {n: ({ax: dims[d] for ax, d in dynamic[n].items()} if n in dynamic else None) for n in names}
    module.eval()
    program = torch.onnx.export(
        module, args, dynamo=True, input_names=names, output_names=list(module.output_names),  # type: ignore[arg-type]
        dynamic_shapes=dynamic_shapes, external_data=False, optimize=True, verbose=False,
    )
    assert program is not None
    program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def git_commit() -> str | None:
    """The commit of the code that exported (provenance), or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def export_horizons(horizons: tuple[int, ...], gain: dict) -> tuple[int, ...]:
    """The horizons to export: those asked for, and the family's gain `plan_horizon` (sessions plan over it)."""
    extra = int(gain.get("plan_horizon", 0))
    return horizons if not extra or extra in horizons else (*horizons, extra)


def export_checkpoint(ckpt_path: Path, out: Path, cfg: ExportConfig, data_path: Path | None = None,
                      gain_horizon: bool = True) -> Manifest:
    """Write one artifact directory from one checkpoint; returns its manifest. `gain_horizon` False: only
    `cfg.horizons` (for sessions that run without gain adaptation, like exploration's)."""
    _quiet_exporter()
    ckpt = Checkpoint.load(ckpt_path)
    model = ckpt.model()
    if cfg.member >= 0:  # one member of an ensemble, as a plain model with the shared encoder and head
        model = model.member_model(cfg.member).eval()
        ckpt = dataclasses.replace(ckpt, **model.checkpoint())
    horizons = export_horizons(cfg.horizons, default_gain(ckpt.family_info)) if gain_horizon else cfg.horizons
    out.mkdir(parents=True, exist_ok=True)
    graphs: dict[str, GraphSpec] = {}
    int8_layers = parse_layers(cfg.int8) if cfg.int8 and not model.oracle else ()  # the oracle is for eval: fp32
    with torch.no_grad():
        ex = example_inputs(model, horizon=horizons[0])
        batch = {0: "batch"}
        jobs: list[tuple[str, torch.nn.Module, tuple, dict]] = [
            ("features", Features(model), ex["features"], {n: batch for n in Features.input_names})]
        if not model.oracle:
            jobs.insert(0, ("encoder_step", EncoderStep(model), ex["encoder_step"],
                            {n: batch for n in EncoderStep.input_names}))
        for i, H in enumerate(horizons):
            for risk in (False, True):  # the plain graph, and the variant with the risk term
                roll = Rollout(model, H, risk)
                jobs.append((("rollout_risk" if risk else "rollout") + ("" if i == 0 else f"_h{H}"), roll,
                             roll.inputs(example_inputs(model, horizon=H)["rollout"]), {"actions": {0: "samples"}}))
        for name, module, args, dyn in jobs:
            export_graph(module, args, out / f"{name}.onnx", dyn)
            graphs[name] = GraphSpec(f"{name}.onnx", tuple(module.input_names), tuple(module.output_names),  # type: ignore[arg-type]
                                     getattr(module, "horizon", None), getattr(module, "risk", False))
        if int8_layers:
            for name, g in list(graphs.items()):
                if g.horizon is not None:
                    file = f"{name}_int8.onnx"
                    quantize_graph(out / g.file, out / file, int8_layers)
                    graphs[f"{name}_int8"] = dataclasses.replace(g, file=file, precision="int8")
    params_for(model, ckpt).save(out / "params.npz")
    run_dir = ckpt_path.parent
    run_metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    if cfg.member >= 0:  # for `mbmrl bench`'s PyTorch column; not needed on device
        ckpt.save(out / "model.pt")
    else:
        shutil.copy(ckpt_path, out / "model.pt")
    base = manifest_for(model, ckpt, horizons=horizons)
    manifest = dataclasses.replace(
        base, graphs=graphs, files={**{g.file: {} for g in graphs.values()}, "params.npz": {}},
        torch_checkpoint="model.pt",
        provenance={**base.provenance, **({"member": cfg.member} if cfg.member >= 0 else {}),
                    "git_commit": git_commit(), "metrics_at_export": run_metrics.get("final", {}),
                    "train_seconds": run_metrics.get("wall_seconds")},
    ).write(out)
    manifest = dataclasses.replace(manifest, parity=check_parity(model, out, data_path, cfg.tolerance)).write(out)
    if int8_layers:
        obs, h = error_contexts(model, data_path)
        measured = measure_error(load(out), load(out, precision="int8"), obs, h)
        manifest = dataclasses.replace(manifest, int8={"layers": list(int8_layers), "per_channel": True,
                                                       "budget": cfg.int8_budget, **measured}).write(out)
        check_budget(measured, cfg.int8_budget)
    return manifest


def export_run(cfg: ExportConfig) -> Path:
    """Export RUN/model.pt to OUT, and RUN/oracle.pt (if present) to OUT/oracle."""
    run, out = Path(cfg.run), Path(cfg.out)
    if not (run / "model.pt").is_file():
        raise FileNotFoundError(f"{run}/model.pt not found: expected a run directory written by `mbmrl train`")
    data = run / "data.npz" if (run / "data.npz").is_file() else None
    export_checkpoint(run / "model.pt", out, cfg, data)
    if (run / "oracle.pt").is_file():
        export_checkpoint(run / "oracle.pt", out / "oracle", dataclasses.replace(cfg, member=-1), data)
    return out
