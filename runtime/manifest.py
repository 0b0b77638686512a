"""The artifact contract (DESIGN §4): manifest schema, hashing and verification.

An artifact is a directory holding `manifest.json`, ONNX graphs and `params.npz`
(`h0`, `W0`, and any mode parameters). The manifest records the sha256 of every
file; `load_manifest` refuses an artifact whose files do not match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "mbmrl-artifact"
FORMAT_VERSION = 1
MODES = ("none", "recurrent", "gradient", "bayes", "oracle")


class ArtifactError(ValueError):
    """The artifact is missing, malformed, or does not match its manifest."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Normalization:
    """Statistics that map raw units to the model's normalized units (travel with the model)."""

    obs_mean: np.ndarray  # (obs_dim,)
    obs_std: np.ndarray  # (obs_dim,)
    delta_mean: np.ndarray  # (obs_dim,)
    delta_std: np.ndarray  # (obs_dim,)
    reward_mean: float
    reward_std: float

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        arr = lambda k: np.asarray(d[k], dtype=np.float32)  # noqa: E731
        return cls(arr("obs_mean"), arr("obs_std"), arr("delta_mean"), arr("delta_std"),
                   float(d["reward_mean"]), float(d["reward_std"]))

    def normalize_target(self, delta: np.ndarray, reward: np.ndarray) -> np.ndarray:
        """(B, obs_dim), (B,) raw -> (B, obs_dim + 1) normalized head targets."""
        d = (delta - self.delta_mean) / self.delta_std
        r = (reward - self.reward_mean) / self.reward_std
        return np.concatenate([d, r[:, None]], axis=1).astype(np.float32)


def load_manifest(artifact: str | Path, verify: bool = True) -> dict:
    """Read `manifest.json` and (by default) check every listed file's sha256."""
    root = Path(artifact)
    path = root / "manifest.json"
    if not path.is_file():
        raise ArtifactError(f"{root} is not an mbmrl artifact: no manifest.json (create one with `mbmrl export`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path} is not valid JSON: {e}") from e
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: format_version {manifest.get('format_version')} is not supported "
            f"(this runtime reads version {FORMAT_VERSION}); re-export with a matching mbmrl"
        )
    if verify:
        for name, entry in manifest["files"].items():
            file = root / name
            if not file.is_file():
                raise ArtifactError(f"artifact file {file} listed in the manifest is missing")
            actual = sha256_file(file)
            if actual != entry["sha256"]:
                raise ArtifactError(
                    f"sha256 mismatch for {file}: manifest says {entry['sha256'][:12]}…, file is "
                    f"{actual[:12]}…. The artifact was modified or corrupted; re-export it."
                )
    return manifest


def write_manifest(artifact: str | Path, manifest: dict) -> Path:
    """Hash every file in `manifest['files']` and write `manifest.json`."""
    root = Path(artifact)
    for name in manifest["files"]:
        manifest["files"][name]["sha256"] = sha256_file(root / name)
        manifest["files"][name]["bytes"] = (root / name).stat().st_size
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path
