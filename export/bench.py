"""`mbmrl bench ARTIFACT`: runtime latency vs the same model and plan in PyTorch eager (DESIGN §8).

Medians of many runs after warm-up, single-threaded by default. Both columns time the same `Session`
(same planner, seed and weights): the runtime's over ONNX Runtime, the PyTorch column's over the torch
model rebuilt from the artifact's `model.pt` (`TorchDynamics`), so the only difference is the engine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from mbmrl.runtime.dynamics import CostTerms
from mbmrl.runtime.loader import load
from mbmrl.runtime.model import Runtime
from mbmrl.runtime.session import Session

from .config import BenchConfig


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 10) -> float:
    """Median wall time of `fn` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def rollout_flops(rt: Runtime, n: int, horizon: int) -> float:
    """Multiply-add FLOPs of one rollout call (feature MLP + head per sample per step)."""
    w = rt.manifest.provenance["train_config"]["mlp_width"]
    o, a, d, p = rt.obs_dim, rt.action_dim, rt.feature_dim, rt.manifest.output_dim
    per = (o + a) * w + w * w + w * (d - 1) + d * p
    return 2.0 * per * n * horizon


def matmul_gflops(threads: int) -> float:
    """This machine's measured fp32 GEMM rate with numpy (the roofline reference)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    ms = median_ms(lambda: a @ a, 30, warmup=5)
    return 2 * 512**3 / (ms * 1e-3) / 1e9


def torch_twin(rt: Runtime, threads: int) -> Runtime:
    """The same model on the torch engine, from the artifact's checkpoint (torch imported only here)."""
    import torch
    from mbmrl.train.checkpoint import Checkpoint
    from mbmrl.train.torch_dynamics import torch_runtime

    torch.set_num_threads(threads)
    assert rt.path is not None and rt.manifest.torch_checkpoint
    ckpt = Checkpoint.load(rt.path / rt.manifest.torch_checkpoint)
    return torch_runtime(ckpt.model(), ckpt)


def run_bench(cfg: BenchConfig) -> dict:
    """Measure and print the latency table."""
    rt = load(cfg.artifact, threads=cfg.threads)
    engines = {"runtime_ms": rt}
    if cfg.torch and importlib.util.find_spec("torch") is None:
        print("torch is not installed: skipping the PyTorch eager column")
    elif cfg.torch:
        engines["torch_ms"] = torch_twin(rt, cfg.threads)
    mode = "recurrent" if "recurrent" in rt.modes else rt.default_mode
    obs = rt.norm.obs_mean.copy()
    act = (rt.action_low + rt.action_high) / 2
    row: dict = {"what": "observe (1 transition)"}
    for col, engine in engines.items():
        sess = Session(engine, mode, seed=0)
        row[col] = median_ms(partial(sess.observe, obs, act, obs, 0.0), cfg.repeats)
    rows = [row]
    gemm = matmul_gflops(cfg.threads)
    rng = np.random.default_rng(0)
    for n, horizon in ((256, 15), (1024, 15), (256, 30), (1024, 30)):
        if horizon not in (rt.horizons or []):
            continue
        planner = {"samples": n, "horizon": horizon, "iterations": 1}
        row = {"what": f"act N={n} H={horizon}"}
        for col, engine in engines.items():
            sess = Session(engine, mode, planner=planner, seed=0)
            row[col] = median_ms(partial(sess.act, obs), cfg.repeats)
        acts = rng.uniform(rt.action_low, rt.action_high, (n, horizon, rt.action_dim)).astype(np.float32)
        terms = CostTerms.build(rt.default_cost, horizon, rt.feature_dim)
        roll_ms = median_ms(partial(rt.dynamics.rollout, obs, rt.h0, rt.W0, acts, terms), cfg.repeats)
        row["rollout_gflops"] = rollout_flops(rt, n, horizon) / (roll_ms * 1e-3) / 1e9
        rows.append(row)
    print(f"mbmrl bench  artifact={cfg.artifact}  threads={cfg.threads}  "
          f"numpy fp32 GEMM 512x512 {gemm:.1f} GFLOP/s (BLAS default threads)")
    print(f"{'measurement (Session)':<24}{'runtime (ORT) ms':>18}{'PyTorch eager ms':>18}{'speed-up':>10}"
          f"{'GFLOP/s':>10}")
    for r in rows:
        t = r.get("torch_ms")
        torch_col = f"{t:.3f}" if t else "-"
        speedup = f"{t / r['runtime_ms']:.2f}x" if t else "-"
        gflops = f"{r['rollout_gflops']:.2f}" if "rollout_gflops" in r else "-"
        print(f"{r['what']:<24}{r['runtime_ms']:>18.3f}{torch_col:>18}{speedup:>10}{gflops:>10}")
    result = {"threads": cfg.threads, "gemm_gflops": gemm, "rows": rows, "artifact": str(cfg.artifact)}
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(result, indent=2))
    return result
