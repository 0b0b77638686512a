"""Reference trajectories: the paths' kinematics, sampled points, and how a session's clock reads them."""

import numpy as np
import pytest
from mbmrl.runtime.cost import Cost
from mbmrl.runtime.reference import Reference, ReferenceLayout, Tracking

LAYOUT = ReferenceLayout(dt=0.1, position=(0, 1, 2), velocity=(3, 4, 5))


@pytest.mark.parametrize("kind", ["figure8", "circle"])
@pytest.mark.parametrize("plane", ["xz", "xy"])
def test_paths_start_at_their_center_and_their_velocity_and_acceleration_are_the_derivatives(kind, plane):
    ref = Reference(kind, center=(0.5, -1.0, 2.0), size=(1.2, 0.7), period=3.0, plane=plane)
    np.testing.assert_allclose(ref.at(0.0)[0][0], [0.5, -1.0, 2.0], atol=1e-12)
    t = np.linspace(0, 6, 13)
    pos, vel, acc = ref.at(t)
    eps = 1e-5
    np.testing.assert_allclose(vel, (ref.at(t + eps)[0] - ref.at(t - eps)[0]) / (2 * eps), atol=1e-6)
    np.testing.assert_allclose(acc, (ref.at(t + eps)[1] - ref.at(t - eps)[1]) / (2 * eps), atol=1e-5)
    np.testing.assert_allclose(ref.at(3.0)[0][0], ref.at(0.0)[0][0], atol=1e-12)  # one lap per period
    axis = {"xz": 1, "xy": 2}[plane]  # the axis out of the plane never moves
    assert np.ptp(pos[:, axis]) == 0


def test_points_interpolate_and_hold_their_ends_at_rest():
    ref = Reference.from_dict({"kind": "points", "times": [0.0, 1.0, 3.0],
                               "positions": [[0, 0, 1], [1, 0, 1], [1, 2, 1]]})
    pos, vel, _ = ref.at(np.array([-1.0, 0.5, 2.0, 5.0]))
    np.testing.assert_allclose(pos, [[0, 0, 1], [0.5, 0, 1], [1, 1, 1], [1, 2, 1]])
    np.testing.assert_allclose(vel, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
    given = Reference.from_dict({"times": [0, 1], "positions": [[0, 0, 0], [1, 0, 0]],
                                 "velocities": [[0, 0, 0], [2, 0, 0]]})  # kind defaults to points
    np.testing.assert_allclose(given.at(0.5)[1][0], [1, 0, 0])
    assert Reference.from_dict(given.to_dict()).to_dict() == given.to_dict()


@pytest.mark.parametrize("bad, match", [
    ({"kind": "spiral"}, "kind"),
    ({"kind": "figure8", "times": [0]}, "unknown fields"),
    ({"kind": "figure8", "period": 0}, "period"),
    ({"kind": "circle", "center": [0, 0]}, "center"),
    ({"kind": "circle", "plane": "xx"}, "plane"),
    ({"kind": "points", "times": [0, 0], "positions": [[0, 0, 0]] * 2}, "increasing"),
    ({"kind": "points", "times": [0, 1], "positions": [[0, 0, 0]]}, "shape"),
    ({"kind": "points", "times": [0], "positions": [[0, 0, float("nan")]]}, "finite"),
])
def test_malformed_references_say_what_is_wrong(bad, match):
    with pytest.raises(ValueError, match=match):
        Reference.from_dict(bad)


def test_targets_write_position_and_velocity_rows_one_period_apart_and_keep_the_rest():
    ref = Reference("figure8", center=(0, 0, 1), size=(1, 0.5), period=2 * np.pi)
    base = np.tile(np.arange(8, dtype=np.float32), (4, 1))  # (H, O) with O = 8
    target = ref.targets(base, LAYOUT, t0=0.3)
    pos, vel, _ = ref.at(0.3 + 0.1 * np.arange(1, 5))
    np.testing.assert_allclose(target[:, :3], pos, rtol=1e-6)
    np.testing.assert_allclose(target[:, 3:6], vel, rtol=1e-6)
    np.testing.assert_array_equal(target[:, 6:], base[:, 6:])


def test_the_clock_advances_per_plan_and_a_sent_time_resets_it():
    cost = Cost(target=np.zeros(8, np.float32), q=np.ones(8, np.float32), r=np.ones(1, np.float32))
    ref = Reference("circle", center=(0, 0, 1), size=(1, 0), period=4.0)
    tracking = Tracking(ref)
    first, _ = tracking.cost_for(cost, 3, LAYOUT, request_target=False, time=None)
    second, _ = tracking.cost_for(cost, 3, LAYOUT, request_target=False, time=None)
    np.testing.assert_allclose(second.target[:2], first.target[1:])  # one period later: the rows shift by one
    jumped, _ = tracking.cost_for(cost, 3, LAYOUT, request_target=False, time=2.0)
    np.testing.assert_allclose(jumped.target[0, :3], ref.at(2.1)[0][0], rtol=1e-6)
    assert tracking.time == pytest.approx(2.1) and tracking.n_acted == 3
    # a per-request target wins, and a session cost's own rows advance one per plan without a reference
    mine, start = tracking.cost_for(cost, 3, LAYOUT, request_target=True, time=None)
    assert mine is cost and start == 0
    rows = Cost(target=np.arange(40, dtype=np.float32).reshape(5, 8), q=cost.q, r=cost.r)
    plain = Tracking()
    starts = [plain.cost_for(rows, 3, LAYOUT, request_target=False, time=None)[1] for _ in range(3)]
    assert starts == [0, 1, 2]
    restored = Tracking().load(tracking.arrays())
    assert restored.reference == ref and restored.time == tracking.time and restored.n_acted == tracking.n_acted
