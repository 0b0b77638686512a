"""What `mbmrl bench` (and `benchmarks/`) time: one control step's work on each engine, as zero-argument calls.

Every call plans with the same model weights, belief, cost, sample count and horizon: the runtime's
`Session` over ONNX Runtime, the same `Session` over the torch model (eager, and `torch.compile`d), and
pytorch_mppi's `MPPI` (what a roboticist would reach for) over the same model's one-step function.
torch is imported only by the functions that need it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from mbmrl.runtime.dynamics import CostTerms
from mbmrl.runtime.loader import load
from mbmrl.runtime.model import Runtime
from mbmrl.runtime.session import Session

PI4_GFLOPS = (8.0, 12.0)  # one Raspberry Pi 4 (Cortex-A72) core, fp32 GEMM: roughly 8-12 GFLOP/s
TRANSITION = "transition"


def timings(fn: Callable[[], object], repeats: int, warmup: int = 20) -> tuple[float, float]:
    """(p50, p99) wall time of `fn` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 10) -> float:
    """Median wall time of `fn` in milliseconds."""
    return timings(fn, repeats, warmup)[0]


def bench_inputs(rt: Runtime) -> tuple[np.ndarray, dict]:
    """A typical observation (the training mean) and a transition from it (for observe and step)."""
    obs = rt.norm.obs_mean.astype(np.float32)
    action = ((rt.action_low + rt.action_high) / 2).astype(np.float32)
    nxt = (obs + rt.norm.delta_mean).astype(np.float32)
    return obs, {"obs": obs, "action": action, "next_obs": nxt, "reward": 0.0}


def act_flops(rt: Runtime, n: int, horizon: int, iterations: int = 1) -> float:
    """Multiply-add FLOPs of one `act`: the feature MLP and head for n sequences x horizon steps, through every
    ensemble member, in each of the planner's `iterations` rollout calls."""
    w = rt.manifest.provenance["train_config"]["mlp_width"]
    depth = rt.manifest.provenance["train_config"].get("mlp_depth", 2)  # runs before --mlp-depth: 2
    o, a, d, p = rt.obs_dim, rt.action_dim, rt.feature_dim, rt.manifest.output_dim
    per = (o + a) * w + (depth - 1) * w * w + w * (d - 1) + d * p
    return 2.0 * per * n * horizon * rt.manifest.ensemble * iterations


def matmul_peak_gflops(rt: Runtime, n: int, threads: int, repeats: int = 200) -> float:
    """This CPU's fp32 GEMM rate in ONNX Runtime at the rollout's own shapes ((n, width) @ (width, width)),
    with `threads` intra-op threads: the roofline `act` is judged against."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w, chain = rt.manifest.provenance["train_config"]["mlp_width"], 16
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal((w, w)) / np.sqrt(w)).astype(np.float32), f"w{i}")
               for i in range(chain)]
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"y{i - 1}", f"w{i}"], [f"y{i}"]) for i in range(chain)]
    graph = helper.make_graph(nodes, "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, w])],
                              [helper.make_tensor_value_info(f"y{chain - 1}", TensorProto.FLOAT, [n, w])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((n, w)).astype(np.float32)
    ms = median_ms(partial(sess.run, None, {"x": x}), repeats)
    return chain * 2.0 * n * w * w / (ms * 1e-3) / 1e9


def bench_mode(rt: Runtime) -> str:
    """The mode every column times: recurrent where the artifact has it (the common deployment), else its default."""
    return "recurrent" if "recurrent" in rt.modes else rt.default_mode


def _torch_model(rt: Runtime, threads: int):
    """The torch model of the artifact's `model.pt`, torch limited to `threads` (torch imported only here)."""
    import torch
    from mbmrl.train.checkpoint import Checkpoint

    torch.set_num_threads(threads)
    assert rt.path is not None and rt.manifest.torch_checkpoint
    return Checkpoint.load(rt.path / rt.manifest.torch_checkpoint).model().eval()


def runtime_calls(artifact: str, threads: int, planner: dict, mode: str | None = None,
                  precision: str = "fp32") -> dict[str, Callable]:
    """`act`, `observe` and `step` of an ONNX Runtime `Session`, as served (the session's own work included)."""
    rt = load(artifact, threads=threads, precision=precision)
    mode = mode or bench_mode(rt)
    obs, t = bench_inputs(rt)
    sess = Session(rt, mode, planner=planner, seed=0)
    bare = Session(rt, mode, planner=planner, seed=0, guard=False)
    gain = Session(rt, mode, planner=planner, seed=0, gain=True)  # it re-estimates every 4th transition
    return {"act": partial(sess.act, obs), "observe": continuing(sess.observe, rt),
            "observe_unguarded": continuing(bare.observe, rt), "observe_gain": continuing(gain.observe, rt),
            "step": partial(sess.step, obs, t)}


def continuing(observe: Callable, rt: Runtime, n: int = 64) -> Callable[[], float]:
    """`observe` over a ring of n transitions, each starting where the last ended (as on a robot: the
    adaptation guard's open-loop tracks stay open), around the training mean."""
    rng = np.random.default_rng(0)
    states = (rt.norm.obs_mean + 0.1 * rt.norm.obs_std * rng.standard_normal((n, rt.obs_dim))).astype(np.float32)
    action = ((rt.action_low + rt.action_high) / 2).astype(np.float32)
    step = iter(range(1 << 62))

    def one() -> float:
        i = next(step) % n
        return observe(states[i], action, states[(i + 1) % n], 0.0)

    return one


def torch_act(artifact: str, threads: int, planner: dict, compiled: bool = False) -> Callable:
    """The same `Session.act` over the torch model of the artifact's `model.pt` (eager or `torch.compile`d)."""
    from mbmrl.train.torch_dynamics import TorchDynamics

    rt = load(artifact, threads=threads)
    twin = Runtime(rt.manifest, rt.params, TorchDynamics(_torch_model(rt, threads), compiled=compiled))
    sess = Session(twin, bench_mode(rt), planner=planner, seed=0)
    obs, _ = bench_inputs(rt)
    return partial(sess.act, obs)


def pytorch_mppi_act(artifact: str, threads: int, planner: dict) -> Callable | None:
    """pytorch_mppi 0.9's `MPPI.command` over the same model, belief (h0, W0), cost and N x H; None when
    pytorch_mppi is not installed (`pip install 'mbmrl[bench]'`).

    Its dynamics is the model's one-step function (`DynamicsModel.step`) on a state that carries the
    predicted reward along, so its running cost is ours: quadratic state and action terms minus the reward.
    An ensemble's state holds every member's (K x (O+1)) and the cost is the members' mean, as in our graph.
    """
    try:
        from pytorch_mppi import MPPI
    except ImportError:
        return None
    import torch

    rt = load(artifact, threads=threads)
    model = _torch_model(rt, threads)
    n, horizon = planner["samples"], planner["horizon"]
    o = rt.obs_dim
    terms = CostTerms.build(rt.default_cost, horizon, rt.feature_dim)
    target, q = torch.as_tensor(terms.target[0]), torch.as_tensor(terms.q)
    r, reward_weight, linear = torch.as_tensor(terms.r), float(terms.reward_weight[0]), torch.as_tensor(terms.linear)
    W = torch.as_tensor(rt.W0)
    members = model.args.ensemble
    with torch.no_grad():  # (1, width) per member: the belief enters once, as in our graph
        h_proj = [model.member(k).fh(torch.as_tensor(rt.h0)[None]) for k in range(members)]

    def dynamics(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:  # (N, K*(O+1)), (N, A) -> same
        out = []
        for k, x in enumerate(state.split(o + 1, dim=1)):
            nxt, _, head = model.step(x[:, :o], action, h_proj[k], W, k)
            out += [nxt, model.reward(head).reshape(-1, 1)]
        return torch.cat(out, dim=1)

    def running_cost(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:  # -> (N,)
        x = state.reshape(len(state), members, o + 1)  # (N, K, O+1)
        per_member = ((x[..., :o] - target) ** 2) @ q + x[..., :o] @ linear - reward_weight * x[..., o]  # (N, K)
        return per_member.mean(1) + (action**2) @ r

    half = torch.as_tensor((rt.action_high - rt.action_low) / 2)
    sigma = torch.diag((planner.get("noise_scale", 0.5) * half) ** 2)
    mppi = MPPI(dynamics, running_cost, members * (o + 1), noise_sigma=sigma,
                num_samples=n, horizon=horizon, lambda_=1.0, u_min=torch.as_tensor(rt.action_low),
                u_max=torch.as_tensor(rt.action_high), device="cpu")
    obs, _ = bench_inputs(rt)
    state = torch.as_tensor(np.tile(np.concatenate([obs, [0.0]]), members).astype(np.float32))

    def act() -> np.ndarray:
        with torch.no_grad():
            return mppi.command(state).numpy()

    return act


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
