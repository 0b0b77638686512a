"""Generate docs/results.md from `mbmrl eval` outputs: our numbers next to the published ones.

    python tools/results_doc.py --out docs/results.md EVAL_DIR [EVAL_DIR ...] [--grbal grbal.json]

Each EVAL_DIR holds an eval.json; the training budget and time are read from the evaluated
artifact's manifest (provenance), so every number here traces back to a command anyone can rerun.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mbmrl.runtime.artifact import Manifest
from mbmrl.train.config import TrainConfig
from mbmrl.train.evaluation.report import markdown_tables

# Lee et al., "Context-aware Dynamics Model for Generalization in Model-Based RL", ICML 2020, Table 1
# (average return on the *moderate* test range). Pendulum: vanilla model and +CaDM only.
CADM_TABLE1 = {
    "pendulum": {"vanilla dynamics model": -928.4, "+CaDM": -593.7},
    "cartpole_bang_bang": {"vanilla dynamics model": 124.7, "+CaDM": 154.3, "PE-TS": 171.3, "PE-TS + CaDM": 187.3},
    "halfcheetah": {"vanilla dynamics model": 1026.7, "+CaDM": 1556.1, "PE-TS": 2019.6, "PE-TS + CaDM": 7087.2},
}
# Neural-Fly (O'Connell et al., Science Robotics 2022): mean tracking error at 12.1 m/s wind,
# adaptive vs the non-adaptive nonlinear baseline (real flights; a reference point, not a re-run).
NEURAL_FLY = {"adaptive (Neural-Fly)": 0.089, "non-adaptive nonlinear baseline": 0.218}
TRACKING_LINK = ("Trajectory tracking in wind (figure eight and hover, Neural-Fly's wind conditions, beside a tuned "
                 "PID and Neural-Fly's published table): `docs/tracking.md`, from `mbmrl eval --control-tasks`.")


CADM_LINK = ("MuJoCo locomotion at CaDM's own 200k-step schedule (`mbmrl train --protocol cadm`), in the layout of "
             "CaDM's Table 1, moderate and extreme: `docs/cadm.md`, from `tools/cadm_table.py`.")


def train_command(tc: dict) -> str:
    """The `mbmrl train` command that reproduces a resolved TrainConfig (non-default flags only)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    skip = {"family", "out", "progress", "tensorboard", "log_every", "device", "threads"}
    flag = lambda k, v: (f"--{'' if v else 'no-'}{k.replace('_', '-')}" if isinstance(v, bool)  # noqa: E731
                         else f"--{k.replace('_', '-')} {v}")
    flags = [flag(k, v) for k, v in tc.items() if k not in skip and k in defaults and v != defaults[k]]
    return " ".join([f"mbmrl train --family {tc['family']}", *flags])


def budget_lines(result: dict) -> list[str]:
    """How the evaluated model was trained: the command, its budget and wall time."""
    prov = Manifest.load(result["artifact"], verify=False).provenance
    tc = prov["train_config"]
    oracle_dir = Path(result["artifact"]) / "oracle"
    oracle_note = []
    if "oracle" in result["modes"] and not tc.get("oracle", True) and (oracle_dir / "manifest.json").is_file():
        otc = Manifest.load(oracle_dir, verify=False).provenance["train_config"]
        oracle_note = [f"The oracle sub-artifact was copied from the run `{train_command(otc)}` (same data and seed).",
                       ""]
    cmd = train_command(tc)
    secs = prov.get("train_seconds")
    ev = result["config"]
    ev_cmd = (f"mbmrl eval ARTIFACT --modes {','.join(result['modes'])} --seeds {ev['seeds']}"
              + (f" --max-tasks {ev['max_tasks']}" if ev.get("max_tasks") else "")
              + (f" --episode-steps {ev['episode_steps']}" if ev.get("episode_steps") else "")
              + (f" --prediction-data {ev['prediction_data']}" if ev.get("prediction_data", "random") != "random"
                 else "")
              + ("" if ev.get("control", True) else " --no-control"))
    data = ("random-action streams" if ev.get("prediction_data", "random") == "random" else
            "transitions flown by the non-adaptive (none-mode) MPC controller, the same for every mode")
    return [
        f"Budget: `{cmd}` (+ `mbmrl export`), device `{tc['device']}`, "
        f"{f'{secs:.0f} s of training' if secs else 'training time not recorded'} "
        f"({'model + oracle' if tc.get('oracle', True) else 'model only'}, one thread); "
        f"git `{prov.get('git_commit', '?')[:7]}`.",
        f"Evaluation: `{ev_cmd}` on {len(result['tasks'])} test-range tasks, "
        f"{result['wall_seconds']:.0f} s; prediction errors on {data}.", "", *oracle_note]


def published_lines(result: dict) -> list[str]:
    """Our returns on CaDM's moderate split next to CaDM's Table 1, where the paper has the family."""
    fam = result["family"]
    if fam not in CADM_TABLE1 or "control" not in result:
        return []
    moderate = [s for s in result["control"][result["modes"][0]] if s.startswith("moderate")]
    ours = {m: sum(result["control"][m][s]["mean"] * result["control"][m][s]["n"] for s in moderate)
            / max(sum(result["control"][m][s]["n"] for s in moderate), 1) for m in result["modes"]}
    lines = [f"Next to CaDM (Lee et al., ICML 2020), Table 1, moderate test range ({', '.join(moderate)}), "
             "average return. Their numbers are copied from the paper, not re-run; their agents plan with "
             "CEM/PETS over models trained on on-policy data, ours with MPPI over a model trained on random "
             "data at the budget above:", "", "| method | moderate-range return |", "|---|---|"]
    lines += [f"| CaDM paper: {k} | {v:.1f} |" for k, v in CADM_TABLE1[fam].items()]
    lines += [f"| **mbmrl: {m}** | {v:.1f} |" for m, v in ours.items()]
    return lines + [""]


def quadrotor_lines(result: dict) -> list[str]:
    """Hover position RMSE for every test task, and the heavy-payload + wind subset."""
    if "position_rmse" not in result:
        return []
    modes = result["modes"]
    lines = ["Hover position error RMS (m) over each 10 s episode, mean over tasks × seeds:", "",
             "| mode | all test tasks | heavy payload (>= 0.5 kg) + wind | ratio to none (heavy) |",
             "|---|---|---|---|"]
    heavy = {}
    for m in modes:
        runs = [ep["position_rmse"] for t in result.get("per_task", []) if t["params"].get("payload", 0) >= 0.5
                for ep in t["control"].get(m, [])]
        heavy[m] = sum(runs) / len(runs) if runs else float("nan")
    for m in modes:
        ratio = heavy[m] / heavy["none"] if "none" in heavy else float("nan")
        lines.append(f"| {m} | {result['position_rmse'][m]['all']['mean']:.3f} | {heavy[m]:.3f} | {ratio:.2f} |")
    lines += ["", "Reference (real flights, not comparable one-to-one): Neural-Fly reports a mean tracking error of"
              f" {NEURAL_FLY['adaptive (Neural-Fly)'] * 100:.1f} cm adaptive vs "
              f"{NEURAL_FLY['non-adaptive nonlinear baseline'] * 100:.1f} cm non-adaptive at 12.1 m/s wind (~2.5x).",
              ""]
    return lines


def grbal_lines(g: dict) -> list[str]:
    """The head-only vs all-weights comparison from examples/grbal_vs_head.py."""
    lines = [f"### Head-only vs all-weights adaptation (GrBAL protocol, {g['family']})", "",
             f"`python examples/grbal_vs_head.py RUN --iters {g['iters']}`: both meta-trained from scratch on the same "
             f"data, network and budget, recurrence off; adapt on 16 transitions, score the next 16, on "
             f"{g['test_tasks']} test-range tasks (per-task NMSE).", "",
             "| inner loop | adapted weights | NMSE before | NMSE after | after, best test-tuned rate | "
             "adapt time (torch, ms) |", "|---|---|---|---|---|---|"]
    for kind, name in (("all", "all weights, 1 SGD step (GrBAL)"), ("head", "head only, 2 steps (mbmrl gradient)")):
        r = g[kind]
        best = f"{r['nmse_after_best_lr']:.4f} (rate {r['best_lr']:.3g})" if "best_lr" in r else "-"
        lines.append(f"| {name} | {r['adapted_weights']} | {r['nmse_before']:.4f} | {r['nmse_after']:.4f} | "
                     f"{best} | {r['adapt_ms_torch']:.2f} |")
    return lines + [""]


def summary_row(title: str, result: dict) -> str:
    """One line per evaluation: best adaptive mode vs none (prediction @16 and @50, return) and the oracle."""
    adaptive = [m for m in ("recurrent", "gradient", "bayes") if m in result["modes"]]
    nm = lambda m, c: (result["prediction"][m].get(str(c)) or {}).get("one_step_nmse")  # noqa: E731
    cells = []
    for c in (16, 50):
        best = min(adaptive, key=lambda m: nm(m, c) if nm(m, c) is not None else float("inf"))
        cells.append(f"{best} {nm(best, c) / nm('none', c):.2g}x" if nm("none", c) else "-")
    if "control" in result:
        ret = {m: result["control"][m]["all"]["mean"] for m in result["modes"]}
        best = max(adaptive, key=ret.get)
        cells.append(f"{ret['none']:.1f} → {best} {ret[best]:.1f}" + (f" (oracle {ret['oracle']:.1f})"
                                                                        if "oracle" in ret else ""))
    else:
        cells.append("-")
    return f"| {title} | " + " | ".join(cells) + " |"


def main() -> None:
    """Read the eval directories (and GrBAL comparisons) and write the results document."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("evals", nargs="+", help="directories written by `mbmrl eval` (each with eval.json)")
    ap.add_argument("--grbal", action="append", default=[], help="JSON written by examples/grbal_vs_head.py")
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--readme", default="", help="also put the summary table between README.md's "
                                                 "<!-- families:start --> and <!-- families:end --> markers")
    args = ap.parse_args()
    doc = ["# Results", "", "Generated by `tools/results_doc.py` from `eval.json` files; do not edit by hand. "
           "Every table below comes from `mbmrl eval` on the family's *test* range (parameters outside the "
           "training range), through the exported ONNX artifact and `mbmrl.runtime`. CPU only (no GPU was "
           "lent to these runs). Training times were measured while up to four jobs shared the 2-core machine, "
           "so they overstate a lone run's time by up to ~2x.", ""]
    sections, rows = [], []
    for d in args.evals:
        result = json.loads((Path(d) / "eval.json").read_text())
        tc = Manifest.load(result["artifact"], verify=False).provenance["train_config"]
        size = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.name in ("hidden_size", "feature_dim", "mlp_width")}
        title = result["family"] + (f", {tc['rollout_steps']}-step training loss" if tc.get("rollout_steps", 1) > 1
                                    else "") + (
            f", larger model (D={tc['feature_dim']}, width {tc['mlp_width']}, GRU {tc['hidden_size']})"
            if any(tc.get(k, v) != v for k, v in size.items()) else "") + (
            f", {tc['mpc_rounds']} MPC exploration rounds" if tc.get("mpc_rounds", 0) else "") + (
            "" if result["config"].get("prediction_data", "random") == "random"
            else f" (prediction on {result['config']['prediction_data']} flight data)")
        rows.append(summary_row(title, result))
        sections += [f"## {title}", ""] + budget_lines(result) + published_lines(result) \
            + quadrotor_lines(result) + [markdown_tables(result)]
    summary = ["Summary: best adaptive mode's one-step NMSE relative to `none` after 16 and 50 context "
               "transitions, and the MPC return (mean over test tasks × seeds) of `none` → the best adaptive mode.",
               "", "| evaluation | NMSE @16 | NMSE @50 | return |", "|---|---|---|---|", *rows, "",
               TRACKING_LINK, "", CADM_LINK, ""]
    doc += summary + sections
    for g in args.grbal:
        doc += grbal_lines(json.loads(Path(g).read_text()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(doc))
    print(f"wrote {args.out}")
    if args.readme:
        start, end = "<!-- families:start -->", "<!-- families:end -->"
        text = Path(args.readme).read_text()
        if start not in text or end not in text:
            raise SystemExit(f"{args.readme} has no {start} ... {end} markers")
        head, rest = text.split(start, 1)
        Path(args.readme).write_text(head + start + "\n" + "\n".join(summary) + rest[rest.index(end):])
        print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
