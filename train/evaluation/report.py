"""Reports of an evaluation: plots (PNG) and README-ready markdown tables, from eval.json's content."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(result: dict, out: Path) -> None:
    """adaptation_curve.png (error vs m, log-x, oracle dashed) and returns.png (mean ± std per mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ctx = result["contexts"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "one_step_nmse", "one-step"),
                           (axes[1], "h_step_nmse", f"{result['horizon']}-step open-loop")):
        for m in result["modes"]:
            y = [result["prediction"][m][str(c)][key] or np.nan for c in ctx]
            ax.plot([max(c, 0.5) for c in ctx], y, marker="o", label=m, linestyle="--" if m == "oracle" else "-")
        ax.set(xscale="log", yscale="log", xlabel="context transitions m (0 plotted at 0.5)",
               ylabel="NMSE of delta (per-task normalized)",
               title=f"{result['family']} {result.get('split', 'test')}: {title} error")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "adaptation_curve.png", dpi=120)
    plt.close(fig)
    if "control" in result:
        fig, ax = plt.subplots(figsize=(6, 4))
        modes = result["modes"]
        splits = [s for s in result["control"][modes[0]] if s != "all"]
        width = 0.8 / max(len(splits), 1)
        for i, s in enumerate(splits):
            mean = [result["control"][m][s]["mean"] for m in modes]
            std = [result["control"][m][s]["std"] for m in modes]
            ax.bar(np.arange(len(modes)) + i * width, mean, width, yerr=std, label=s, capsize=3)
        ax.set_xticks(np.arange(len(modes)) + width * (len(splits) - 1) / 2, modes)
        ax.set(ylabel="MPC episode return (mean ± std)", title=f"{result['family']}: control on test tasks")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "returns.png", dpi=120)
        plt.close(fig)


def markdown_tables(result: dict) -> str:
    """README-ready tables generated from eval.json."""
    modes, ctx = result["modes"], result["contexts"]
    lines = []
    for key, what in (("one_step_nmse", "NMSE: squared error / variance of the task's own deltas"),
                      ("one_step", "MSE in model units: squared error / training delta variance")):
        lines += [f"One-step prediction error after m transitions ({what}) — {result['family']}, "
                  f"split `{result['split']}`:", "", "| mode | " + " | ".join(f"m={c}" for c in ctx) + " |",
                  "|---|" + "---|" * len(ctx)]
        for m in modes:
            vals = [result["prediction"][m][str(c)][key] for c in ctx]
            lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in vals) + " |")
        lines.append("")
    if result.get("bayes_coverage95"):
        cov = result["bayes_coverage95"]
        lines += ["`bayes` calibration: fraction of true one-step deltas inside the 95% predictive interval: "
                  + ", ".join(f"m={c}: {cov[str(c)]:.3f}" for c in ctx if cov[str(c)] is not None), ""]
    if "control" in result:
        splits = [s for s in result["control"][modes[0]] if s != "all"]
        lines += ["MPC episode return (mean ± std over tasks × seeds):", "",
                  "| mode | all | " + " | ".join(splits) + " |", "|---|---|" + "---|" * len(splits)]
        for m in modes:
            c = result["control"][m]
            lines.append(f"| {m} | {c['all']['mean']:.1f} ± {c['all']['std']:.1f} | "
                         + " | ".join(f"{c[s]['mean']:.1f} ± {c[s]['std']:.1f}" for s in splits) + " |")
    if result.get("regressions"):
        lines += ["", regression_table(result)]
    return "\n".join(lines) + "\n"


def regression_table(result: dict) -> str:
    """Adaptation against `none`, task by task: the worst task and how many tasks it made worse."""
    reg = result["regressions"]
    ctx = [c for c in (16, 50) if any(f"worst_nmse_ratio@{c}" in r["summary"] for r in reg.values())]
    lines = ["Adaptation vs `none` on each task (same starts and seeds): worst task's return change, tasks where "
             "the mode's return is below `none`'s by more than max(20, 10%), worst one-step NMSE ratio:", "",
             "| mode | mean return | worst task: return vs none | tasks hurt | "
             + " | ".join(f"worst NMSE ratio @{c}" for c in ctx) + " |", "|---|---|---|---|" + "---|" * len(ctx)]
    for mode, r in reg.items():
        s = r["summary"]
        worst = (f"{s['worst_return']:.1f} vs {s['worst_return_none']:.1f} ({_task(s['worst_task'])})"
                 if "worst_return" in s else "-")
        hurt = f"{s['tasks_hurt']}/{s['tasks']}" if "tasks_hurt" in s else "-"
        ret = f"{result['control'][mode]['all']['mean']:.1f}" if "control" in result else "-"
        lines.append(f"| {mode} | {ret} | {worst} | {hurt} | "
                     + " | ".join(f"{s[f'worst_nmse_ratio@{c}']:.2f}" if f"worst_nmse_ratio@{c}" in s else "-"
                                  for c in ctx) + " |")
    return "\n".join(lines)


def _task(params: dict) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float | int) else f"{k} {v}" for k, v in params.items())
