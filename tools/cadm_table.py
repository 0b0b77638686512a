"""Our MuJoCo results in the layout of CaDM's Table 1 (Lee et al., ICML 2020), from `mbmrl eval` outputs.

One row per family and mode: mean return over the moderate and the extreme test tasks (1000-step episodes),
beside CaDM's four published moderate-range columns (copied from the paper, not re-run). Splits map as
CaDM's: halfcheetah moderate_low + moderate_high / extreme_low + extreme_high, ant moderate / extreme,
cripple_halfcheetah unseen_joint (joints 4 and 5, one at a time; CaDM's moderate setting).

Usage: python tools/cadm_table.py EVAL_DIR [EVAL_DIR ...]   (each holding an eval.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# Table 1, moderate test range: vanilla DM, +CaDM, PE-TS, PE-TS + CaDM
PUBLISHED = {
    "halfcheetah": (1026.7, 1556.1, 2019.6, 7087.2),
    "ant": (520.0, 1315.7, 1075.1, 2121.0),
    "cripple_halfcheetah": (870.0, 1375.3, 1916.5, 2618.7),
}
SPLITS = {
    "halfcheetah": {"moderate": ("moderate_low", "moderate_high"), "extreme": ("extreme_low", "extreme_high")},
    "ant": {"moderate": ("moderate",), "extreme": ("extreme",)},
    "cripple_halfcheetah": {"moderate": ("unseen_joint",), "extreme": ()},
}


def split_mean(result: dict, mode: str, splits: tuple[str, ...]) -> float | None:
    """Mean return of `mode` over every episode of the tasks in `splits` (None if none ran)."""
    returns = [ep["return"] for t in result.get("per_task", []) if t["split"] in splits
               for ep in t["control"].get(mode, [])]
    return float(np.mean(returns)) if returns else None


def rows(result: dict, label: str = "") -> list[str]:
    """Markdown rows of one eval.json: each mode's moderate and extreme means, then the published columns."""
    family = result["family"]
    published = " | ".join(f"{v:.1f}" for v in PUBLISHED.get(family, ("-",) * 4))
    out = []
    for mode in result["modes"]:
        cells = [split_mean(result, mode, SPLITS[family][k]) for k in ("moderate", "extreme")]
        text = " | ".join("-" if v is None else f"{v:.1f}" for v in cells)
        out.append(f"| {family}{label} | {mode} | {text} | {published} |")
    return out


def ensemble_label(result: dict) -> str:
    """', ensemble of K' when the evaluated artifact (its manifest, if still on disk) is an ensemble."""
    manifest = Path(str(result.get("artifact", ""))) / "manifest.json"
    k = json.loads(manifest.read_text()).get("ensemble", 1) if manifest.is_file() else 1
    return f", ensemble of {k}" if k > 1 else ""


def main(paths: list[str]) -> None:
    """Print the table for the eval directories in `paths`."""
    print("| family | ours: mode | ours, moderate | ours, extreme | CaDM: vanilla DM | +CaDM | PE-TS | PE-TS + CaDM |")
    print("|---|---|---|---|---|---|---|---|")
    for p in paths:
        result = json.loads((Path(p) / "eval.json").read_text())
        for row in rows(result, ensemble_label(result)):
            print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
