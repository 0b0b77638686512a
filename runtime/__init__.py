"""mbmrl.runtime: load an artifact, adapt per session, plan with MPC. numpy + onnxruntime only.

Names are imported on first use, so `mbmrl.runtime.client` (stdlib + numpy) never loads ONNX Runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ActResult": "types", "ArtifactError": "artifact", "Cost": "cost", "CostTerms": "dynamics",
    "Dynamics": "dynamics", "Manifest": "artifact", "Params": "artifact", "PlannerConfig": "planner",
    "Runtime": "model", "Session": "session", "load": "loader",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mbmrl.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
