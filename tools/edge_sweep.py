"""Return and one-step error against FLOPs per `act`: model widths x sample counts x sampling noise colour.

    python tools/edge_sweep.py --out OUT A64 A96 A128 [--samples 64,128,256,512] [--betas 0,2]
    python tools/edge_sweep.py --out OUT --report-only   # redraw OUT's table and plot from OUT/sweep.json

Each ARTIFACT is evaluated (`mbmrl eval`'s protocol, in process, same tasks, start states and seeds for every
configuration) with every planner setting; writes OUT/sweep.json, OUT/sweep.md and OUT/return_vs_mflop.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mbmrl.export.bench_engines import act_flops
from mbmrl.runtime.loader import load
from mbmrl.train.evaluation.command import evaluate_artifact
from mbmrl.train.evaluation.protocol import EvalConfig


def main() -> None:
    """Run the sweep and write its table and plot."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifacts", nargs="*")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--samples", default="64,128,256,512")
    p.add_argument("--betas", default="0,2")
    p.add_argument("--modes", default="none,recurrent,bayes")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = json.loads((out / "sweep.json").read_text())["rows"] if (out / "sweep.json").exists() else []
    done = {(r["artifact"], r["samples"], r["beta"]) for r in rows}
    if args.report_only:
        return write_report(rows, out)
    for art in args.artifacts:
        rt = load(art)
        width = rt.manifest.provenance["train_config"]["mlp_width"]
        for n in (int(x) for x in args.samples.split(",")):
            for beta in (float(x) for x in args.betas.split(",")):
                if (art, n, beta) in done:
                    continue
                cfg = EvalConfig(artifact=art, modes=args.modes, contexts="16,50", windows=2, seeds=args.seeds,
                                 planner=f"samples={n},noise_beta={beta}", workers=args.workers, progress=False)
                res = evaluate_artifact(cfg)
                modes = [m.strip() for m in args.modes.split(",")]
                row = {"artifact": art, "family": rt.manifest.family, "width": width, "samples": n, "beta": beta,
                       "mflop": act_flops(rt, n, rt.default_planner.horizon, rt.default_planner.iterations) / 1e6,
                       "return": {m: res["control"][m]["all"]["mean"] for m in modes},
                       "nmse16": {m: res["prediction"][m]["16"]["one_step_nmse"] for m in modes},
                       "nmse50": {m: res["prediction"][m]["50"]["one_step_nmse"] for m in modes},
                       "wall_s": res["wall_seconds"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
                (out / "sweep.json").write_text(json.dumps({"rows": rows}, indent=1))
    write_report(rows, out)


def write_report(rows: list[dict], out: Path) -> None:
    """sweep.md (a table) and return_vs_mflop.png (one line per width and noise colour, per mode)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(rows[0]["return"])
    lines = ["| width | N | noise beta | MFLOP/act | " + " | ".join(f"return {m}" for m in modes) + " | "
             + " | ".join(f"NMSE@16 {m}" for m in modes) + " |", "|" + "---|" * (4 + 2 * len(modes))]
    for r in sorted(rows, key=lambda r: (r["width"], r["samples"], r["beta"])):
        lines.append(f"| {r['width']} | {r['samples']} | {r['beta']:g} | {r['mflop']:.1f} | "
                     + " | ".join(f"{r['return'][m]:.1f}" for m in modes) + " | "
                     + " | ".join(f"{r['nmse16'][m]:.4f}" for m in modes) + " |")
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), sharey=True)
    for ax, m in zip(axes, modes, strict=True):
        for (width, beta) in sorted({(r["width"], r["beta"]) for r in rows}):
            pts = sorted((r["mflop"], r["return"][m]) for r in rows if r["width"] == width and r["beta"] == beta)
            ax.plot(*zip(*pts, strict=True), marker="o", linestyle="-" if beta == 0 else "--",
                    label=f"width {width}, noise beta {beta:g}")
        ax.axvline(80, color="gray", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks([16, 32, 64, 128, 256, 512], ["16", "32", "64", "128", "256", "512"])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{rows[0]['family']}: mode {m}")
        ax.set_xlabel("MFLOP per act (dotted: 80 = 10 ms on a Pi 4 core)")
    axes[0].set_ylabel("mean MPC return (test split)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "return_vs_mflop.png", dpi=110)


if __name__ == "__main__":
    main()
