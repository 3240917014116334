"""The SDK names tools and digests arguments exactly as the server does.

The SDK imports the server's own pure functions (``frameworks.map_tool_name``,
``canonical.sha256_digest``); these properties check the whole path the arguments take:
httpx's JSON encoding, the server's strict parser and ``parse_bundle``'s digest.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.action_bundle import parse_bundle
from vettra.domain.canonical import MAX_SAFE_INTEGER, loads_strict
from vettra.domain.frameworks import from_anthropic, from_langchain, tool_problem
from vettra.sdk import tool_name_for
from vettra.sdk._flow import digest_of

# The server refuses NUL and lone surrogates anywhere (a 422 the SDK passes on as
# InvalidRequest); every other JSON value must digest the same on both sides.
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
arguments = st.dictionaries(texts, json_values, max_size=6)


def httpx_json(value: Any) -> bytes:
    """The bytes httpx sends for ``json=value`` (httpx._content.encode_json)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@settings(max_examples=300, deadline=None)
@given(arguments)
def test_the_sdk_digest_is_the_digest_the_server_computes(args):
    body = {"tool": "custom.run", "arguments": args}
    bundle = parse_bundle(loads_strict(httpx_json(body)))
    assert digest_of(args) == bundle.args_digest


identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,40}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(identifiers)
def test_a_function_name_maps_as_the_raw_adapters_map_it(name):
    def func() -> None: ...

    func.__name__ = name
    adapters = [
        lambda: from_langchain({"name": name, "args": {}}).tool,
        lambda: from_anthropic({"type": "tool_use", "id": "t", "name": name, "input": {}}).tool,
    ]
    try:
        sdk = tool_name_for(func)
    except ValueError:
        sdk = None
    for adapter in adapters:
        try:
            server = adapter()
        except Exception:  # ValidationFailed: the server refuses the name too
            server = None
        assert sdk == server


def test_the_write_ups_example_name():
    def gmail_send_message() -> None: ...

    assert tool_name_for(gmail_send_message) == "gmail.send_message"
    assert tool_problem(tool_name_for(gmail_send_message)) is None
