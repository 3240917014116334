"""Fixtures of the token tests: a live identity provider on 127.0.0.1 and a clock at now.

Tokens are signed at real ``time.time()`` by :class:`tests.idp.FakeIdP`, so the clock
starts at the current second and moves only when a test advances it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from vettra.adapters.clock import FakeClock

from ..idp import FakeIdP


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    provider = FakeIdP()
    yield provider
    provider.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.fromtimestamp(int(time.time()), tz=UTC))
