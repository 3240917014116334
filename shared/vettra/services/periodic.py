"""Background work of a long-lived process (``vettra dev``): a job run every few seconds
on a daemon thread. In the cloud the same jobs run from a scheduler instead."""

from __future__ import annotations

import abc
import threading

#: How long :meth:`Periodic.stop` waits for a tick in progress.
STOP_JOIN_S = 5.0


class Periodic(abc.ABC):
    """Calls :meth:`tick` every ``period_s`` on a daemon thread called ``name``, from
    :meth:`start` until :meth:`stop`."""

    def __init__(self, name: str, period_s: float):
        self._name = name
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def tick(self) -> None:
        """One round of the job; an exception ends the thread, so catch what may pass."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_JOIN_S)

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self.tick()
