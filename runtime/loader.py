"""`load(ARTIFACT)`: a verified artifact under ONNX Runtime, ready for `Session`s."""

from __future__ import annotations

from pathlib import Path

from .artifact import ArtifactError, Manifest, Params
from .guard import manifest_guard
from .model import Runtime
from .onnx_dynamics import OnnxDynamics


def load(artifact: str | Path, threads: int = 1, verify: bool = True, precision: str = "fp32") -> Runtime:
    """Read and (by default) hash-check the artifact, and open its graphs with `threads` intra-op threads;
    `precision` 'int8' plans with the artifact's quantized rollout graphs."""
    root = Path(artifact)
    manifest = Manifest.load(root, verify=verify)
    params = Params.load(root / manifest.params_file)
    m = manifest
    manifest_guard(m)  # impossible guard settings: refused here, not at the first session
    expected = {"h0": (m.hidden_size,), "W0": (m.feature_dim, m.output_dim)}
    for name, shape in expected.items():
        if getattr(params, name).shape != shape:
            raise ArtifactError(f"{root / m.params_file}: {name} has shape {getattr(params, name).shape}, the "
                                f"manifest says {shape}; re-export the run")
    return Runtime(manifest, params, OnnxDynamics(root, manifest, threads, precision), root)
