"""Model-based exploration: MPC with the model in training collects on-policy segments of new tasks."""

import dataclasses

import numpy as np
from mbmrl.train.checkpoint import Checkpoint
from mbmrl.train.explore import collect_mpc
from mbmrl.train.families import get_family


def test_mpc_rounds_collect_bounded_reproducible_segments_of_new_tasks(tiny_run):
    ckpt = Checkpoint.load(tiny_run / "model.pt")
    model = ckpt.model().train()
    facts = {k: v for k, v in dataclasses.asdict(ckpt).items() if k not in ("args", "state_dict")}
    fam = get_family("pendulum")

    def run():
        return collect_mpc(model, facts, fam, n_tasks=2, episodes_per_task=1, seg_len=50, noise=0.1,
                           rng=np.random.default_rng(0), first_task_id=100, progress=False)

    segs = run()
    assert segs.obs.shape == (2 * 4, 50, 3) and set(segs.task_ids) == {100, 101}
    assert np.abs(segs.actions).max() <= 2.0  # Pendulum's torque bound
    np.testing.assert_array_equal(segs.next_obs[:, :-1], segs.obs[:, 1:])  # one episode per task: contiguous
    np.testing.assert_array_equal(run().actions, segs.actions)  # seeded: the same data again
    # the first observation of every task comes from the family's evaluation start (hanging down)
    first = segs.obs[segs.task_ids == 100][0, 0]
    assert first[0] < -0.8
    assert model.training  # collection plans in eval mode and hands the model back in training mode
