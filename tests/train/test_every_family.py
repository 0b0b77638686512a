"""Every built-in family builds a Gymnasium env that passes check_env, on a train and a test task."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mbmrl.train.families import BUILTIN, get_family, sample_params


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_check_env_on_train_and_test_tasks(name):
    fam = get_family(name)
    assert fam.name == name
    for params in (sample_params(fam.train, np.random.default_rng(0)), fam.test_tasks()[0][1]):
        env = fam.make_env(params, fam.eval_start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Gymnasium's CartPole warns about its infinite bounds
            check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (len(fam.obs_names),)
        env.close()
