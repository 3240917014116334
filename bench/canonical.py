"""Canonical JSON (RFC 8785): Vettra's path beside the ``rfc8785`` library alone.

``canonical_json`` hands values the standard library's C encoder already writes
canonically to ``json.dumps`` and everything else to ``rfc8785``. This prints
µs per call for both on a typical action bundle (the hot path: argument digests
and audit bodies) and on a float-heavy document (the library's own path), with
the ratio measured side by side in one run. Timing never fails anything.
"""

from __future__ import annotations

import timeit

import rfc8785

from vettra.domain.canonical import canonical_json

BUNDLE = {
    "tool": "gmail.send_message",
    "framework": "plain",
    "arguments": {
        "to": "bob@example.com",
        "cc": ["a@example.org", "d@example.net"],
        "subject": "Quarterly numbers",
        "body": "Hello Bob, " * 40,
        "n": 12345,
    },
    "context": {"reason": "weekly report", "session": "ses_1", "attempt": 1},
}
FLOATS = {"amounts": [1.5, 0.1, 1e-7, 3.14159, 2.5e21] * 10, "nested": {"x": 1e21, "y": -0.0}}
REPEAT = 5


def _per_call_us(fn, value, number: int) -> float:
    best = min(timeit.repeat(lambda: fn(value), number=number, repeat=REPEAT))
    return best / number * 1e6


def main() -> None:
    print(f"{'document':<10} {'vettra µs':>10} {'rfc8785 µs':>11} {'ratio':>7}")
    for name, value, number in (("bundle", BUNDLE, 5000), ("floats", FLOATS, 1000)):
        assert canonical_json(value) == rfc8785.dumps(value)
        ours = _per_call_us(canonical_json, value, number)
        lib = _per_call_us(rfc8785.dumps, value, number)
        print(f"{name:<10} {ours:>10.1f} {lib:>11.1f} {lib / ours:>6.2f}x")


if __name__ == "__main__":
    main()
