"""MPPI and CEM on objectives whose optimum is known in closed form."""

import numpy as np
import pytest
from mbmrl.runtime.planner import PlannerConfig, mppi_weights, plan, shift_plan

H, A = 10, 1


def integrator_objective(x0: float, q: float, r: float):
    """x_{t+1} = x_t + a_t; cost sum_t q x_{t+1}^2 + r a_t^2, for a batch of plans (N, H, 1)."""

    def objective(actions: np.ndarray) -> np.ndarray:
        x = x0 + np.cumsum(actions[..., 0], axis=1)  # (N, H)
        return (q * x**2).sum(1) + (r * actions[..., 0] ** 2).sum(1)

    return objective


def integrator_optimum(x0: float, q: float, r: float) -> np.ndarray:
    """Minimize q||L a + x0||^2 + r||a||^2 (L lower-triangular ones): normal equations."""
    L = np.tril(np.ones((H, H)))
    return -np.linalg.solve(q * L.T @ L + r * np.eye(H), q * L.T @ np.full(H, x0))


@pytest.mark.parametrize("method", ["mppi", "cem"])
def test_planner_finds_the_lqr_optimum_of_an_integrator(method):
    x0, q, r = 1.5, 1.0, 0.5
    # MPPI keeps its sampling noise fixed, so it converges to within ~noise/sqrt(samples) of the optimum;
    # CEM shrinks its noise onto the elites and converges tightly.
    noise, temp = (0.05, 0.5) if method == "mppi" else (0.3, 0.05)
    cfg = PlannerConfig(method=method, horizon=H, samples=1024, iterations=100, temperature=temp,
                        noise_scale=noise, elite_frac=0.05)
    rng = np.random.default_rng(0)
    mean = np.zeros((H, A), np.float32)
    low, high = np.array([-2.0], np.float32), np.array([2.0], np.float32)
    best = plan(integrator_objective(x0, q, r), mean, low, high, cfg, rng)
    optimum = integrator_optimum(x0, q, r)
    np.testing.assert_allclose(best[:, 0], optimum, atol=0.03)
    # and the first action (the one a robot applies) is close to optimal
    assert abs(best[0, 0] - optimum[0]) < 0.03


def test_planner_respects_bounds_when_the_optimum_is_outside():
    target = 5.0  # cost (a - 5)^2 per step, bounds [-1, 1]: optimum is the upper bound
    cfg = PlannerConfig(horizon=H, samples=256, iterations=30, noise_scale=0.1)
    best = plan(lambda a: ((a - target) ** 2).sum((1, 2)), np.zeros((H, A), np.float32),
                np.array([-1.0], np.float32), np.array([1.0], np.float32), cfg, np.random.default_rng(1))
    assert best.max() <= 1.0 and best.min() >= 0.95


def test_nonfinite_costs_are_ignored():
    def objective(a):
        c = ((a - 0.5) ** 2).sum((1, 2))
        c[1::2] = np.nan  # half the samples blow up
        return c

    best = plan(objective, np.zeros((H, A), np.float32), np.array([-1.0], np.float32),
                np.array([1.0], np.float32), PlannerConfig(horizon=H, iterations=50, noise_scale=0.2, temperature=0.5),
                np.random.default_rng(0))
    assert np.isfinite(best).all() and abs(best.mean() - 0.5) < 0.1


def test_mppi_weights_are_a_distribution_favoring_low_cost():
    w = mppi_weights(np.array([3.0, 1.0, 2.0]), 0.1)
    assert np.isclose(w.sum(), 1.0) and w.argmax() == 1


def test_shift_plan_drops_first_and_repeats_last():
    p = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(shift_plan(p), [[2, 3], [4, 5], [4, 5]])
    np.testing.assert_array_equal(shift_plan(p, np.zeros(2)), [[2, 3], [4, 5], [0, 0]])


def test_bad_planner_settings_are_rejected():
    with pytest.raises(ValueError, match="method"):
        PlannerConfig().replace(method="random")
    with pytest.raises(ValueError, match="samples"):
        PlannerConfig().replace(samples=0)


def test_colored_noise_is_white_at_beta_zero_and_smooth_at_beta_two():
    """beta=0 draws exactly the white noise the planner always drew; beta=2 is unit-variance and correlated
    in time (what makes iCEM's samples smoother than white ones)."""
    from mbmrl.runtime.planner import colored_noise

    white = colored_noise(np.random.default_rng(0), 512, 15, 2, 0.0)
    np.testing.assert_array_equal(white, np.random.default_rng(0).standard_normal((512, 15, 2), dtype=np.float32))
    pink = colored_noise(np.random.default_rng(0), 512, 15, 2, 2.0)
    assert pink.shape == (512, 15, 2) and pink.dtype == np.float32 and np.isfinite(pink).all()
    np.testing.assert_allclose(pink.std(axis=1).mean(), 1.0, atol=0.05)

    def lag1(x):
        return float(np.mean(x[:, 1:] * x[:, :-1]) / np.mean(x * x))

    assert lag1(white) < 0.1 < 0.6 < lag1(pink)


def test_noise_beta_is_validated():
    with pytest.raises(ValueError, match="noise_beta"):
        PlannerConfig(noise_beta=-1).validate()


def test_cem_momentum_keeps_its_share_of_the_old_mean():
    """One CEM iteration with momentum m lands at m * warm start + (1 - m) * the elites' mean (CaDM's alpha)."""
    objective = integrator_objective(1.5, 1.0, 0.5)
    low, high = np.array([-2.0], np.float32), np.array([2.0], np.float32)
    warm = np.full((H, A), 0.7, np.float32)
    base = PlannerConfig(method="cem", horizon=H, samples=256, iterations=1, noise_scale=0.3, elite_frac=0.1)
    elites_mean = plan(objective, warm, low, high, base, np.random.default_rng(3))
    kept = plan(objective, warm, low, high, base.replace(momentum=0.25), np.random.default_rng(3))
    np.testing.assert_allclose(kept, 0.25 * warm + 0.75 * elites_mean, atol=1e-6)
    # and it still converges to the optimum over many iterations
    cfg = base.replace(samples=1024, iterations=100, momentum=0.1, noise_scale=0.3, elite_frac=0.05)
    best = plan(objective, np.zeros((H, A), np.float32), low, high, cfg, np.random.default_rng(0))
    np.testing.assert_allclose(best[:, 0], integrator_optimum(1.5, 1.0, 0.5), atol=0.03)
    with pytest.raises(ValueError, match="momentum"):
        PlannerConfig(momentum=1.0).validate()


def test_truncated_sampling_keeps_every_sample_inside_the_bounds():
    """truncate (PETS's and CaDM's CEM): no sample is clipped onto a bound, the spread near a bound shrinks to
    half the room left, and CEM still converges to the optimum."""
    seen = []

    def recording(a):
        seen.append(a.copy())
        return ((a - 0.5) ** 2).sum((1, 2))

    low, high = np.array([-1.0], np.float32), np.array([1.0], np.float32)
    warm = np.full((H, A), 0.9, np.float32)  # 0.1 from the upper bound: std capped at 0.05
    cfg = PlannerConfig(method="cem", horizon=H, samples=4096, iterations=1, noise_scale=0.5)
    plan(recording, warm, low, high, cfg, np.random.default_rng(0))
    clipped = seen.pop()
    assert (clipped == 1.0).mean() > 0.3  # Gaussian noise of std 0.5 clipped: about 42% land on the bound
    plan(recording, warm, low, high, cfg.replace(truncate=True), np.random.default_rng(0))
    inside = seen.pop()[1:]  # sample 0 is the warm start itself
    assert inside.max() < 1.0 and inside.min() >= 0.8 - 1e-6  # within 2 capped std (0.1) of the mean
    np.testing.assert_allclose(inside.std(), 0.05 * 0.88, rtol=0.05)  # a normal truncated at 2 std: 0.88 std
    objective = integrator_objective(1.5, 1.0, 0.5)
    wide = np.array([-2.0], np.float32), np.array([2.0], np.float32)
    best = plan(objective, np.zeros((H, A), np.float32), *wide,
                PlannerConfig(method="cem", horizon=H, samples=1024, iterations=100, noise_scale=0.3,
                              elite_frac=0.05, truncate=True), np.random.default_rng(0))
    np.testing.assert_allclose(best[:, 0], integrator_optimum(1.5, 1.0, 0.5), atol=0.03)


def test_truncate_is_parsed_and_validated():
    from mbmrl.runtime.planner import parse_planner

    assert parse_planner("truncate=true,samples=200") == {"truncate": True, "samples": 200}
    assert parse_planner("truncate=False") == {"truncate": False}
    with pytest.raises(ValueError, match="truncate"):
        PlannerConfig(truncate=1).validate()  # type: ignore[arg-type]
