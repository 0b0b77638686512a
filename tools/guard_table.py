"""The guard's before/after table (docs/guard.md) from `mbmrl eval --guard both` outputs, one row per family and
adaptive mode: mean return guarded vs unguarded, the worst task against `none`, tasks hurt (return below
`none`'s by more than max(20, 10%)), mean one-step NMSE after 16 and 50 transitions and the worst task's
ratio to `none`'s.

Usage: python tools/guard_table.py EVAL_DIR [EVAL_DIR ...]   (each holding an eval.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _worst(summary: dict) -> str:
    if "worst_return" not in summary:
        return "-"
    return f"{summary['worst_return']:.1f} vs {summary['worst_return_none']:.1f}"


def rows(result: dict) -> list[str]:
    """Markdown rows of one eval.json: each adaptive mode, guarded then unguarded."""
    out = []
    reg, pred = result["regressions"], result["prediction"]
    n = len(result["tasks"])
    for mode in (m for m in result["modes"] if m not in ("none", "oracle") and "@" not in m):
        for label in (mode, f"{mode}@unguarded"):
            if label not in reg:
                continue
            s = reg[label]["summary"]
            nmse = " | ".join(
                f"{pred[label][c]['one_step_nmse']:.4f} ({s.get(f'worst_nmse_ratio@{c}', float('nan')):.2f}x)"
                if c in pred[label] else "-" for c in ("16", "50"))
            ret = result["control"][label]["all"]["mean"]
            out.append(f"| {result['family']} | {label} | {ret:.1f} | {_worst(s)} | {s.get('tasks_hurt', '-')}/{n} "
                       f"| {nmse} |")
    return out


def main(paths: list[str]) -> None:
    """Print the table for the eval directories in `paths`."""
    print("| family | mode | mean return | worst task: return vs none | tasks hurt | NMSE@16 (worst task / none) "
          "| NMSE@50 (worst task / none) |")
    print("|---|---|---|---|---|---|---|")
    for p in paths:
        result = json.loads((Path(p) / "eval.json").read_text())
        none = result["control"]["none"]["all"]["mean"]
        print(f"| {result['family']} | none | {none:.1f} | | | "
              + " | ".join(f"{result['prediction']['none'][c]['one_step_nmse']:.4f}"
                           if c in result["prediction"]["none"] else "-" for c in ("16", "50")) + " |")
        print("\n".join(rows(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
