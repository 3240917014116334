"""The C-encoder fast path of canonical_json must equal the reference emitter."""

from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.canonical import canonical_json, canonical_json_slow

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_fast_path_equals_reference(value) -> None:
    try:
        slow = canonical_json_slow(value)
    except UnicodeEncodeError:  # lone surrogates: both paths refuse
        return
    assert canonical_json(value) == slow


def test_astral_keys_take_the_reference_path() -> None:
    value = {"\U0001f600": 1, "\ufb01": 2}
    assert canonical_json(value) == canonical_json_slow(value)
    assert canonical_json(value).decode().index("\U0001f600") < canonical_json(
        value
    ).decode().index("\ufb01")
