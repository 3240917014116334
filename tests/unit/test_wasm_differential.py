"""Differential tests: the WASM verifier against the Python reference, byte for byte.

Hypothesis generates policies (valid and not: validation is compared too) and action
bundles that go through ``parse_bundle`` as the service's do: catalogue tools, aliases,
unknown tools of every verb kind, arguments nested and rewrapped (JSON text inside
strings), and text spelled to dodge rules (other scripts, fullwidth, invisible and
combining characters, case tricks like final sigma and dotted I). Every decision's JSON
(score, level, category, factors, choices, reasons; outcome, rule, reason, timeout,
approvers) must be identical; where the reference raises, the module must refuse too.

One run decides at least :data:`MIN_DECISIONS` bundle/policy pairs. A disagreement is
saved under tests/vectors/differential/ (then replayed by the vector tests on both
sides) and fails the test with the file name.
"""

from __future__ import annotations

import json
import os
import unicodedata
from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wasm_support import agrees, load_wasm_verifier, reference_answer, save_vector
from vettra.adapters.wasm_verifier import bundle_facts
from vettra.domain import textfold
from vettra.domain.action_bundle import parse_bundle
from vettra.domain.catalogue import Catalogue
from vettra.domain.errors import ValidationFailed
from vettra.domain.frameworks import KNOWN_SERVICES
from vettra.domain.policy import Policy
from vettra.domain.policy_conditions import TOP_FIELDS
from vettra.domain.policy_envelope import load_default_payload
from vettra.domain.policy_schema import validate_payload

MIN_DECISIONS = 10_000
#: VETTRA_DIFFERENTIAL_EXAMPLES=2000 explores longer (the default keeps a run near a minute).
EXAMPLES = int(os.environ.get("VETTRA_DIFFERENTIAL_EXAMPLES", "250"))
BUNDLES_PER_EXAMPLE = 25
AGENTS = ("agent:bot", None, "agent:\u0430dmin")

CATALOGUE = Catalogue.default()
DEFAULT = Policy.from_payload(load_default_payload())

# --------------------------------------------------------------------------- text

TRICKY = [
    "admin",
    "ADMIN",
    "Admin ",
    "\uff41\uff44\uff4d\uff49\uff4e",  # fullwidth
    "\u0430dmin",  # Cyrillic a
    "ad\u200bmin",  # zero-width space
    "a\u0301dmin",  # combining acute
    "\u0455udo",
    "\u0455\u0443\u0455",
    "owner",
    "OWNER",
    "\u043ewner",
    "roles/owner",
    "\u0130stanbul",  # dotted capital I
    "STRASSE stra\u00dfe",
    "\u039f\u0394\u039f\u03a3 \u03a3",  # final sigma
    "\ufb01le",  # ligature
    "\u1100\u1161\u11a8",  # Hangul jamo
    "caf\u00e9",
    "\u043f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "\u2028\u2029\u00a0\u3000x",
    "\U0001d41a\U0001d41d\U0001d426\U0001d422\U0001d427",  # mathematical bold admin
    "secret/prod/db",
    "stripe_api_key",
    "my password",
    "x@example.com",
    "Eve <eve@evil.example>, bob@example.com.",
    "a@x, b@y; c@z",
    "",
    " ",
    "main",
    "anyone",
    "writer",
    "\u202eevil",
    "e\u0308\u0323",
    "\u00c5\u212b",
]
CHARS = st.characters(
    codec="utf-8",
    categories=("L", "M", "N", "P", "S", "Z", "Cf", "Cc"),
)
FREE_TEXT = st.text(CHARS, max_size=10)


def json_text(inner: Any) -> Any:
    return st.builds(
        lambda v, ascii_only, pad: pad + json.dumps(v, ensure_ascii=ascii_only),
        inner,
        st.booleans(),
        st.sampled_from(["", " ", "\n", "\u00a0"]),
    )


STRINGS = st.one_of(st.sampled_from(TRICKY), FREE_TEXT)
KEYS = st.one_of(
    st.sampled_from(
        [
            "to",
            "cc",
            "bcc",
            "attendees",
            "role",
            "roles",
            "r\u043ele",
            "type",
            "emails",
            "branch",
            "force",
            "private",
            "visibility",
            "text",
            "amount",
            "currency",
            "customer",
            "destination",
            "charge",
            "member",
            "name",
            "path",
            "policy",
            "users",
            "permissions",
            "Role",
        ]
    ),
    FREE_TEXT,
)
SCALARS = st.one_of(
    STRINGS,
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
SMALL_JSON = st.recursive(
    SCALARS,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(KEYS, c, max_size=3),
    max_leaves=5,
)
VALUES = st.recursive(
    st.one_of(SCALARS, json_text(SMALL_JSON)),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(KEYS, c, max_size=4),
    max_leaves=10,
)
ARGUMENTS = st.dictionaries(KEYS, VALUES, max_size=5)

# --------------------------------------------------------------------------- tools

WORDS = [
    "get",
    "list",
    "read",
    "search",
    "create",
    "update",
    "send",
    "delete",
    "purge",
    "pay",
    "refund",
    "grant",
    "share",
    "invite",
    "and",
    "then",
    "admin",
    "keys",
    "secret",
    "token",
    "role",
    "file",
    "message",
    "event",
    "repo",
    "user",
    "profile",
    "widget",
    "x",
]
# the services the classifier knows, and some it does not (a short name, lookalikes)
SERVICES = [*KNOWN_SERVICES, "gh", "acme", "acmecorp", "vault", "deploy"]


@st.composite
def tools(draw: Any) -> str:
    if draw(st.booleans()):
        pattern = draw(st.sampled_from(sorted(CATALOGUE.profiles)))
        filled = "".join(
            draw(st.sampled_from(["", "x", "_file", "message", "a"])) if ch == "*" else ch
            for ch in pattern
        )
        if "." in filled and filled[0] != "." and filled.split(".")[1][:1].isalpha():
            return filled
    service = draw(st.sampled_from(SERVICES))
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
    sep = draw(st.sampled_from(["_", "-", "_"]))
    return service + "." + sep.join(words)


@st.composite
def bodies(draw: Any) -> dict[str, Any]:
    tool = draw(tools())
    arguments = draw(ARGUMENTS)
    body: dict[str, Any]
    if draw(st.integers(0, 9)) == 0:
        service, _, name = tool.partition(".")
        body = {
            "framework": "mcp",
            "tool_call": {"name": name, "arguments": arguments, "server": service},
        }
    else:
        body = {"tool": tool, "arguments": arguments}
    if draw(st.booleans()):
        body["resource"] = draw(st.sampled_from(["repo:acme/prod-api", "repo:acme/dev", "x", ""]))
    if draw(st.booleans()):
        body["context"] = draw(
            st.dictionaries(st.sampled_from(["env", "change_ticket", "n"]), SCALARS, max_size=3)
        )
    return body


# --------------------------------------------------------------------------- policies

GLOBS = st.one_of(
    st.sampled_from(
        [
            "*",
            "*.*",
            "gmail.*",
            "*.get_*",
            "*.list_*",
            "*.delete_*",
            "drive.share*",
            "calendar.create_event",
            "stripe.*",
            "acme*.*",
            "[a-g]*.?*",
            "[!a-m]*",
            "*[_-]admin*",
            "github.get_[!a-c]*",
            "*.grant_role",
            "iam.*",
            "[z-a]*",
            "[]*",
            "[!]*",
            "*\\*",
        ]
    ),
    st.text(st.sampled_from("ab*?[]!-^.gx_"), min_size=1, max_size=8),
)
FIELDS = st.one_of(
    st.sampled_from([*sorted(TOP_FIELDS), "context.env", "context.change_ticket"]),
    st.builds(
        lambda k, rest: "arguments." + k + rest,
        KEYS.filter(lambda k: k and "." not in k),
        st.sampled_from(["", ".name", ".role"]),
    ),
)
OPERAND_STRINGS = st.one_of(st.sampled_from(TRICKY), FREE_TEXT)


@st.composite
def leaves(draw: Any) -> dict[str, Any]:
    field = draw(FIELDS)
    op = draw(
        st.sampled_from(
            [
                "eq",
                "ne",
                "gt",
                "gte",
                "lt",
                "lte",
                "in",
                "not_in",
                "contains",
                "exists",
                "glob",
                "count_gte",
                "domain_not_in",
                "text_glob",
                "text_in",
                "confusable_with",
            ]
        )
    )
    number = st.one_of(st.integers(-5, 100), st.floats(-1e3, 1e3, allow_nan=False))
    scalar = st.one_of(OPERAND_STRINGS, number, st.booleans())
    operand: Any = {
        "eq": scalar,
        "ne": scalar,
        "contains": scalar,
        "gt": number,
        "gte": number,
        "lt": number,
        "lte": number,
        "in": st.lists(scalar, max_size=4),
        "not_in": st.lists(scalar, max_size=4),
        "exists": st.booleans(),
        "glob": GLOBS,
        "count_gte": st.integers(0, 4),
        "domain_not_in": st.lists(
            st.sampled_from(["example.com", "EXAMPLE.com.", "x", "y"]), max_size=3
        ),
        "text_glob": st.one_of(GLOBS, st.lists(GLOBS, min_size=1, max_size=3)),
        "text_in": st.lists(OPERAND_STRINGS, min_size=1, max_size=3),
        "confusable_with": st.one_of(
            OPERAND_STRINGS, st.lists(OPERAND_STRINGS, min_size=1, max_size=3)
        ),
    }[op]
    leaf = {"field": field, op: draw(operand)}
    if op.startswith(("text_", "confusable")) and draw(st.booleans()):
        leaf["keys"] = draw(
            st.lists(
                st.sampled_from(["role*", "r?le", "*", "name", "permissions", "[rR]ole"]),
                min_size=1,
                max_size=2,
            )
        )
    return leaf


CONDITIONS = st.recursive(
    leaves(),
    lambda c: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(c, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(c, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, c),
    ),
    max_leaves=4,
)
OPTIONS = {
    "action_type": ["read", "write", "delete", "financial", "auth"],
    "reversibility": ["reversible", "unknown", "irreversible"],
    "blast_radius": ["single", "multiple", "system"],
    "sensitivity": ["public", "internal", "confidential", "regulated"],
}


@st.composite
def factor_sets(draw: Any) -> dict[str, Any]:
    factors = draw(st.lists(st.sampled_from(sorted(OPTIONS)), min_size=1, max_size=3, unique=True))
    sets: dict[str, Any] = {f: draw(st.sampled_from(OPTIONS[f])) for f in factors}
    if draw(st.integers(0, 9)) == 0:  # now and then an invalid one: validation is compared
        sets[factors[0]] = draw(st.sampled_from(["bogus", 1, ["x"], {"a": 1}, None]))
    return sets


@st.composite
def policies(draw: Any) -> dict[str, Any]:
    approval = draw(st.integers(0, 20))
    rules = []
    for i in range(draw(st.integers(0, 6))):
        effect = draw(st.sampled_from(["allow", "deny", "require_approval", "require_step_up"]))
        rule: dict[str, Any] = {
            "id": f"r{i}",
            "effect": effect,
            "tools": draw(st.lists(GLOBS, min_size=1, max_size=3)),
            "reason": draw(st.sampled_from(["because", "a reason with \u00e9", "x"])),
        }
        if draw(st.booleans()):
            rule["when"] = draw(CONDITIONS)
        if effect.startswith("require") and draw(st.booleans()):
            rule["timeout_s"] = draw(st.integers(1, 1000))
        if effect.startswith("require") and draw(st.integers(0, 3)) == 0:
            names = draw(
                st.lists(
                    st.sampled_from(["alice", "bob", "carol", "dave"]),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
            rule["approvers"] = {"quorum": draw(st.integers(1, len(names))), "of": names}
        rules.append(rule)
    overrides = [
        {
            "tool": draw(GLOBS),
            "set": draw(factor_sets()),
            **({"reason": "r"} if draw(st.booleans()) else {}),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    return {
        "schema": "vettra.policy/v1",
        "policy_id": "generated",
        "version": 1,
        "thresholds": {"approval": approval, "step_up": draw(st.integers(approval, 55))},
        "timeouts": {
            "MEDIUM": draw(st.integers(1, 900)),
            "HIGH": draw(st.integers(1, 900)),
            "max": draw(st.integers(1, 3600)),
            "on_expiry": "deny",
        },
        "overrides": overrides,
        "rules": rules,
    }


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def verifier() -> Any:
    return load_wasm_verifier()


def _check(
    verifier: Any, policy: Policy, payload: dict[str, Any], bundle: Any, agent: str | None
) -> None:
    want = reference_answer(policy, bundle, CATALOGUE, agent)
    got = verifier.ask(policy, bundle, agent)
    if not agrees(want, got):
        path = save_vector(payload, bundle_facts(bundle), agent, want, got)
        pytest.fail(
            f"WASM and Python disagree on {bundle.tool}: saved {path}\nwant {want}\ngot  {got}"
        )


def test_wasm_and_python_decide_alike(verifier: Any) -> None:
    """At least MIN_DECISIONS generated bundle/policy pairs, decided alike (and every
    generated policy validated alike)."""
    stats = {"decisions": 0, "examples": 0, "invalid_policies": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        payload=policies(),
        raw=st.lists(bodies(), min_size=BUNDLES_PER_EXAMPLE, max_size=BUNDLES_PER_EXAMPLE),
    )
    def run(payload: dict[str, Any], raw: list[dict[str, Any]]) -> None:
        stats["examples"] += 1
        answer = verifier.module.request({"op": "validate_policy", "policy": payload})
        try:
            want_errors = [
                {"field": e.field, "message": e.message} for e in validate_payload(payload)
            ]
        except TypeError:  # an unhashable option in a dict lookup: the reference raises
            assert answer.get("error") == "raises", (payload, answer)
            return
        assert answer["errors"] == want_errors, payload
        policy = Policy.from_payload(payload) if not want_errors else None
        if policy is None:
            stats["invalid_policies"] += 1
        bundles = []
        for body in raw:
            try:
                bundles.append(parse_bundle(body))
            except ValidationFailed:
                continue
        for i, bundle in enumerate(bundles):
            _check(verifier, DEFAULT, DEFAULT.payload, bundle, AGENTS[i % len(AGENTS)])
            stats["decisions"] += 1
            if policy is not None:
                for agent in (AGENTS[i % len(AGENTS)], AGENTS[(i + 1) % len(AGENTS)]):
                    _check(verifier, policy, payload, bundle, agent)
                    stats["decisions"] += 1

    run()
    assert stats["decisions"] >= MIN_DECISIONS, stats


# --------------------------------------------------------------------------- primitives


@settings(max_examples=400, deadline=None, database=None)
@given(
    texts=st.lists(
        st.one_of(st.sampled_from(TRICKY), st.text(CHARS, max_size=16)), min_size=25, max_size=25
    )
)
def test_text_primitives_agree(verifier: Any, texts: list[str]) -> None:
    """fold, skeleton, is_suspicious and the str methods they rest on, on any text."""
    functions = {
        "fold": textfold.fold,
        "skeleton": textfold.skeleton,
        "suspicious": textfold.is_suspicious,
        "lower": str.lower,
        "casefold": str.casefold,
        "nfkc": lambda t: unicodedata.normalize("NFKC", t),
        "nfd": lambda t: unicodedata.normalize("NFD", t),
        "repr": repr,
        "split": str.split,
        "strip": str.strip,
    }
    for text in texts:
        for name, function in functions.items():
            got = verifier.module.request({"op": "text", "fn": name, "text": text})
            assert got["result"] == function(text), (name, text)


@settings(max_examples=300, deadline=None, database=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.text(st.sampled_from("ab*?[]!-^\\&~|z."), max_size=8),
            st.text(st.sampled_from("ab-]z[\\^!."), max_size=6),
        ),
        min_size=20,
        max_size=20,
    )
)
def test_globs_agree(verifier: Any, pairs: list[tuple[str, str]]) -> None:
    """fnmatch.fnmatchcase, including the patterns the re module refuses."""
    for pattern, text in pairs:
        try:
            want: Any = fnmatchcase(text, pattern)
        except Exception:  # noqa: BLE001 - re.error or IndexError from fnmatch.translate
            want = "raises"
        got = verifier.module.request(
            {"op": "text", "fn": "fnmatch", "text": text, "pattern": pattern}
        )
        assert (got["result"] if got["ok"] else got["error"]) == want, (pattern, text, got)


@settings(max_examples=300, deadline=None, database=None)
@given(
    value=VALUES,
    keys=st.one_of(
        st.none(), st.lists(st.sampled_from(["role*", "r?le", "*", "n*"]), min_size=1, max_size=2)
    ),
)
def test_texts_walk_agrees(verifier: Any, value: Any, keys: list[str] | None) -> None:
    """textfold.texts: every string inside a value, JSON text included, in order."""
    globs = tuple(textfold.skeleton(k) for k in keys) if keys else None
    want = list(textfold.texts(value, globs))
    request: dict[str, Any] = {"op": "text", "fn": "texts", "text": json.dumps(value)}
    if keys:
        request["keys"] = keys
    got = verifier.module.request(request)
    if got.get("error") == "unsupported":
        return  # deep JSON text: the bridge asks the reference (tested in test_wasm_verifier)
    assert got["result"] == want
