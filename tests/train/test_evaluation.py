"""Evaluation data: prediction streams from random actions or from the non-adaptive MPC controller."""

import json
from functools import partial

import numpy as np
import pytest
from mbmrl.runtime import Session, load
from mbmrl.train.evaluation.evaluate import eval_episodes, target_starts
from mbmrl.train.evaluation.protocol import EvalProtocol, parse_contexts
from mbmrl.train.families import get_family


def test_mpc_streams_are_the_controllers_flight_and_reproducible(tiny_artifact):
    rt = load(tiny_artifact)
    fam = get_family("pendulum")
    params = fam.test_tasks("moderate")[0][1]
    a = eval_episodes(fam, params, 1, 40, seed=3, controller=partial(Session, rt))
    b = eval_episodes(fam, params, 1, 40, seed=3, controller=partial(Session, rt))
    np.testing.assert_array_equal(a[0]["actions"], b[0]["actions"])
    # the first action is what a fresh none-mode session plans from the first observation
    first = Session(rt, mode="none", seed=3 * 1000).act(a[0]["obs"][0]).action
    np.testing.assert_allclose(a[0]["actions"][0], first, atol=1e-6)
    rand = eval_episodes(fam, params, 1, 40, seed=3)
    assert not np.allclose(rand[0]["actions"], a[0]["actions"])
    assert len(a[0]["obs"]) >= 40 and a[0]["ends"][-1]


def test_targets_never_straddle_a_reset_and_contexts_parse():
    ends = np.zeros(60, bool)
    ends[[19, 39, 59]] = True  # three joined 20-step episodes
    for t in target_starts(ends, m_max=8, horizon=5, n=10):
        assert not ends[t : t + 4].any() and t >= 8
    assert parse_contexts("16, 0,4,4") == (0, 4, 16)
    with pytest.raises(ValueError, match="comma-separated"):
        parse_contexts("0,a")
    with pytest.raises(ValueError, match="prediction-data"):
        EvalProtocol(prediction_data="replay")


def test_regressions_name_the_tasks_adaptation_made_worse():
    """Per task against `none`: a return worse by more than max(20, 10%) counts as hurt, the worst task is
    named, and the NMSE ratio is the mode's error over none's."""
    from mbmrl.train.evaluation.protocol import EvalProtocol
    from mbmrl.train.evaluation.result import EvalResult, TaskResult

    def task(mass, none_ret, bayes_ret, none_err, bayes_err):
        t = TaskResult("moderate", {"mass": mass})
        t.control = {"none": [{"return": none_ret}], "bayes": [{"return": bayes_ret}]}
        t.prediction = {"none": {16: {"one_step_nmse": none_err}}, "bayes": {16: {"one_step_nmse": bayes_err}}}
        return t

    tasks = [task(1.0, -200.0, -150.0, 0.1, 0.02),  # better
             task(2.0, -200.0, -215.0, 0.1, 0.05),  # worse by 15 < 20: within noise
             task(3.0, -200.0, -400.0, 0.1, 0.2)]  # hurt, and its error doubled
    result = EvalResult("pendulum", EvalProtocol(contexts=(16,)), ["none", "bayes"], tasks)
    s = result.regressions()["bayes"]["summary"]
    assert s["tasks_hurt"] == 1 and s["tasks"] == 3 and s["worst_return_delta"] == -200.0
    assert s["worst_task"] == {"split": "moderate", "mass": 3.0}
    assert s["worst_nmse_ratio@16"] == 2.0 and s["tasks_nmse_worse@16"] == 1
    assert "none" not in result.regressions()


def test_eval_guard_both_scores_every_adaptive_mode_with_and_without_its_guard(tiny_artifact):
    """`--guard both`: MODE@unguarded beside each guarded mode, on the same tasks, starts and seeds, in the
    regressions table too; an unguarded recurrent session is the plain adapted model (its own returns)."""
    from mbmrl.train.evaluation.command import evaluate_artifact, parse_guard
    from mbmrl.train.evaluation.protocol import EvalConfig

    res = evaluate_artifact(EvalConfig(artifact=str(tiny_artifact), modes="none,recurrent", guard="both",
                                       windows=1, seeds=1, max_tasks=1, episode_steps=30, contexts="0,16",
                                       progress=False))
    assert res["modes"] == ["none", "recurrent", "recurrent@unguarded"]
    assert set(res["regressions"]) == {"recurrent", "recurrent@unguarded"}
    # before any transition both are the prior: the same one-step error at m=0
    p = res["prediction"]
    assert p["recurrent"]["0"]["one_step"] == p["recurrent@unguarded"]["0"]["one_step"] == p["none"]["0"]["one_step"]
    assert parse_guard("off") == (False, False) and parse_guard('{"horizon": 3}') == ({"horizon": 3}, False)
    with pytest.raises(ValueError, match="guard"):
        parse_guard("sometimes")
    with pytest.raises(ValueError, match="horizon"):
        parse_guard('{"horizon": 0}')


def test_eval_gain_both_flies_every_mode_again_with_gain_adaptation(tiny_artifact):
    """`--gain both`: MODE+gain beside each mode on the same tasks, starts and seeds; before any transition the
    gain is 1, so the one-step errors at m=0 are the same."""
    from mbmrl.train.evaluation.command import evaluate_artifact, parse_gain
    from mbmrl.train.evaluation.protocol import EvalConfig

    res = evaluate_artifact(EvalConfig(artifact=str(tiny_artifact), modes="none,bayes", gain="both", windows=1,
                                       seeds=1, max_tasks=1, episode_steps=30, contexts="0,16", progress=False))
    assert res["modes"] == ["none", "bayes", "none+gain", "bayes+gain"]
    p = res["prediction"]
    assert p["none+gain"]["0"]["one_step"] == p["none"]["0"]["one_step"]
    assert all(len(res["control"][m]) > 0 for m in res["modes"])
    assert parse_gain("default") == (None, False) and parse_gain("on") == (True, False)
    assert parse_gain("off") == (False, False) and parse_gain("both") == (False, True)
    assert parse_gain('{"max_gain": 2}') == ({"max_gain": 2}, False)
    with pytest.raises(ValueError, match="gain"):
        parse_gain("sometimes")
    with pytest.raises(ValueError, match="max_gain"):
        parse_gain('{"max_gain": 0.5}')


def test_eval_without_control_still_reports_the_worst_tasks_prediction_ratio():
    """`--no-control` (seeds 0): no returns, but the per-task one-step NMSE ratios against `none` are in
    eval.json and in the markdown report, since the guard's prediction criterion needs no MPC episodes."""
    from mbmrl.train.evaluation.protocol import EvalProtocol
    from mbmrl.train.evaluation.report import markdown_tables
    from mbmrl.train.evaluation.result import EvalResult, TaskResult

    tasks = []
    for mass, err in ((1.0, 0.05), (2.0, 0.3)):
        t = TaskResult("moderate", {"mass": mass})
        t.prediction = {"none": {16: {"one_step_nmse": 0.1}}, "bayes": {16: {"one_step_nmse": err}}}
        tasks.append(t)
    res = {**EvalResult("pendulum", EvalProtocol(contexts=(16,), seeds=0), ["none", "bayes"], tasks).to_json(),
           "split": "test"}
    assert "control" not in res
    s = res["regressions"]["bayes"]["summary"]
    assert s["worst_nmse_ratio@16"] == pytest.approx(3.0) and s["tasks_nmse_worse@16"] == 1 and "tasks_hurt" not in s
    assert "| bayes | - | - | - | 3.00 |" in markdown_tables(res)


def test_eval_split_takes_several_names_and_names_the_known_ones(tiny_artifact):
    """`--split a,b` evaluates exactly those splits' tasks; an unknown name fails before any work, listing
    the family's splits (it was a KeyError traceback)."""
    from mbmrl.train.evaluation.command import evaluate_artifact
    from mbmrl.train.evaluation.protocol import EvalConfig

    splits = list(get_family("pendulum").test_splits)
    cfg = dict(artifact=str(tiny_artifact), modes="none", windows=1, max_tasks=1, control=False, contexts="0",
               progress=False)
    res = evaluate_artifact(EvalConfig(split=",".join(splits[:2]), **cfg))
    assert sorted(res["prediction_by_split"]["none"]) == sorted(splits[:2])
    with pytest.raises(ValueError, match=f"no split 'moderat'.*{splits[0]}"):
        evaluate_artifact(EvalConfig(split=f"{splits[0]},moderat", **cfg))


def test_eval_cost_overrides_are_checked_against_the_artifact_before_any_work(tiny_artifact):
    """`mbmrl eval --cost`: empty means the artifact's cost; a non-object or a wrong dimension is refused."""
    from mbmrl.train.evaluation.command import parse_cost

    rt = load(tiny_artifact)
    assert parse_cost("", rt) is None
    q = [0.5] * rt.obs_dim
    assert parse_cost(json.dumps({"q": q}), rt) == {"q": q}
    with pytest.raises(ValueError, match="JSON object"):
        parse_cost("[1, 2]", rt)
    with pytest.raises(ValueError, match="JSON object"):
        parse_cost("{q: 1}", rt)
    with pytest.raises(ValueError, match=f"cost.q must have {rt.obs_dim} entries"):
        parse_cost('{"q": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]}', rt)
