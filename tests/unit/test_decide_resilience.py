"""A decision that committed stands even if the scheduler is down afterwards."""

from __future__ import annotations

from pathlib import Path

from vettra.bootstrap import Config, bootstrap
from vettra.domain.errors import Unavailable
from vettra.services import actions


class DownScheduler:
    """A scheduler whose cancel fails as Cloud Tasks would during an outage (records calls)."""

    def __init__(self, inner):
        self.inner, self.cancelled = inner, []

    def schedule(self, name, due, payload):
        self.inner.schedule(name, due, payload)

    def cancel(self, name):
        self.cancelled.append(name)
        raise Unavailable("Cloud Tasks did not answer")


def test_approval_survives_a_failing_timer_cancel(tmp_path: Path) -> None:
    rt = bootstrap(Config(home=tmp_path / "home"))
    rt.start()
    try:
        rt.deps.scheduler = DownScheduler(rt.deps.scheduler)
        agent = rt.identity.authenticate(rt.identity.issue(role="agent", sub="a", user="alice"))
        alice = rt.identity.authenticate(rt.identity.issue(role="approver", sub="alice"))
        action = actions.intercept(
            rt.deps, agent, {"tool": "gmail.send_message", "arguments": {"to": "x@example.org"}}
        ).action
        view = actions.decide(rt.deps, alice, action.id, "approve")
        assert view["status"] == "approved"
        assert rt.deps.scheduler.cancelled == [f"expire-{action.id}"]
        assert actions.get_action(rt.deps, alice, action.id)["status"] == "approved"
    finally:
        rt.close()


def test_a_home_has_one_running_owner(tmp_path: Path) -> None:
    import pytest

    from vettra.bootstrap import HomeInUse

    first = bootstrap(Config(home=tmp_path / "home"))
    try:
        with pytest.raises(HomeInUse, match="in use"):
            bootstrap(Config(home=tmp_path / "home"))
    finally:
        first.close()
    bootstrap(Config(home=tmp_path / "home")).close()  # free again once the first has closed
