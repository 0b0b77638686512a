"""ARM parity: does `mbmrl.runtime` compute the same numbers on aarch64 as on x86?

What: `record` runs an artifact through the runtime on fixed, seeded inputs and saves inputs and
outputs to an .npz; `check` loads that file on another machine, recomputes everything from the
stored inputs and prints the max abs difference per quantity, with the platform and versions.
Covered: `encoder_step` and `features` on a batch of 8, `rollout` costs/states for 64 action
sequences at the artifact's first horizon, and per adaptation mode the artifact offers
(`rt.modes`): a session (seed 0) that observes 20 fixed transitions (surprises, final h/W/P),
predicts 10 steps open-loop, and calls `act` 5 times from fixed observations.

Why: the runtime is meant to run on a Raspberry Pi 4 / Jetson (linux/aarch64) with the same model
exported on x86. ONNX Runtime picks different kernels (NEON vs AVX) per CPU, so outputs differ in
the last bits; this script shows by how much. Graph outputs and adaptation state must agree to
1e-4 (|diff| / max(1, |ref|)). MPC actions come from sampling + exponential weighting, which can
amplify last-bit differences, so only the first `act` call is held to 1e-3; later calls are
reported, not judged. The sampling noise itself (numpy's PCG64) must be bit-identical.

How:
    # x86 reference, in the project venv
    python examples/arm_parity.py record /tmp/a3 /tmp/a3-x86.npz
    # on the aarch64 machine (or under qemu user-mode, see docs/arm.md); mbmrl need not be installed
    python3 examples/arm_parity.py check /tmp/a3 /tmp/a3-x86.npz [--server] [--responses out.json]

`check` exits 1 if any judged quantity is out of tolerance (or the artifact differs from the one
recorded), else 0. `--server` also serves the artifact with uvicorn on 127.0.0.1 (a free port),
drives GET /healthz, POST /v1/sessions, /observe and /act over HTTP with the same inputs, and
compares the answers with the recorded session of the same mode ('recurrent', else the default).
It is skipped with a note when `mbmrl.runtime.server`, fastapi or uvicorn is not installed/present;
a server that is present but fails to import, start or answer is a failed check.

Imports: numpy, onnxruntime and `mbmrl.runtime` only (plus the standard library; `--server` adds
uvicorn and `mbmrl.runtime.server`). When `mbmrl` is not installed, `mbmrl.runtime` is loaded
straight from this repository's `runtime/` directory, without the CLI package or torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import platform
import sys
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]

N_BATCH = 8  # encoder_step / features batch
N_SEQ = 64  # action sequences for the rollout graph
N_OBSERVE = 20  # transitions folded per session
N_ACT = 5  # act calls per session
N_PREDICT = 10  # open-loop prediction steps
SEED = 0

GRAPH_TOL = 1e-4  # graph outputs and adaptation state, on |diff| / max(1, |ref|)
ACT_TOL = 1e-3  # the first act call of each session


def import_runtime() -> types.ModuleType:
    """`mbmrl.runtime`, installed or not.

    Without an installed `mbmrl`, register an empty `mbmrl` namespace package and load `mbmrl.runtime`
    from `REPO/runtime`.
    Its relative imports (`.model`, `.session`, later `.server`) then resolve inside that directory.
    """
    try:
        import mbmrl.runtime as runtime

        return runtime
    except ModuleNotFoundError as e:
        if e.name not in ("mbmrl", "mbmrl.runtime"):
            raise
    pkg = types.ModuleType("mbmrl")
    pkg.__path__ = []  # a package with no directory of its own: only what we register below
    sys.modules["mbmrl"] = pkg
    src = REPO / "runtime"
    spec = importlib.util.spec_from_file_location(
        "mbmrl.runtime", src / "__init__.py", submodule_search_locations=[str(src)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mbmrl.runtime"] = module
    spec.loader.exec_module(module)
    pkg.runtime = module  # type: ignore[attr-defined]
    return module


runtime = import_runtime()


# ------------------------------------------------------------------------------------------ inputs
def make_inputs(rt, seed: int = SEED) -> dict[str, np.ndarray]:
    """Fixed inputs shaped and scaled by the artifact's own dims, bounds and normalization."""
    rng = np.random.default_rng(seed)
    n = rt.norm
    lo, hi = rt.action_low, rt.action_high
    f32 = np.float32

    def obs(*lead):
        return (n.obs_mean + n.obs_std * rng.standard_normal((*lead, rt.obs_dim))).astype(f32)

    def act(*lead):
        return (lo + (hi - lo) * rng.random((*lead, rt.action_dim))).astype(f32)

    def step(o):  # a plausible next observation: obs + a typical delta
        return (o + n.delta_mean + n.delta_std * rng.standard_normal(o.shape)).astype(f32)

    def reward(k):
        return (n.reward_mean + n.reward_std * rng.standard_normal(k)).astype(f32)

    def hidden(k):
        return (rt.h0 + 0.3 * rng.standard_normal((k, rt.manifest.hidden_size))).astype(f32)

    x = {}
    x["enc/h"], x["enc/obs"], x["enc/action"] = hidden(N_BATCH), obs(N_BATCH), act(N_BATCH)
    x["enc/next_obs"], x["enc/reward"] = step(x["enc/obs"]), reward(N_BATCH)[:, None]
    x["feat/obs"], x["feat/action"], x["feat/h"] = obs(N_BATCH), act(N_BATCH), hidden(N_BATCH)
    x["roll/obs"], x["roll/actions"] = obs(), act(N_SEQ, rt.horizons[0])
    x["sess/obs"], x["sess/action"] = obs(N_OBSERVE), act(N_OBSERVE)
    x["sess/next_obs"], x["sess/reward"] = step(x["sess/obs"]), reward(N_OBSERVE)
    x["sess/act_obs"], x["sess/predict_actions"] = obs(N_ACT), act(N_PREDICT)
    return x


def transitions(x: dict[str, np.ndarray]):
    """The session's fixed transitions as (obs, action, next_obs, reward) tuples."""
    return zip(x["sess/obs"], x["sess/action"], x["sess/next_obs"], x["sess/reward"], strict=True)


def task_params_for(rt) -> dict | None:
    """Oracle mode's task parameters: half a std above the mean of each (None without an oracle)."""
    spec = rt.manifest.oracle
    if spec is None:
        return None
    stats = zip(spec.param_names, spec.param_mean, spec.param_std, strict=True)
    return {k: float(m + 0.5 * s) for k, m, s in stats}


# ------------------------------------------------------------------------------------------ compute
def compute(rt, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every recorded quantity, from the inputs `x`. Keys: '<kind>:<name>' with kind exact|graph|act1|info."""
    out: dict[str, np.ndarray] = {}
    planner = rt.default_planner
    # The MPC sampling noise a seed-0 session draws first: proves numpy's RNG streams match.
    out["exact:rng/mpc_noise"] = np.random.default_rng(SEED).standard_normal(
        (planner.samples, planner.horizon, rt.action_dim), dtype=np.float32
    )
    dyn = rt.dynamics
    if "encoder_step" in rt.manifest.graphs:
        out["graph:encoder_step"] = dyn.encoder_step(
            x["enc/h"], x["enc/obs"], x["enc/action"], x["enc/next_obs"], x["enc/reward"]
        )
    out["graph:features"] = dyn.features(x["feat/obs"], x["feat/action"], x["feat/h"])
    terms = runtime.CostTerms.build(rt.default_cost, rt.horizons[0], rt.feature_dim)
    costs, states = dyn.rollout(x["roll/obs"], rt.h0, rt.W0, x["roll/actions"], terms)
    out["graph:rollout/costs"], out["graph:rollout/states"] = costs, states

    for mode in sorted(rt.modes):
        s = runtime.Session(rt, mode, seed=SEED, task_params=task_params_for(rt))
        surprise = [s.observe(o, a, no, float(r)) for o, a, no, r in transitions(x)]
        out[f"graph:{mode}/surprise"] = np.array(surprise)
        out[f"graph:{mode}/h"], out[f"graph:{mode}/W"] = np.array(s.h), np.array(s.W)
        for name, value in dataclasses.asdict(s.state).items():  # the mode's head state (window, posterior)
            out[f"graph:{mode}/state.{name}"] = np.asarray(value)
        for name, value in runtime.gain.gain_arrays(s.gain).items():  # gain adaptation (the manifest's default_gain)
            out[f"graph:{mode}/{name}"] = np.asarray(value)
        pred, var = s.predict(x["sess/act_obs"][0], x["sess/predict_actions"])
        out[f"graph:{mode}/predict_obs"] = pred
        if var is not None:
            out[f"graph:{mode}/predict_var"] = var
        acts = [s.act(o) for o in x["sess/act_obs"]]
        a0 = acts[0]
        out[f"act1:{mode}/act[0]/action"], out[f"act1:{mode}/act[0]/plan"] = a0.action, a0.plan
        out[f"act1:{mode}/act[0]/predicted_obs"] = a0.predicted_obs
        out[f"act1:{mode}/act[0]/expected_cost"] = np.array(a0.expected_cost)
        out[f"info:{mode}/act[1:]/action"] = np.stack([r.action for r in acts[1:]])
        out[f"info:{mode}/act[1:]/expected_cost"] = np.array([r.expected_cost for r in acts[1:]])
    return out


# ------------------------------------------------------------------------------------------ report
def platform_info() -> dict:
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "runtime_src": str(Path(runtime.__file__).resolve().parent),
    }


def manifest_sha(artifact: str) -> str:
    return hashlib.sha256((Path(artifact) / "manifest.json").read_bytes()).hexdigest()


def diff(ref: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """(max |new - ref|, max |new - ref| / max(1, |ref|)); equal non-finite entries count as 0."""
    ref, new = np.asarray(ref, dtype=np.float64), np.asarray(new, dtype=np.float64)
    if ref.shape != new.shape:
        return float("inf"), float("inf")
    if ref.size == 0:
        return 0.0, 0.0
    same = (ref == new) | (np.isnan(ref) & np.isnan(new))
    d = np.where(same, 0.0, np.abs(new - ref))
    d = np.where(np.isnan(d), np.inf, d)
    return float(d.max()), float((d / np.maximum(1.0, np.abs(np.nan_to_num(ref)))).max())


TOL = {"exact": 0.0, "graph": GRAPH_TOL, "act1": ACT_TOL, "info": None}


def compare(ref: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> list[tuple]:
    """One row per quantity: (name, shape, max_abs, scaled, tol, status)."""
    rows = []
    for key in [*ref, *(k for k in new if k not in ref)]:  # the order `compute` produced them in
        kind, name = key.split(":", 1)
        tol = TOL[kind]
        if key not in ref or key not in new:
            rows.append((name, "-", float("inf"), float("inf"), tol, "MISSING"))
            continue
        max_abs, scaled = diff(ref[key], new[key])
        status = "info" if tol is None else ("ok" if scaled <= tol else "FAIL")
        rows.append((name, "x".join(map(str, np.shape(ref[key]))) or "()", max_abs, scaled, tol, status))
    return rows


def print_table(rows: list[tuple]) -> None:
    w = max(len(r[0]) for r in rows)
    print(f"{'quantity':<{w}}  {'shape':>9}  {'max_abs_diff':>12}  {'scaled':>9}  {'tol':>7}  status")
    for name, shape, max_abs, scaled, tol, status in rows:
        t = "-" if tol is None else f"{tol:.0e}" if tol else "0"
        print(f"{name:<{w}}  {shape:>9}  {max_abs:12.3e}  {scaled:9.2e}  {t:>7}  {status}")


def split_npz(path: str) -> tuple[dict, dict, dict]:
    """(meta, inputs, outputs) from a file written by `record`."""
    with np.load(path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    meta = json.loads(str(data.pop("__meta__")))
    inputs = {k[3:]: v for k, v in data.items() if k.startswith("in/")}
    outputs = {k[4:]: v for k, v in data.items() if k.startswith("out/")}
    return meta, inputs, outputs


# ------------------------------------------------------------------------------------------ server
def server_check(rt, x: dict[str, np.ndarray], ref: dict[str, np.ndarray],
                 responses_path: str | None) -> list[tuple] | None:
    """Serve the artifact with uvicorn and drive a session over HTTP; rows vs the reference.

    The session is 'recurrent' when the artifact offers it, else the artifact's default mode.

    Returns None (after printing why) when the server or its dependencies are not there.
    """
    import socket
    import threading
    import time
    import urllib.request

    try:
        import uvicorn
        from mbmrl.runtime.server import create_app
    except ModuleNotFoundError as e:  # server.py not written yet, or fastapi/uvicorn not installed
        print(f"server: skipped ({type(e).__name__}: {e})")
        return None
    except Exception as e:  # noqa: BLE001 - server.py is there but broken
        print(f"server: FAIL: importing mbmrl.runtime.server raised {type(e).__name__}: {e}")
        return [("http/import", "-", float("inf"), float("inf"), 0.0, "FAIL")]
    mode = "recurrent" if "recurrent" in rt.modes else rt.default_mode
    if f"graph:{mode}/h" not in ref:
        print(f"server: skipped (the reference has no {mode!r} session to compare with)")
        return None
    create: dict = {"mode": mode, "seed": SEED, "task_params": task_params_for(rt)}  # only an oracle reads them

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(rt.path, runtime=rt), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t0 = time.monotonic()
    thread.start()
    while not server.started:  # the lifespan loads the artifact: slow under emulation
        if not thread.is_alive() or time.monotonic() - t0 > 300:
            server.should_exit = True
            print("server: FAIL: uvicorn did not start (see its log above)")
            return [("http/startup", "-", float("inf"), float("inf"), 0.0, "FAIL")]
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    print(f"server: uvicorn {uvicorn.__version__} up at {base} after {time.monotonic() - t0:.1f}s")

    log: list[dict] = []

    def call(method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            answer = json.loads(resp.read())
            log.append({"request": f"{method} {path}", "status": resp.status, "response": answer})
            print(f"  {method} {path} -> {resp.status} {json.dumps(answer)[:110]}")
            return answer

    rows: list[tuple] = []
    try:
        call("GET", "/healthz")
        sid = call("POST", "/v1/sessions", create)["session_id"]
        batch = [
            {"obs": o.tolist(), "action": a.tolist(), "next_obs": no.tolist(), "reward": float(r)}
            for o, a, no, r in transitions(x)
        ]
        observed = call("POST", f"/v1/sessions/{sid}/observe", {"transitions": batch})
        acts = [call("POST", f"/v1/sessions/{sid}/act", {"obs": o.tolist()}) for o in x["sess/act_obs"]]
        new = {
            f"graph:{mode}/surprise": np.array(observed["surprise"], dtype=np.float64),
            f"act1:{mode}/act[0]/action": np.array(acts[0]["action"], dtype=np.float32),
            f"act1:{mode}/act[0]/plan": np.array(acts[0]["plan"], dtype=np.float32),
            f"info:{mode}/act[1:]/action": np.array([a["action"] for a in acts[1:]], dtype=np.float32),
        }
        rows = [("http/" + r[0], *r[1:]) for r in compare({k: ref[k] for k in new}, new)]
    except Exception as e:  # noqa: BLE001 - an HTTP error is a failed check, reported as a row
        detail = e.read().decode()[:300] if hasattr(e, "read") else ""
        print(f"server: request failed: {type(e).__name__}: {e} {detail}")
        rows = [("http/requests", "-", float("inf"), float("inf"), 0.0, "FAIL")]
    finally:
        server.should_exit = True
        thread.join(timeout=60)
    if responses_path:
        Path(responses_path).write_text(json.dumps(log, indent=1))
        print(f"server: responses written to {responses_path}")
    return rows


# ------------------------------------------------------------------------------------------ commands
def record(artifact: str, out_path: str, precision: str = "fp32") -> int:
    rt = runtime.load(artifact, precision=precision)
    x = make_inputs(rt)
    out = compute(rt, x)
    meta = {"platform": platform_info(), "artifact": str(artifact), "manifest_sha256": manifest_sha(artifact),
            "modes": sorted(rt.modes), "horizon": rt.horizons[0], "seed": SEED}
    arrays = {f"in/{k}": v for k, v in x.items()} | {f"out/{k}": np.asarray(v) for k, v in out.items()}
    np.savez(out_path, __meta__=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
    print(f"recorded {len(out)} quantities for modes {meta['modes']} on {meta['platform']} -> {out_path}")
    return 0


def check(artifact: str, ref_path: str, server: bool = False, responses: str | None = None,
          precision: str = "fp32") -> int:
    meta, x, ref = split_npz(ref_path)
    rt = runtime.load(artifact, precision=precision)
    here = platform_info()
    print(f"reference : {json.dumps(meta['platform'])}")
    print(f"this host : {json.dumps(here)}")
    print(f"artifact  : {artifact} (modes {sorted(rt.modes)}, horizon {rt.horizons[0]})")
    ok = True
    if manifest_sha(artifact) != meta["manifest_sha256"]:
        print("FAIL: the artifact's manifest.json differs from the one recorded; compare the same artifact")
        ok = False
    rows = compare(ref, compute(rt, x))
    if server:
        http_rows = server_check(rt, x, ref, responses)
        rows += http_rows or []
    print()
    print_table(rows)
    bad = [r[0] for r in rows if r[5] in ("FAIL", "MISSING")]
    ok = ok and not bad
    print(f"\n{'PASS' if ok else 'FAIL'}: {len(rows) - len(bad)}/{len(rows)} rows ok or info"
          + (f"; out of tolerance: {', '.join(bad)}" if bad else ""))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("record", help="compute on this machine (the reference, e.g. x86) and save to .npz")
    p.add_argument("artifact")
    p.add_argument("out", help="output .npz")
    p.add_argument("--precision", default="fp32", help="rollout graphs: fp32 or int8 (an --int8 export)")
    p = sub.add_parser("check", help="recompute on this machine (e.g. aarch64) and compare with a reference")
    p.add_argument("artifact")
    p.add_argument("ref", help=".npz written by `record`")
    p.add_argument("--server", action="store_true", help="also drive the HTTP API (needs fastapi, uvicorn)")
    p.add_argument("--responses", help="with --server: save the HTTP requests and responses as JSON here")
    p.add_argument("--precision", default="fp32", help="rollout graphs: fp32 or int8 (as recorded)")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        return record(args.artifact, args.out, args.precision)
    return check(args.artifact, args.ref, server=args.server, responses=args.responses, precision=args.precision)


if __name__ == "__main__":
    sys.exit(main())
