"""An action's statuses (docs/api.md "Actions"): the one definition the server and the
agent SDK share, so the two cannot drift. Pure names, no imports.

``allowed`` and ``denied`` are decided at intercept time; ``pending`` waits for a person
and ends ``approved``, ``denied`` or ``expired`` exactly once.
"""

ALLOWED = "allowed"
PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
EXPIRED = "expired"
#: Statuses an action never leaves.
TERMINAL = frozenset({ALLOWED, APPROVED, DENIED, EXPIRED})
#: The statuses after which the tool may run.
RUNNABLE = frozenset({ALLOWED, APPROVED})
