"""The :class:`~vettra.ports.Scheduler` port on Google Cloud Tasks (API v2).

Each timer becomes one *HTTP target task* (``Task.http_request``: POST, JSON
body = the payload) in a queue, with ``Task.schedule_time`` = the due time.
Cloud Tasks delivers it at least once, so the handler behind ``target_url``
(``POST /api/tasks/expire``) is idempotent. See
https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#task
and https://cloud.google.com/tasks/docs/creating-http-target-tasks.

Task names (``projects/P/locations/L/queues/Q/tasks/TASK_ID``, ``TASK_ID`` of
``[A-Za-z0-9_-]``, at most 500 characters) give de-duplication: CreateTask
answers ALREADY_EXISTS for a name that exists or existed recently (a deleted
or executed name stays reserved for about an hour). So:

* ``schedule(name, due)`` first creates the *primary* task, whose id is the
  sanitised timer name. ALREADY_EXISTS with the same ``schedule_time`` and no
  dispatch yet (GetTask: ``dispatch_count == 0``) means "already done".
* A primary that is reserved but no longer waiting for ``due`` (another due,
  already dispatched — e.g. the handler is re-arming after an early delivery —
  or executed and gone) cannot be reused, so the timer moves to a *successor*
  id ``<primary>-<8 hex of sha256(due)>[-k]``, tried the same way. The stale
  task still fires; the idempotent handler absorbs it ("not-pending"/"early").
* ``cancel(name)`` deletes the primary (DeleteTask; NOT_FOUND ignored).
  Successors are rare and are not deleted: they fire into the idempotent
  handler, which answers "not-pending".

Authentication of the delivery: ``oidc_service_account_email`` makes Cloud
Tasks attach a Google-signed OIDC token (``HttpRequest.oidc_token``) — the
production setting. Where OIDC is unavailable (the emulator, local runs) a
``token_provider`` callable supplies a bearer token put in the task's
``Authorization`` header; it must stay valid until the task runs.

google.api_core / google.auth exceptions never leave this module (docs/architecture.md, "Rules the code keeps"):
they become :class:`~vettra.domain.errors.Unavailable`. All google imports are
local to the calls that need them, and nothing connects before the first call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..domain.errors import Unavailable
from ..ports import Scheduler

log = logging.getLogger("vettra.cloud_tasks")

#: Cloud Tasks' TASK_ID rules: letters, digits, hyphens, underscores; ≤ 500 chars.
MAX_TASK_ID_LENGTH = 500
_DISALLOWED_TASK_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
#: Room kept free after the primary id for a successor suffix ``-<hash>-<k>``.
_SUCCESSOR_RESERVE = 16
_NAME_DIGEST_CHARS = 12
_DUE_DIGEST_CHARS = 8
#: Successor ids tried before giving up (each one consumed by an early delivery).
MAX_SUCCESSORS = 5
#: A task's schedule_time is stored with microsecond precision.
_SAME_DUE_TOLERANCE_S = 0.001
#: Per-RPC deadline and the retry budget for transient failures.
CALL_TIMEOUT_S = 10.0
RETRY_INITIAL_S = 0.1
RETRY_MAXIMUM_S = 2.0
RETRY_MULTIPLIER = 2.0
JSON_CONTENT_TYPE = "application/json"

TokenProvider = Callable[[], str]


def queue_path(project: str, location: str, queue: str) -> str:
    """``projects/{project}/locations/{location}/queues/{queue}`` (the queue's resource name)."""
    for label, value in (("project", project), ("location", location), ("queue", queue)):
        if not value or "/" in value:
            raise ValueError(f"{label} must be a non-empty id without '/', found {value!r}")
    return f"projects/{project}/locations/{location}/queues/{queue}"


def task_id(name: str) -> str:
    """The primary TASK_ID for timer ``name``: deterministic, allowed characters only.

    Names that needed changing (or shortening) get a digest of the original
    appended, so two different timer names never share a task id.
    """
    if not name:
        raise ValueError("a timer name must not be empty")
    cleaned = _DISALLOWED_TASK_ID_CHARS.sub("_", name)
    limit = MAX_TASK_ID_LENGTH - _SUCCESSOR_RESERVE
    if cleaned == name and len(cleaned) <= limit:
        return cleaned
    digest = hashlib.sha256(name.encode()).hexdigest()[:_NAME_DIGEST_CHARS]
    return f"{cleaned[: limit - _NAME_DIGEST_CHARS - 1]}-{digest}"


def successor_ids(name: str, due: datetime) -> list[str]:
    """The ids tried after the primary, named after the due time (module docstring)."""
    stamp = _utc(due).isoformat(timespec="microseconds")
    base = f"{task_id(name)}-{hashlib.sha256(stamp.encode()).hexdigest()[:_DUE_DIGEST_CHARS]}"
    return [base] + [f"{base}-{k}" for k in range(2, MAX_SUCCESSORS + 1)]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("due must be timezone-aware")
    return moment.astimezone(UTC)


class CloudTasksScheduler(Scheduler):
    """Timers as named Cloud Tasks HTTP tasks aimed at the expire endpoint."""

    def __init__(
        self,
        *,
        project: str,
        location: str,
        queue: str,
        target_url: str,
        client: Any = None,
        client_factory: Callable[[], Any] | None = None,
        oidc_service_account_email: str | None = None,
        oidc_audience: str | None = None,
        token_provider: TokenProvider | None = None,
        call_timeout_s: float = CALL_TIMEOUT_S,
    ):
        if client is not None and client_factory is not None:
            raise ValueError("pass a CloudTasksClient or a factory for one, not both")
        if (oidc_service_account_email is None) == (token_provider is None):
            raise ValueError(
                "pass exactly one of oidc_service_account_email (production) "
                "or token_provider (environments without OIDC)"
            )
        if oidc_audience is not None and oidc_service_account_email is None:
            raise ValueError("oidc_audience needs oidc_service_account_email")
        if not target_url.startswith(("https://", "http://")):
            raise ValueError(f"target_url must be an http(s) URL, found {target_url!r}")
        self.queue_path = queue_path(project, location, queue)
        self.target_url = target_url
        self._client = client
        self._client_factory = client_factory
        self._client_lock = threading.Lock()
        self._oidc_email = oidc_service_account_email
        self._oidc_audience = oidc_audience or target_url
        self._token_provider = token_provider
        self._timeout = call_timeout_s

    # -- port -------------------------------------------------------------------
    def schedule(self, name: str, due: datetime, payload: Mapping[str, Any]) -> None:
        """CreateTask under the primary id, else the first usable successor id."""
        due = _utc(due)
        body = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True).encode()
        for candidate in [task_id(name)] + successor_ids(name, due):
            if self._create(candidate, due, body):
                log.info("task created", extra={"task": candidate, "due": due.isoformat()})
                return
            if self._still_waiting_for(candidate, due):
                log.debug("task already scheduled", extra={"task": candidate})
                return
        raise Unavailable(
            f"could not schedule {name!r}: all {MAX_SUCCESSORS + 1} task ids "
            "are reserved by earlier deliveries"
        )

    def cancel(self, name: str) -> None:
        """DeleteTask on the primary id; NOT_FOUND (never created, already run) is fine."""
        from google.api_core import exceptions as api_exceptions

        try:
            self.client.delete_task(
                name=self._task_name(task_id(name)), timeout=self._timeout, retry=self._retry()
            )
        except api_exceptions.NotFound:
            return
        except _google_errors() as exc:
            raise _unavailable("DeleteTask", exc) from exc

    # -- internals --------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The CloudTasksClient, created on first use (never at import or construction)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    try:
                        self._client = (self._client_factory or _default_client)()
                    except _google_errors() as exc:
                        raise _unavailable("creating the client", exc) from exc
        return self._client

    def _task_name(self, tid: str) -> str:
        return f"{self.queue_path}/tasks/{tid}"

    def _create(self, tid: str, due: datetime, body: bytes) -> bool:
        """CreateTask; ``False`` when the name is taken (ALREADY_EXISTS)."""
        from google.api_core import exceptions as api_exceptions

        try:
            self.client.create_task(
                parent=self.queue_path,
                task=self._task(tid, due, body),
                timeout=self._timeout,
                retry=self._retry(),
            )
        except api_exceptions.AlreadyExists:
            return False
        except _google_errors() as exc:
            raise _unavailable("CreateTask", exc) from exc
        return True

    def _still_waiting_for(self, tid: str, due: datetime) -> bool:
        """GetTask: does the existing task still promise a delivery at ``due``?"""
        from google.api_core import exceptions as api_exceptions

        try:
            task = self.client.get_task(
                name=self._task_name(tid), timeout=self._timeout, retry=self._retry()
            )
        except api_exceptions.NotFound:
            return False  # executed or deleted: the name is reserved but promises nothing
        except _google_errors() as exc:
            raise _unavailable("GetTask", exc) from exc
        scheduled = task.schedule_time
        same_due = (
            scheduled is not None
            and abs((_utc(scheduled) - due).total_seconds()) <= _SAME_DUE_TOLERANCE_S
        )
        return same_due and not task.dispatch_count

    def _task(self, tid: str, due: datetime, body: bytes) -> Any:
        from google.cloud import tasks_v2

        headers = {"Content-Type": JSON_CONTENT_TYPE}
        request = tasks_v2.HttpRequest(
            url=self.target_url, http_method=tasks_v2.HttpMethod.POST, headers=headers, body=body
        )
        if self._oidc_email is not None:
            request.oidc_token = tasks_v2.OidcToken(
                service_account_email=self._oidc_email, audience=self._oidc_audience
            )
        else:
            assert self._token_provider is not None
            request.headers["Authorization"] = f"Bearer {self._token_provider()}"
        return tasks_v2.Task(name=self._task_name(tid), schedule_time=due, http_request=request)

    def _retry(self) -> Any:
        """Retry UNAVAILABLE / DEADLINE_EXCEEDED: safe, because task names make
        CreateTask idempotent and DeleteTask/GetTask are idempotent already."""
        from google.api_core import exceptions as api_exceptions
        from google.api_core.retry import Retry, if_exception_type

        return Retry(
            predicate=if_exception_type(
                api_exceptions.ServiceUnavailable, api_exceptions.DeadlineExceeded
            ),
            initial=RETRY_INITIAL_S,
            maximum=RETRY_MAXIMUM_S,
            multiplier=RETRY_MULTIPLIER,
            timeout=self._timeout,
        )


def _default_client() -> Any:
    from google.cloud import tasks_v2

    return tasks_v2.CloudTasksClient()


def _google_errors() -> tuple[type[BaseException], ...]:
    """What the client library raises: api_core errors (gRPC statuses, retry
    exhaustion), auth errors (no credentials), and raw gRPC errors."""
    import grpc
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    return (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, grpc.RpcError)


def _unavailable(operation: str, exc: BaseException) -> Unavailable:
    """The domain error for a failed call: transient as far as callers know, so
    the HTTP edge answers 503 and Cloud Tasks / the caller retries."""
    status = getattr(exc, "grpc_status_code", None)
    detail = f" ({status.name})" if status is not None and hasattr(status, "name") else ""
    return Unavailable(f"Cloud Tasks {operation} failed: {type(exc).__name__}{detail}")
