"""Approvals: timer accuracy and decision races, on the embedded default.

1. Timer accuracy: 1,000 pending actions whose deadlines fall within 10 s; for
   each, the lateness of its expiry (time the `action.decided`/expired event is
   published minus `expires_at`). Target p99 < 250 ms. Printed beside the
   lateness of a bare `threading.Timer` for the same deadlines in the same run.
2. Races: 200 pending actions, each hit at its deadline by an approve, a deny
   and the timer's expire at once (plus a duplicate expire); counts actions
   with more than one terminal audit entry (must be 0).
Never fails on timing.

    python bench/approvals.py [--actions 1000] [--races 200]
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from _args import parse_options

from vettra.bootstrap import Config, bootstrap
from vettra.domain.errors import Conflict
from vettra.services import actions
from vettra.services.action_events import ACTIONS_TOPIC

SEND_EMAIL = {
    "tool": "gmail.send_message",
    "arguments": {"to": "bob@example.com", "subject": "s", "body": "b"},
}
TERMINAL = {"action.approved", "action.denied", "action.expired"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timer_accuracy(home: Path, n: int) -> tuple[list[float], list[float]]:
    rt = bootstrap(Config(home=home))
    rt.start()
    agent = rt.identity.authenticate(rt.identity.issue(role="agent", sub="bench", user="alice"))
    deadlines: dict[str, datetime] = {}
    lateness: list[float] = []
    done = threading.Event()

    def on_event(event):
        if (
            event["type"] == "action.decided"
            and event["status"] == "expired"
            and event["action_id"] in deadlines
        ):
            lateness.append((datetime.now(UTC) - deadlines[event["action_id"]]).total_seconds())
            if len(lateness) >= n:
                done.set()

    rt.deps.bus.subscribe(ACTIONS_TOPIC, on_event)
    rng = random.Random(7)
    started = time.monotonic()
    for _ in range(n):
        # deadlines spread over the 10 s after the start of creation
        remaining = 10 - (time.monotonic() - started)
        timeout = max(1, min(10, int(rng.uniform(1, max(1.0, remaining)))))
        result = actions.intercept(rt.deps, agent, {**SEND_EMAIL, "timeout_s": timeout})
        deadlines[result.action.id] = result.action.expires_at
    done.wait(30)
    rt.close()

    # baseline: one bare heap-based scheduler thread (stdlib sched) for the same deadlines
    import sched

    base: list[float] = []
    scheduler = sched.scheduler(time.time, time.sleep)
    first = min(deadlines.values())
    start = time.time() + 0.5
    for due in deadlines.values():
        target = start + (due - first).total_seconds()
        scheduler.enterabs(target, 0, lambda target=target: base.append(time.time() - target))
    scheduler.run()
    return lateness, base


def races(home: Path, n: int) -> tuple[int, int, int]:
    rt = bootstrap(Config(home=home))
    rt.start()
    agent = rt.identity.authenticate(rt.identity.issue(role="agent", sub="bench", user="alice"))
    alice = rt.identity.authenticate(rt.identity.issue(role="approver", sub="alice"))
    pending = [
        actions.intercept(rt.deps, agent, {**SEND_EMAIL, "timeout_s": 2}).action for _ in range(n)
    ]
    outcomes = {"approve": 0, "deny": 0, "conflict": 0}
    lock = threading.Lock()

    def decide(action_id: str, decision: str) -> None:
        try:
            actions.decide(rt.deps, alice, action_id, decision)
            key = decision
        except Conflict:
            key = "conflict"
        with lock:
            outcomes[key] += 1

    def at_deadline(action) -> None:
        # each action is hit at its own deadline, give or take a few milliseconds
        jitter = random.uniform(-0.02, 0.01)
        delay = (action.expires_at - datetime.now(UTC)).total_seconds() + jitter
        time.sleep(max(0.0, delay))
        hits = [
            threading.Thread(target=decide, args=(action.id, "approve")),
            threading.Thread(target=decide, args=(action.id, "deny")),
            threading.Thread(target=_quiet_expire, args=(rt.deps, action.id)),
            threading.Thread(target=_quiet_expire, args=(rt.deps, action.id)),
        ]
        for t in hits:
            t.start()
        for t in hits:
            t.join()

    threads = [threading.Thread(target=at_deadline, args=(a,)) for a in pending]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)  # let any timer that was already due finish
    ids = {a.id for a in pending}
    terminal: dict[str, int] = {i: 0 for i in ids}
    for entry in rt.deps.store.audit_log.entries("default"):
        if entry.action_id in ids and entry.type in TERMINAL:
            terminal[entry.action_id] += 1
    rt.close()
    more_than_one = sum(1 for c in terminal.values() if c > 1)
    none = sum(1 for c in terminal.values() if c == 0)
    return more_than_one, none, outcomes["approve"] + outcomes["deny"]


def _quiet_expire(deps, action_id: str) -> None:
    actions.expire(deps, action_id)


def main() -> None:
    args = parse_options(__doc__, actions=1000, races=200)
    with tempfile.TemporaryDirectory() as d:
        late, base = timer_accuracy(Path(d) / "timers", args.actions)
        multi, none, wins = races(Path(d) / "races", args.races)
    ms = [x * 1000 for x in late]
    bms = [x * 1000 for x in base]
    print(f"timer accuracy: {len(ms)}/{args.actions} expiries observed")
    print(
        f"  vettra expiry lateness     p50 {pct(ms, 0.5):7.1f} ms   p99 {pct(ms, 0.99):7.1f} ms   max {max(ms):7.1f} ms"
    )
    print(
        f"  bare sched thread          p50 {pct(bms, 0.5):7.1f} ms   p99 {pct(bms, 0.99):7.1f} ms"
    )
    print(f"  target p99 < 250 ms -> {'met' if pct(ms, 0.99) < 250 else 'NOT met'}")
    print(f"\nraces: {args.races} actions x (approve, deny, expire, expire) at the deadline")
    print(f"  actions with more than one terminal entry: {multi} (must be 0)")
    print(f"  actions with no terminal entry: {none} (must be 0)")
    print(f"  decisions that won over the timer: {wins}")


if __name__ == "__main__":
    main()
