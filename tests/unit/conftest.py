"""Fixtures of the token tests: a clock at now (the live identity provider on 127.0.0.1,
``idp``, is tests/conftest.py's).

Tokens are signed at real ``time.time()`` by :class:`tests.idp.FakeIdP`, so the clock
starts at the current second and moves only when a test advances it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from vettra.adapters.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.fromtimestamp(int(time.time()), tz=UTC))
