"""Schemathesis hooks for `test_http_hardening.py::test_schemathesis_finds_nothing` (SCHEMATHESIS_HOOKS=this module).

Two rules of the API are not expressible in JSON Schema: samples x iterations x horizon of the *effective*
planner (the session's planner updated by the request's patch) must not exceed the server's
--max-plan-work (stated in the schema's PlannerPatch description and `x-max-plan-work`, answered with a 422
whose every problem has type "plan_work"); and a points reference's times must increase strictly, with one
position (and velocity) per time (stated in PointsReference's description, type "reference_points").
Exactly those answers are not counted as "schema-valid data rejected"; every other failure of every check
still fails the run.
"""

from __future__ import annotations

import json

import schemathesis


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure except a positive-data rejection that is only the planner budget or a points rule."""
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 422:
        return True
    try:
        detail = json.loads(response.content)["detail"]
    except (ValueError, KeyError, TypeError):
        return True
    return not (isinstance(detail, list) and detail and all(d.get("type") in ("plan_work", "reference_points")
                                                                     for d in detail))
