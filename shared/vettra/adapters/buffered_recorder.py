"""An audit recorder that keeps a unit of work's events until its store links them at
commit (the embedded store, and the in-memory fake of the tests)."""

from __future__ import annotations

from ..domain.audit import AuditEntry, AuditEvent
from ..ports import AuditRecorder


class BufferedRecorder(AuditRecorder):
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        #: Set by the store's commit: the entries it linked, in sequence order.
        self.linked_entries: list[AuditEntry] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    @property
    def linked(self) -> list[AuditEntry]:
        return self.linked_entries
