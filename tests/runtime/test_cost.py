"""The cost contract's linear state term and closed-form ('known') rewards: how they reach the rollout graph."""

import numpy as np
import pytest
from mbmrl.runtime.cost import Cost
from mbmrl.runtime.dynamics import ROLLOUT_INPUTS, CostTerms, rollout_feeds

KNOWN = {"target": [0.0, 0.0, 0.0], "q": [0.0, 0.0, 0.0], "r": [0.0, 0.0], "reward_weight": 2.0,
         "reward_source": "known", "reward": {"linear": [0.0, 1.0, 0.0], "r": [0.5, 0.25]}}


def test_a_known_reward_folds_into_the_linear_and_action_terms():
    """cost -= w * (reward.linear . o - a^T diag(reward.r) a): the learned reward head is then off."""
    terms = CostTerms.build(Cost.from_dict({**KNOWN, "linear": [0.5, 0.0, 0.0], "r": [1.0, 0.0]}, 3, 2), 4, 5)
    np.testing.assert_allclose(terms.linear, [0.5, -2.0, 0.0])
    np.testing.assert_allclose(terms.r, [2.0, 0.5])
    assert terms.reward_weight[0] == 0.0


def test_the_learned_source_keeps_the_reward_head_and_ignores_the_declared_reward():
    terms = CostTerms.build(Cost.from_dict({**KNOWN, "reward_source": "learned"}, 3, 2), 4, 5)
    assert terms.reward_weight[0] == 2.0 and not terms.linear.any() and not terms.r.any()


def test_a_cost_round_trips_through_its_dict():
    cost = Cost.from_dict({**KNOWN, "linear": [1.0, 2.0, 3.0]}, 3, 2)
    again = Cost.from_dict(cost.to_dict(), 3, 2)
    assert again.reward_source == "known" and again.linear.tolist() == [1.0, 2.0, 3.0]
    assert again.reward.to_dict() == KNOWN["reward"]
    assert cost.merged({"reward_source": "learned"}, 3, 2).reward.to_dict() == KNOWN["reward"]  # a patch keeps it


@pytest.mark.parametrize("patch, match", [
    ({"reward": None}, "declares no closed-form reward"),
    ({"reward_source": "oracle"}, "reward_source must be one of"),
    ({"linear": [1.0, 2.0]}, "cost.linear must have 3"),
    ({"linear": [1.0, float("nan"), 0.0]}, "cost.linear must have 3 finite"),
    ({"reward": {"linear": [1.0, 0.0, 0.0]}}, "cost.reward must be"),
    ({"reward": {"linear": [1.0, 0.0], "r": [0.0, 0.0]}}, "cost.reward.linear must have 3"),
    ({"rewards": 1}, "unknown fields"),
])
def test_bad_costs_say_what_is_wrong(patch, match):
    with pytest.raises(ValueError, match=match):
        Cost.from_dict({**KNOWN, **patch}, 3, 2)


def test_a_graph_without_the_linear_input_runs_only_while_the_term_is_zero():
    """Artifacts of format 2 have no 'linear' input: fed as before while it is zero, refused with what to do."""
    old_names = tuple(n for n in ROLLOUT_INPUTS if n != "linear")
    args = (np.zeros(3, np.float32), np.zeros(4, np.float32), np.zeros((5, 4), np.float32),
            np.zeros((8, 4, 2), np.float32))
    plain = CostTerms.build(Cost.from_dict({**KNOWN, "reward_source": "learned"}, 3, 2), 4, 5)
    assert tuple(rollout_feeds(*args, plain, names=old_names)) == old_names
    assert tuple(rollout_feeds(*args, plain)) == ROLLOUT_INPUTS
    with pytest.raises(ValueError, match="re-export"):
        rollout_feeds(*args, CostTerms.build(Cost.from_dict(KNOWN, 3, 2), 4, 5), names=old_names)
