"""Store size per 1M intercepts, before and after the retention sweep (issue 7 item 9).

N intercepts (default 20,000) through the services on the embedded default, each with
its own ``Idempotency-Key``: 68 % reads (allowed), 26 % e-mails (held, then approved or
denied), 4 % issues under a two-of-three quorum (two named approvers vote: quorum rows),
2 % repository deletions (held, TOTP step-up, approved: a challenge, a grant and their
single-use markers each). The clock is then moved past every retention
window (25 h) and :func:`vettra.services.retention.sweep_once` runs. Printed: live bytes
(pages in use after a WAL checkpoint) and rows per table before and after, both scaled
to 1M intercepts, and their ratio. What stays is what the audit log and the actions API
need (audit entries, actions). Never fails on size or time.

    python bench/store_size.py [--n 20000]
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyotp
from _args import Opt, parse_options

from vettra.adapters.clock import FakeClock
from vettra.bootstrap import DB_FILE, TIMERS_FILE, Config, bootstrap
from vettra.domain.policy_envelope import load_default_payload, sign_bundle
from vettra.services import actions
from vettra.services.retention import IDEMPOTENCY_WINDOW_S, sweep_once

READ = {"tool": "user.get_profile", "arguments": {}}
EMAIL = {
    "tool": "gmail.send_message",
    "arguments": {"to": "bob@example.com", "subject": "s", "body": "b"},
}
DELETE = {"tool": "github.delete_repo", "arguments": {"repo": "acme/api"}}
ISSUE = {"tool": "github.create_issue", "arguments": {"repo": "acme/api", "title": "flaky test"}}
QUORUM_RULE = {
    "id": "two-of-three-issues",
    "effect": "require_approval",
    "tools": ["github.create_issue"],
    "approvers": {"quorum": 2, "of": ["carol", "dave", "erin"]},
    "reason": "two maintainers",
}
PER = 1_000_000
TABLES = (
    "actions",
    "action_approvers",
    "idempotency",
    "docs",
    "audit_entries",
    "audit_checkpoints",
)


def live_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (
            conn.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_count", "freelist_count", "page_size")
        )
        return (pages - free) * size
    finally:
        conn.close()


def rows(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def measure(home: Path) -> tuple[int, dict[str, int]]:
    return live_bytes(home / DB_FILE) + live_bytes(home / TIMERS_FILE), rows(home / DB_FILE)


def load(home: Path, n: int, clock: FakeClock) -> float:
    rt = bootstrap(Config(home=home), clock=clock)  # not started: no timer fires, the clock is ours
    ident = rt.identity
    agent = ident.authenticate(
        ident.issue(role="agent", sub="bench", user="alice", ttl_s=30 * 24 * 3600)
    )
    alice = ident.authenticate(ident.issue(role="approver", sub="alice", ttl_s=30 * 24 * 3600))
    voters = [
        ident.authenticate(ident.issue(role="approver", sub=who, ttl_s=30 * 24 * 3600))
        for who in ("carol", "dave")
    ]
    admin = ident.authenticate(ident.issue(role="admin", sub="ops", ttl_s=3600))
    payload = load_default_payload()
    payload["version"] += 1
    payload["rules"] = payload["rules"] + [QUORUM_RULE]
    rt.deps.policies.activate(admin, sign_bundle(payload, rt.deps.keys.policy_signing_key()))
    step_up = rt.deps.step_up
    started = step_up.enroll(alice, {"method": "totp"})
    secret = started["secret"]
    step_up.enroll(
        alice,
        {
            "method": "totp",
            "enrollment_id": started["enrollment_id"],
            "code": pyotp.TOTP(secret).at(clock.now()),
        },
    )
    rng = random.Random(7)
    t0 = time.perf_counter()
    try:
        for i in range(n):
            roll = rng.random()
            bundle = (
                READ if roll < 0.68 else EMAIL if roll < 0.94 else ISSUE if roll < 0.98 else DELETE
            )
            action = actions.intercept(rt.deps, agent, bundle, idempotency_key=f"key-{i}").action
            if bundle is EMAIL:
                actions.decide(rt.deps, alice, action.id, rng.choice(["approve", "deny"]))
            elif bundle is ISSUE:
                for voter in voters:
                    actions.decide(rt.deps, voter, action.id, "approve")
            elif bundle is DELETE:
                challenge = step_up.trigger(alice, action_id=action.id)
                clock.advance(30)  # a fresh TOTP step for every step-up
                token = step_up.verify(
                    alice, challenge["challenge_id"], code=pyotp.TOTP(secret).at(clock.now())
                )["step_up_token"]
                actions.decide(rt.deps, alice, action.id, "approve", step_up_token=token)
        return time.perf_counter() - t0
    finally:
        rt.close()


def sweep(home: Path, clock: FakeClock) -> tuple[dict[str, int], float]:
    clock.advance(IDEMPOTENCY_WINDOW_S + 3600)
    rt = bootstrap(Config(home=home), clock=clock)
    try:
        t0 = time.perf_counter()
        swept = sweep_once(rt.deps, max_batches=10**9)
        return swept, time.perf_counter() - t0
    finally:
        rt.close()


def main() -> None:
    args = parse_options(__doc__, n=Opt(20_000, "intercepts to measure (scaled to 1M)"))
    scale = PER / args.n
    clock = FakeClock(datetime.now(UTC))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        took = load(home, args.n, clock)
        before, rows_before = measure(home)
        swept, sweep_s = sweep(home, clock)
        after, rows_after = measure(home)
    print(
        f"{args.n} intercepts in {took:.1f} s; sweep {sweep_s:.2f} s deleted "
        + ", ".join(f"{k} {v}" for k, v in swept.items() if v)
    )
    print(f"{'per 1M intercepts':<22}{'before sweep':>16}{'after sweep':>16}")
    print(f"{'live bytes (MiB)':<22}{before * scale / 2**20:>16.1f}{after * scale / 2**20:>16.1f}")
    for table in TABLES:
        print(
            f"{'rows ' + table:<22}{rows_before[table] * scale:>16,.0f}{rows_after[table] * scale:>16,.0f}"
        )
    print(
        f"after/before: {after / before:.3f} (bytes), "
        f"swept-table rows {sum(rows_after[t] for t in ('idempotency', 'docs', 'action_approvers'))}"
        f" of {sum(rows_before[t] for t in ('idempotency', 'docs', 'action_approvers'))} left"
    )


if __name__ == "__main__":
    main()
