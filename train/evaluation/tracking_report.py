"""Reports of a tracking evaluation: a Neural-Fly-style markdown table and the flown paths (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Neural-Fly (O'Connell et al., Science Robotics 2022): mean figure-eight position error (cm, t > 6 s) from its
# flight logs (aerorobotics/neural-fly, data/experiment), at its wind conditions (m/s).
NEURAL_FLY_WINDS = ("0", "4.2", "8.5", "8.5+2.4sin", "12.1")
NEURAL_FLY = {
    "Neural-Fly": (2.92, 4.16, 5.47, 7.76, 8.75),
    "INDI": (6.74, 5.85, 8.10, 10.40, 9.64),
    "L1": (4.53, 5.72, 11.24, 11.56, 21.10),
    "nonlinear baseline": (10.49, 9.51, 14.13, 28.04, 21.07),
}
ADAPTIVE = ("recurrent", "gradient", "bayes")


def _physics(params: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in params.items())


def best_adaptive(row: dict) -> tuple[str, float] | None:
    """The adaptive mode with the lowest error in a row, and that error."""
    found = [(m, row["error"][m]) for m in ADAPTIVE if m in row["error"]]
    return min(found, key=lambda x: x[1]) if found else None


def tracking_tables(result: dict) -> str:
    """One table per (control task, physics): error (cm) per controller and wind, the best adaptive mode's ratios to
    `none` and the baselines, and (for the figure eight) Neural-Fly's published rows."""
    out = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in result["rows"]:
        groups.setdefault((row["task"], _physics(row["params"])), []).append(row)
    for (task, physics), rows in groups.items():
        winds = [r["wind"] for r in rows]
        out.append(f"**{result['family']} {task}** ({physics}): mean position error, cm, t > {result['settle_s']:g} s, "
                   f"{result['seeds']} starts each; wind along x, m/s\n")
        out.append("| controller | " + " | ".join(winds) + " |")
        out.append("|---" * (len(winds) + 1) + "|")
        need = ["-" if r["actuation_needed"] is None else f"{100 * r['actuation_needed']:.0f}%" for r in rows]
        out.append("| peak thrust the reference needs | " + " | ".join(need) + " |")
        for c in result["controllers"]:
            out.append(f"| {c} | " + " | ".join(_cm(r["error"][c]) for r in rows) + " |")
        best = [best_adaptive(r) for r in rows]
        if all(best):
            out.append("| best adaptive mode | " + " | ".join(b[0] for b in best if b) + " |")
            for base in ("none", "pid", "pd"):
                if base in result["controllers"]:
                    ratios = [b[1] / r["error"][base] if b and r["error"][base] > 0 else np.nan
                              for b, r in zip(best, rows, strict=True)]
                    out.append(f"| best adaptive / {base} | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |")
        if task == "figure8":
            for name, values in NEURAL_FLY.items():
                published = dict(zip(NEURAL_FLY_WINDS, values, strict=True))
                out.append(f"| *{name} (published)* | " + " | ".join(
                    f"*{published[w]:.2f}*" if w in published else "-" for w in winds) + " |")
        out.append("")
    return "\n".join(out)


def _cm(x: float) -> str:
    return "crash" if not np.isfinite(x) else f"{100 * x:.1f}"


def plot_tracking(result: dict, out: Path) -> None:
    """tracking.png: per wind, the x-z paths flown on the first physics the drone can fly (the reference needs at
    most all of its thrust in calm air) beside the reference; then error vs wind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flyable = [r for r in result["rows"] if r["actuation_needed"] is None or r["actuation_needed"] <= 1.0]
    first = (flyable or result["rows"])[0]
    rows = [r for r in result["rows"] if r["task"] == first["task"] and r["params"] == first["params"]]
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(4 * (len(rows) + 1), 4), squeeze=False)
    ref = np.asarray(result["references"][first["task"]])
    for ax, row in zip(axes[0], rows, strict=False):
        ax.plot(ref[:, 0], ref[:, 2], "k--", lw=2, label="reference")
        for c in result["controllers"]:
            path = np.asarray(row["paths"][c])
            ax.plot(path[:, 0], path[:, 2], lw=1, label=c)
        ax.set(title=f"wind {row['wind']} m/s", xlabel="x (m)", ylabel="z (m)", aspect="equal")
    axes[0][0].legend(fontsize=7)
    ax = axes[0][-1]
    errors = {c: np.array([100 * r["error"][c] for r in rows], dtype=float) for c in result["controllers"]}
    for c, e in errors.items():
        ax.plot(range(len(rows)), np.where(np.isfinite(e), e, np.nan), marker="o", label=c)  # a crash: no point
    finite = np.concatenate(list(errors.values()))
    ax.set(xticks=range(len(rows)), xticklabels=[r["wind"] for r in rows], xlabel="wind (m/s)",
           ylabel="mean position error (cm)", title=_physics(first["params"]),
           yscale="log" if (np.isfinite(finite) & (finite > 0)).any() else "linear")
    ax.legend(fontsize=7)
    fig.suptitle(f"{result['family']} {first['task']}")
    fig.tight_layout()
    fig.savefig(out / "tracking.png", dpi=110)
    plt.close(fig)
