"""mbmrl.runtime: load an artifact, adapt per session, plan with MPC. numpy + onnxruntime only."""

from .cost import Cost
from .manifest import ArtifactError, load_manifest
from .model import Runtime
from .planner import PlannerConfig
from .session import ActResult, Session

__all__ = ["ActResult", "ArtifactError", "Cost", "PlannerConfig", "Runtime", "Session", "load_manifest"]
