"""`mbmrl bench ARTIFACT`: runtime latency vs the same model and plan in PyTorch eager (DESIGN §8).

Medians of many runs after warm-up, single-threaded by default. The PyTorch column
rebuilds the model from the artifact's `model.pt` and runs the identical planner with a
torch objective, so the only difference is the engine.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mbmrl.runtime import Runtime
from mbmrl.runtime.planner import plan


@dataclass(frozen=True)
class BenchConfig:
    """Latency benchmark settings."""

    artifact: str = field(default="artifact", metadata={"help": "artifact directory"})
    threads: int = field(default=1, metadata={"help": "intra-op threads for both engines"})
    repeats: int = field(default=200, metadata={"help": "timed runs per measurement (median reported)"})
    json: str = field(default="", metadata={"help": "also write the results to this JSON file"})
    torch: bool = field(default=True, metadata={"help": "include the PyTorch eager column (needs torch)"})


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
    w = rt.manifest["provenance"]["train_config"]["mlp_width"]
    o, a, d, p = rt.obs_dim, rt.action_dim, rt.feature_dim, rt.output_dim
    per = (o + a) * w + w * w + w * (d - 1) + d * p
    return 2.0 * per * n * horizon


def matmul_gflops(threads: int) -> float:
    """This machine's measured fp32 GEMM rate with numpy (the roofline reference)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    ms = median_ms(lambda: a @ a, 30, warmup=5)
    return 2 * 512**3 / (ms * 1e-3) / 1e9


def torch_objective(rt: Runtime, horizon: int, threads: int):
    """The same rollout+cost in PyTorch eager, from the artifact's checkpoint."""
    import torch
    from mbmrl.export.graphs import EncoderStep, Rollout
    from mbmrl.train.model import DynamicsModel

    torch.set_num_threads(threads)
    ckpt = torch.load(rt.path / rt.manifest["torch_checkpoint"], map_location="cpu", weights_only=False)
    model = DynamicsModel.from_checkpoint(ckpt).eval()
    roll, enc = Rollout(model, horizon).eval(), EncoderStep(model).eval()
    c = rt.default_cost
    obs = torch.zeros(1, rt.obs_dim)
    h, W = torch.as_tensor(rt.h0)[None], torch.as_tensor(rt.W0)
    terms = [torch.as_tensor(c.target_for(horizon)), torch.as_tensor(c.q), torch.as_tensor(c.r),
             torch.tensor([c.terminal_weight]), torch.tensor([c.reward_weight]),
             torch.zeros(rt.feature_dim, rt.feature_dim), torch.tensor([c.uncertainty_weight])]

    def objective(actions: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return roll(obs, h, W, torch.from_numpy(actions), *terms)[0].numpy()

    def encoder_step():
        with torch.no_grad():
            return enc(h, obs, torch.zeros(1, rt.action_dim), obs, torch.zeros(1, 1))

    return objective, encoder_step


def run_bench(cfg: BenchConfig) -> dict:
    """Measure and print the latency table."""
    rt = Runtime(cfg.artifact, threads=cfg.threads)
    rng = np.random.default_rng(0)
    obs = rt.norm.obs_mean.copy()
    act = (rt.action_low + rt.action_high) / 2
    rows = []
    sess = rt.new_session("recurrent" if "recurrent" in rt.modes else rt.default_mode)
    rows.append({"what": "observe (1 transition)", "runtime_ms": median_ms(
        lambda: sess.observe(obs, act, obs, 0.0), cfg.repeats)})
    torch_ok = cfg.torch
    if torch_ok:
        try:
            import torch  # noqa: F401
        except ImportError:
            torch_ok = False
            print("torch is not installed: skipping the PyTorch eager column")
    if torch_ok:
        _, enc = torch_objective(rt, rt.horizons[0], cfg.threads)
        rows[-1]["torch_ms"] = median_ms(enc, cfg.repeats)
        rows[-1]["note"] = "torch: encoder step only"
    gemm = matmul_gflops(cfg.threads)
    for n, horizon in ((256, 15), (1024, 15), (256, 30), (1024, 30)):
        if horizon not in rt.horizons:
            continue
        pcfg = rt.default_planner.replace(samples=n, horizon=horizon, iterations=1)
        mean = np.zeros((horizon, rt.action_dim), np.float32)
        h, W, cost = rt.h0, rt.W0, rt.default_cost

        def ort_obj(actions, h=h, W=W, cost=cost):
            return rt.rollout(obs, h, W, actions, cost)[0]

        row = {"what": f"act N={n} H={horizon}",
               "runtime_ms": median_ms(lambda m=mean, c=pcfg: plan(ort_obj, m, rt.action_low, rt.action_high, c, rng),
                                       cfg.repeats)}
        acts = rng.uniform(rt.action_low, rt.action_high, (n, horizon, rt.action_dim)).astype(np.float32)
        roll_ms = median_ms(lambda acts=acts: ort_obj(acts), cfg.repeats)
        row["rollout_gflops"] = rollout_flops(rt, n, horizon) / (roll_ms * 1e-3) / 1e9
        if torch_ok:
            tobj, _ = torch_objective(rt, horizon, cfg.threads)
            row["torch_ms"] = median_ms(
                lambda f=tobj, m=mean, c=pcfg: plan(f, m, rt.action_low, rt.action_high, c, rng), cfg.repeats)
        rows.append(row)
    print(f"mbmrl bench  artifact={cfg.artifact}  threads={cfg.threads}  "
          f"numpy fp32 GEMM 512x512 {gemm:.1f} GFLOP/s (BLAS default threads)")
    print(f"{'measurement':<24}{'runtime (ORT) ms':>18}{'PyTorch eager ms':>18}{'speed-up':>10}{'GFLOP/s':>10}")
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
