"""`mbmrl bench ARTIFACT`: what a robot's control loop feels, beside what it would use instead (DESIGN §8).

One run measures, single-threaded by default (`--threads`): `Session.act` as served (its rollout call and
the session's own work), `observe`, and a control `step` in process, over HTTP and over the stream (p50 and
p99 after warm-up, keep-alive client, a real server on loopback); the same `act` on PyTorch eager and
`torch.compile` and pytorch_mppi's MPPI with the same model; FLOPs per act against this CPU's GEMM rate at the
rollout's shapes; and the Raspberry Pi 4 estimate from FLOPs. `--json FILE` writes `KEYS` (null where a
column could not be measured).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from mbmrl.runtime.loader import load

from .bench_engines import median_ms, timings  # noqa: F401  (median_ms: re-exported)
from .config import BenchConfig

KEYS = ("act_ms", "act_p99_ms", "act_ms_all_cores", "observe_ms", "observe_unguarded_ms", "observe_gain_ms",
        "observe_gain_p99_ms", "step_inprocess_ms", "step_inprocess_p99_ms",
        "step_http_ms", "step_http_p99_ms", "step_stream_ms", "step_stream_p99_ms", "act_torch_eager_ms",
        "act_torch_compile_ms", "act_pytorch_mppi_ms", "act_mflop", "act_gflops", "matmul_peak_gflops",
        "pi4_act_ms_estimate", "pi4_act_ms_range")


def run_bench(cfg: BenchConfig) -> dict:
    """Measure, print the table, write `--json`; returns the results (KEYS and context)."""
    from .bench_engines import (
        PI4_GFLOPS,
        act_flops,
        cpu_count,
        matmul_peak_gflops,
        pytorch_mppi_act,
        runtime_calls,
        torch_act,
    )

    rt = load(cfg.artifact, threads=cfg.threads)
    planner = {"samples": cfg.samples or rt.default_planner.samples,
               "horizon": cfg.horizon or rt.default_planner.horizon, "iterations": 1}
    n, horizon = planner["samples"], planner["horizon"]
    res: dict = dict.fromkeys(KEYS)
    rep = cfg.repeats
    calls = runtime_calls(cfg.artifact, cfg.threads, planner, precision=cfg.precision)
    res["act_ms"], res["act_p99_ms"] = timings(calls["act"], rep)
    res["observe_ms"] = timings(calls["observe"], rep)[0]
    res["observe_unguarded_ms"] = timings(calls["observe_unguarded"], rep)[0]
    res["observe_gain_ms"], res["observe_gain_p99_ms"] = timings(calls["observe_gain"], rep)
    res["step_inprocess_ms"], res["step_inprocess_p99_ms"] = timings(calls["step"], rep)
    cores = cpu_count()
    all_cores = runtime_calls(cfg.artifact, cores, planner, precision=cfg.precision)
    res["act_ms_all_cores"] = timings(all_cores["act"], rep)[0]
    if cfg.transport:
        from .bench_transport import served_steps

        with served_steps(cfg.artifact, cfg.threads, planner, precision=cfg.precision) as steps:
            res["step_http_ms"], res["step_http_p99_ms"] = timings(steps["http"], rep)
            res["step_stream_ms"], res["step_stream_p99_ms"] = timings(steps["stream"], rep)
    if cfg.torch and importlib.util.find_spec("torch") is None:
        print("torch is not installed: skipping the PyTorch columns")
    elif cfg.torch:
        res["act_torch_eager_ms"] = timings(torch_act(cfg.artifact, cfg.threads, planner), rep)[0]
        if cfg.compile:
            compiled = torch_act(cfg.artifact, cfg.threads, planner, compiled=True)
            res["act_torch_compile_ms"] = timings(compiled, rep, warmup=5)[0]  # warm-up compiles both shapes
        mppi = pytorch_mppi_act(cfg.artifact, cfg.threads, planner)
        if mppi is None:
            print("pytorch_mppi is not installed (pip install 'mbmrl[bench]'): skipping its column")
        else:
            res["act_pytorch_mppi_ms"] = timings(mppi, rep)[0]
    flops = act_flops(rt, n, horizon, int(planner.get("iterations", 1)))
    res["act_mflop"] = flops / 1e6
    res["act_gflops"] = flops / (res["act_ms"] * 1e-3) / 1e9
    res["matmul_peak_gflops"] = matmul_peak_gflops(rt, n, cfg.threads)
    res["pi4_act_ms_estimate"] = flops / (PI4_GFLOPS[0] * 1e9) * 1e3
    res["pi4_act_ms_range"] = [flops / (g * 1e9) * 1e3 for g in reversed(PI4_GFLOPS)]
    res.update(artifact=str(cfg.artifact), precision=cfg.precision, threads=cfg.threads, cpu_count=cores,
               samples=n, horizon=horizon)
    print_table(res)
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(res, indent=2))
    return res


def print_table(r: dict) -> None:
    """The human-readable report of `run_bench`'s results."""
    def ms(key: str) -> str:
        return "-" if r.get(key) is None else f"{r[key]:.3f}"

    def ratio(key: str) -> str:
        return "-" if r.get(key) is None else f"{r[key] / r['act_ms']:.2f}x slower"

    print(f"mbmrl bench  artifact={r['artifact']}  threads={r['threads']}  N={r['samples']}  H={r['horizon']}  "
          f"rollout graphs {r['precision']}")
    rows = [
        ("act (Session, ONNX Runtime)", ms("act_ms"), ms("act_p99_ms"), ""),
        (f"act, all {r['cpu_count']} cores", ms("act_ms_all_cores"), "", ""),
        ("observe (1 transition)", ms("observe_ms"), "", ""),
        ("observe without the guard", ms("observe_unguarded_ms"), "", ""),
        ("observe, gain adaptation on", ms("observe_gain_ms"), ms("observe_gain_p99_ms"), "re-estimates every 4th"),
        ("step in process", ms("step_inprocess_ms"), ms("step_inprocess_p99_ms"), ""),
        ("step over HTTP", ms("step_http_ms"), ms("step_http_p99_ms"), _overhead(r, "step_http_ms")),
        ("step over the stream", ms("step_stream_ms"), ms("step_stream_p99_ms"), _overhead(r, "step_stream_ms")),
        ("act, PyTorch eager", ms("act_torch_eager_ms"), "", ratio("act_torch_eager_ms")),
        ("act, torch.compile", ms("act_torch_compile_ms"), "", ratio("act_torch_compile_ms")),
        ("act, pytorch_mppi 0.9", ms("act_pytorch_mppi_ms"), "", ratio("act_pytorch_mppi_ms")),
    ]
    print(f"{'measurement':<30}{'p50 ms':>10}{'p99 ms':>10}   note")
    for what, p50, p99, note in rows:
        print(f"{what:<30}{p50:>10}{p99:>10}   {note}")
    lo, hi = r["pi4_act_ms_range"]
    print(f"act: {r['act_mflop']:.1f} MFLOP at {r['act_gflops']:.1f} GFLOP/s; this CPU's ORT GEMM at the rollout's "
          f"shapes {r['matmul_peak_gflops']:.1f} GFLOP/s; Raspberry Pi 4 estimate {lo:.1f}-{hi:.1f} ms "
          f"(8-12 GFLOP/s)")


def _overhead(r: dict, key: str) -> str:
    if r.get(key) is None or r.get("step_inprocess_ms") is None:
        return ""
    return f"+{r[key] - r['step_inprocess_ms']:.3f} ms over in process"
