"""`load(ARTIFACT)`: a verified artifact under ONNX Runtime, ready for `Session`s."""

from __future__ import annotations

from pathlib import Path

from .artifact import Manifest, Params
from .model import Runtime
from .onnx_dynamics import OnnxDynamics


def load(artifact: str | Path, threads: int = 1, verify: bool = True) -> Runtime:
    """Read and (by default) hash-check the artifact, and open its graphs with `threads` intra-op threads."""
    root = Path(artifact)
    manifest = Manifest.load(root, verify=verify)
    return Runtime(manifest, Params.load(root / manifest.params_file), OnnxDynamics(root, manifest, threads), root)
