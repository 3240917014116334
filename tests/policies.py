"""Policies the tests activate: the shipped default with rules of a test's own, as a newer
version signed with a home's policy key, the way an admin makes one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vettra.domain.policy_envelope import load_default_payload, sign_bundle


def issues_quorum(*maintainers: str) -> dict[str, Any]:
    """A rule holding new issues for two of ``maintainers`` (in any order: the policy keeps
    them sorted)."""
    return {
        "id": "two-of-three-issues",
        "effect": "require_approval",
        "tools": ["github.create_issue"],
        "approvers": {"quorum": 2, "of": list(maintainers)},
        "reason": "issues need two of the maintainers",
    }


def signed_default_with(
    signing_key: Any,
    rules: Sequence[dict[str, Any]],
    *,
    first: bool = False,
    version: int | None = None,
) -> dict[str, Any]:
    """The default policy plus ``rules`` (after its own, or before them with ``first``) as
    ``version`` (default: the next one), signed with ``signing_key``."""
    payload = load_default_payload()
    payload["version"] = payload["version"] + 1 if version is None else version
    payload["rules"] = [*rules, *payload["rules"]] if first else [*payload["rules"], *rules]
    return sign_bundle(payload, signing_key)
