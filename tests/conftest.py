"""Shared fixtures: a tiny but real trained-and-exported pendulum artifact, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config) -> None:
    """Under pytest-xdist (`-n N`), each worker's torch/OpenMP gets its share of the cores, not all of them: N
    workers each running a 2-core training on 2 cores would spend their time switching threads."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        from mbmrl.export.bench_engines import cpu_count  # imports no torch: OMP_NUM_THREADS is read when torch loads

        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cpu_count() // int(workers))))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real meta-training run at a tiny budget (seconds): RUN/ with model.pt, oracle.pt, data.npz."""
    pytest.importorskip("torch")
    from mbmrl.train.config import TrainConfig
    from mbmrl.train.trainer import train

    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(out=str(out), n_tasks=8, episodes_per_task=1, iters=40, batch_size=16, seq_len=48,
                      hidden_size=8, feature_dim=16, mlp_width=32, gradient_weight=0.5, bayes_weight=0.1,
                      window=32, progress=False)  # window > feature_dim: a head can be identified
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_artifact(tiny_run, tmp_path_factory) -> Path:
    """The tiny run exported to an artifact directory (and its oracle to ARTIFACT/oracle)."""
    from mbmrl.export.config import ExportConfig
    from mbmrl.export.onnx_export import export_run

    out = tmp_path_factory.mktemp("artifact") / "artifact"
    return export_run(ExportConfig(run=str(tiny_run), out=str(out), horizons=(15, 30)))


@pytest.fixture(scope="session")
def sessions_agree():
    """A check that one `Session` per mode over ONNX Runtime (`onnx_rt`) and over torch (`torch_rt`), same seed
    and data, gives the same surprises, heads, plans and predicted states: parity of the whole controller."""
    import numpy as np
    from mbmrl.runtime import Session

    def check(onnx_rt, torch_rt, rng: np.random.Generator, observes: int) -> None:
        o, a_dim = onnx_rt.obs_dim, onnx_rt.action_dim
        for mode in onnx_rt.modes:
            a, b = Session(onnx_rt, mode, seed=3), Session(torch_rt, mode, seed=3)
            for _ in range(observes):
                obs = rng.uniform(-1, 1, o).astype(np.float32)
                act = rng.uniform(-2, 2, a_dim).astype(np.float32)
                nxt = obs + rng.normal(0, 0.1, o).astype(np.float32)
                assert a.observe(obs, act, nxt, -1.0) == pytest.approx(b.observe(obs, act, nxt, -1.0), rel=1e-4,
                                                                       abs=1e-6)
            np.testing.assert_allclose(a.W, b.W, atol=1e-4)
            for _ in range(3):
                ra, rb = a.act(obs), b.act(obs)
                assert np.isfinite(ra.action).all()
                # the models agree to ~1e-5 (predicted states); the sampling planner's softmax weights amplify
                # that float noise in the plan, more so over warm-started acts (bayes: 1.4e-3 after three)
                np.testing.assert_allclose(ra.predicted_obs, rb.predicted_obs, atol=1e-4)
                np.testing.assert_allclose(ra.plan, rb.plan, atol=3e-3)

    return check
