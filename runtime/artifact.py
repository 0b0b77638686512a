"""The artifact contract (DESIGN §4) as typed records: `Manifest` (manifest.json) and `Params` (params.npz).

An artifact is a directory holding `manifest.json`, ONNX graphs and `params.npz`. The manifest records
the sha256 of every file; `Manifest.load` refuses an artifact whose files do not match. Every value is
stored once: settings (scalars) in the manifest, learned arrays in `params.npz`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .normalization import Normalization

FORMAT = "mbmrl-artifact"
FORMAT_VERSION = 3  # 3: rollout graphs take the linear state term; 2 (without it) still loads
READ_VERSIONS = (2, 3)
DIGEST = "manifest.sha256"  # sha256 of manifest.json's bytes: the manifest is covered as a whole
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
class ModeSpec:
    """Run-time settings of one adaptation mode (learned arrays such as step sizes live in `Params`)."""

    steps: int | None = None
    """gradient: inner gradient steps on the head."""
    window: int | None = None
    """gradient, bayes: the most recent transitions the head adapts on (training samples contexts <= window)."""
    noise_prior: float | None = None
    """bayes: prior weight a0 of the online noise scale (0: noise variance known)."""

    def to_dict(self) -> dict:
        """The settings that are set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph: its file, input and output names, and (rollouts) its fixed horizon and risk flag."""

    file: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    horizon: int | None = None
    risk: bool = False
    """rollouts: this graph adds the risk term (takes w_cov, uncertainty_weight); run only when it is on."""
    precision: str = "fp32"
    """rollouts: 'fp32', or 'int8' (quantized layers, `manifest.int8` says which and what error they add)."""


@dataclass(frozen=True)
class OracleSpec:
    """Oracle models: h is the true task parameters, normalized."""

    param_names: tuple[str, ...]
    param_mean: tuple[float, ...]
    param_std: tuple[float, ...]

    def belief(self, task_params: dict | None) -> np.ndarray:
        """Normalized parameters as the belief h (hidden,); a ValueError names what is missing."""
        names = list(self.param_names)
        if not task_params or set(task_params) != set(names):
            raise ValueError(f"mode 'oracle' needs task_params with exactly {names}")
        p = np.array([float(task_params[n]) for n in names], dtype=np.float32)
        if not np.isfinite(p).all():
            raise ValueError("task_params must be finite")
        return ((p - np.asarray(self.param_mean)) / np.asarray(self.param_std)).astype(np.float32)


@dataclass(frozen=True)
class Manifest:
    """manifest.json: everything a runtime needs to know about an artifact besides the arrays."""

    family: str
    obs_dim: int
    action_dim: int
    hidden_size: int
    feature_dim: int
    output_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    normalization: Normalization
    modes: dict[str, ModeSpec]
    default_mode: str
    default_cost: dict
    default_planner: dict
    obs_names: tuple[str, ...] = ()
    action_names: tuple[str, ...] = ()
    description: str = ""
    gaussian_head: bool = False
    ensemble: int = 1
    """Feature-MLP members inside the rollout graphs (their mean cost plans); `features` is the members' mean."""
    oracle: OracleSpec | None = None
    graphs: dict[str, GraphSpec] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    params_file: str = "params.npz"
    torch_checkpoint: str | None = None
    provenance: dict = field(default_factory=dict)
    parity: dict | None = None
    int8: dict | None = None
    """When int8 rollout graphs were exported: their layers, budget and measured error (`mbmrl.export.int8`)."""
    reference: dict | None = None
    """Which obs entries a reference trajectory feeds, and the control period (`mbmrl.runtime.reference`);
    None when the family declares none (sessions then refuse references)."""
    periodic_obs: dict[int, float] = field(default_factory=dict)
    """Observation dims the system wraps (dim -> period, e.g. the half-cheetah's pitch in a 2pi window): a session
    takes a transition's change on them modulo the period (`validation.continuous`), as training did."""
    default_guard: dict = field(default_factory=dict)
    """The adaptation guard's settings for this model's sessions (`GuardConfig` fields; empty: the runtime's
    defaults): a family whose adapted models must be clearly better before they plan says so here."""
    default_gain: dict = field(default_factory=dict)
    """Actuator-gain adaptation for this model's sessions (`GainConfig` fields; empty: off by default), for a family
    whose test robots are heavier than its training ones (`mbmrl.runtime.gain`)."""

    @property
    def horizons(self) -> list[int]:
        """Exported rollout horizons."""
        return sorted({int(g.horizon) for g in self.graphs.values() if g.horizon is not None})

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """The manifest.json object."""
        d: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "normalization":
                v = v.to_dict()
            elif f.name == "modes":
                v = {k: s.to_dict() for k, s in v.items()}
            elif f.name == "graphs":
                v = {k: {kk: vv for kk, vv in dataclasses.asdict(g).items()
                         if vv is not None and vv is not False and not (kk == "precision" and vv == "fp32")}
                     for k, g in v.items()}
            elif dataclasses.is_dataclass(v):
                v = dataclasses.asdict(v)  # type: ignore[arg-type]
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "manifest") -> Manifest:
        """Parse manifest.json; an older or foreign format is refused with what to do."""
        if d.get("format") != FORMAT:
            raise ArtifactError(f"{where}: format is {d.get('format')!r}, expected {FORMAT!r}")
        if d.get("format_version") not in READ_VERSIONS:
            raise ArtifactError(
                f"{where}: format_version {d.get('format_version')} is not supported (this runtime reads versions "
                f"{list(READ_VERSIONS)}); re-export the run with this mbmrl: `mbmrl export RUN --out ARTIFACT`")
        try:
            kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
            kw["normalization"] = Normalization.from_dict(d["normalization"])
            kw["modes"] = {k: ModeSpec(**v) for k, v in d["modes"].items()}
            kw["graphs"] = {k: GraphSpec(g["file"], tuple(g["inputs"]), tuple(g["outputs"]), g.get("horizon"),
                                      bool(g.get("risk", False)), str(g.get("precision", "fp32")))
                            for k, g in d.get("graphs", {}).items()}
            if d.get("oracle"):
                o = d["oracle"]
                kw["oracle"] = OracleSpec(tuple(o["param_names"]), tuple(o["param_mean"]), tuple(o["param_std"]))
            for name in ("action_low", "action_high", "obs_names", "action_names"):
                if name in kw:
                    kw[name] = tuple(kw[name])
            kw["periodic_obs"] = {int(k): float(v) for k, v in kw.get("periodic_obs", {}).items()}  # JSON keys: str
            manifest = cls(**kw)
        except (KeyError, TypeError) as e:
            raise ArtifactError(f"{where}: malformed manifest ({e!r}); re-export the run with `mbmrl export`") from e
        unknown = set(manifest.modes) - set(MODES)
        if unknown:
            raise ArtifactError(f"{where}: unknown adaptation modes {sorted(unknown)}; known: {list(MODES)}")
        manifest.check(where)
        return manifest

    def check(self, where: str = "manifest") -> None:
        """An ArtifactError for values no trained model has: bad dims, bounds, statistics or default mode."""
        low, high = np.asarray(self.action_low, np.float64), np.asarray(self.action_high, np.float64)
        n = self.normalization
        problems = [
            (min(self.obs_dim, self.action_dim, self.feature_dim, self.output_dim) < 1, "dimensions must be >= 1"),
            (low.shape != (self.action_dim,) or high.shape != (self.action_dim,), "action bounds need action_dim"),
            (not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()),
             "action bounds must be finite with action_low < action_high"),
            (not all(np.isfinite(v).all() for v in (n.obs_mean, n.obs_std, n.delta_mean, n.delta_std)),
             "normalization statistics must be finite"),
            (not ((n.obs_std > 0).all() and (n.delta_std > 0).all() and n.reward_std > 0),
             "normalization std must be > 0"),
            (self.default_mode not in self.modes, f"default_mode {self.default_mode!r} is not one of its modes"),
            (not all(0 <= d < self.obs_dim and np.isfinite(p) and p > 0 for d, p in self.periodic_obs.items()),
             "periodic_obs needs obs dims in [0, obs_dim) with finite periods > 0"),
        ]
        for bad, what in problems:
            if bad:
                raise ArtifactError(f"{where}: {what}; re-export the run")

    # ------------------------------------------------------------------ files
    @classmethod
    def load(cls, artifact: str | Path, verify: bool = True) -> Manifest:
        """Read `manifest.json` and (by default) check every listed file's sha256."""
        root = Path(artifact)
        path = root / "manifest.json"
        if not path.is_file():
            raise ArtifactError(f"{root} is not an mbmrl artifact: no manifest.json (create one with `mbmrl export`)")
        if verify:
            digest = root / DIGEST
            if not digest.is_file():
                raise ArtifactError(f"{root}: no {DIGEST}, so manifest.json cannot be verified; re-export the run")
            if digest.read_text().strip() != sha256_file(path):
                raise ArtifactError(f"{path} was modified or corrupted (its sha256 differs from {DIGEST}); "
                                    "re-export the run")
        try:
            manifest = cls.from_dict(json.loads(path.read_text()), where=str(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{path} is not valid JSON: {e}") from e
        if verify:
            if not manifest.files:
                raise ArtifactError(f"{path} lists no files to verify; re-export the run")
            for name, entry in manifest.files.items():
                file = root / name
                if not file.is_file():
                    raise ArtifactError(f"artifact file {file} listed in the manifest is missing")
                actual = sha256_file(file)
                if actual != entry["sha256"]:
                    raise ArtifactError(
                        f"sha256 mismatch for {file}: manifest says {entry['sha256'][:12]}…, file is "
                        f"{actual[:12]}…. The artifact was modified or corrupted; re-export it.")
        return manifest

    def write(self, artifact: str | Path) -> Manifest:
        """Hash every file in `files`, write `manifest.json`; returns the manifest with the hashes."""
        root = Path(artifact)
        files = {name: {"sha256": sha256_file(root / name), "bytes": (root / name).stat().st_size}
                 for name in self.files}
        written = dataclasses.replace(self, files=files)
        (root / "manifest.json").write_text(json.dumps(written.to_dict(), indent=2))
        (root / DIGEST).write_text(sha256_file(root / "manifest.json") + "\n")
        return written


@dataclass(frozen=True)
class Params:
    """params.npz: the learned arrays the runtime adapts from (prior belief, prior head, mode parameters)."""

    h0: np.ndarray  # (hidden,)
    W0: np.ndarray  # (D, P)
    step_size: np.ndarray | None = None  # (P,) gradient mode's meta-learned inner step size
    P0: np.ndarray | None = None  # (D, D) bayes prior covariance factor Lambda0^-1
    noise_var: np.ndarray | None = None  # (P,) bayes noise variance (normalized units)
    V: np.ndarray | None = None  # (D, P) Gaussian head: log-variance = clip(phi @ V, -12, 6)

    @classmethod
    def load(cls, path: str | Path) -> Params:
        """Read params.npz (float32)."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k].astype(np.float32) for k in npz.files}
        except (OSError, ValueError, EOFError) as e:
            raise ArtifactError(f"{path} is not a readable npz ({type(e).__name__}: {e}); re-export the run") from e
        unknown = set(arrays) - names
        if unknown or not {"h0", "W0"} <= set(arrays):
            raise ArtifactError(f"{path}: arrays {sorted(arrays)} are not an mbmrl params file; re-export the run")
        if not all(np.isfinite(v).all() for v in arrays.values()):
            raise ArtifactError(f"{path}: non-finite learned parameters; re-export the run")
        return cls(**arrays)

    def save(self, path: str | Path) -> None:
        """Write params.npz (the arrays that are set)."""
        np.savez(path, **{k: v for k, v in dataclasses.asdict(self).items() if v is not None})
