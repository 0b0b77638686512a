"""pytest-benchmark timings of one control step on every engine (what `mbmrl bench` prints, here for
`--benchmark-autosave` / `--benchmark-compare`). Run: `pytest benchmarks --benchmark-only`.

One thread per engine (MBMRL_BENCH_THREADS to change), the artifact's planner, the same model and belief.
"""

from __future__ import annotations

import os

import pytest
from mbmrl.export.bench_engines import pytorch_mppi_act, runtime_calls, torch_act

THREADS = int(os.environ.get("MBMRL_BENCH_THREADS", "1"))


@pytest.fixture(scope="module")
def calls(artifact, planner):
    return runtime_calls(artifact, THREADS, planner)


@pytest.mark.parametrize("what", ["act", "observe", "observe_unguarded", "observe_gain", "step"])
def test_runtime(benchmark, calls, what):
    benchmark.group = "runtime (ONNX Runtime Session)"
    benchmark(calls[what])


@pytest.mark.parametrize("transport", ["http", "stream"])
def test_served_step(benchmark, artifact, planner, transport):
    from mbmrl.export.bench_transport import served_steps

    benchmark.group = "step: in process vs served"
    with served_steps(artifact, THREADS, planner) as steps:
        benchmark.pedantic(steps[transport], rounds=300, warmup_rounds=20)


@pytest.mark.parametrize("engine", ["onnxruntime", "torch_eager", "torch_compile", "pytorch_mppi"])
def test_act_engines(benchmark, artifact, planner, calls, engine):
    pytest.importorskip("torch")
    benchmark.group = "act: same model, same N x H"
    if engine == "onnxruntime":
        fn = calls["act"]
    elif engine == "pytorch_mppi":
        fn = pytorch_mppi_act(artifact, THREADS, planner)
        if fn is None:
            pytest.skip("pytorch_mppi is not installed (pip install 'mbmrl[bench]')")
    else:
        fn = torch_act(artifact, THREADS, planner, compiled=engine == "torch_compile")
        for _ in range(3):
            fn()  # torch.compile compiles on the first calls: not part of the timing
    benchmark(fn)
