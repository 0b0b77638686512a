"""Fixtures of the runtime tests: a live `mbmrl serve` of the tiny artifact, one per test module."""

from __future__ import annotations

import pytest
from test_server import Server


@pytest.fixture(scope="module")
def server(tiny_artifact):
    s = Server.start(tiny_artifact)
    yield s
    s.stop()
