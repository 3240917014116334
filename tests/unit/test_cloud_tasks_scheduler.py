"""CloudTasksScheduler against a recording fake of CloudTasksClient.

The emulator implements neither name de-duplication nor GetTask/DeleteTask, so
the paths that depend on them (ALREADY_EXISTS → done or successor; NOT_FOUND on
cancel; error translation) are proven here against a fake that behaves like the
Cloud Tasks API: a created or executed name stays reserved.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip(
    "google.cloud.tasks_v2", reason="google-cloud-tasks (the 'test' extra) is not installed"
)

from google.api_core import exceptions as api_exceptions  # noqa: E402

from vettra.adapters.cloud_tasks import (  # noqa: E402
    MAX_TASK_ID_LENGTH,
    CloudTasksScheduler,
    successor_ids,
    task_id,
)
from vettra.domain.errors import Unavailable  # noqa: E402

DUE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
QUEUE = "projects/p/locations/l/queues/q"
PAYLOAD = {"kind": "expire", "action_id": "act_1"}


class FakeCloudTasks:
    """Records calls; names stay reserved after delivery or deletion, as in the API."""

    def __init__(self) -> None:
        self.tasks: dict[str, Any] = {}  # waiting or dispatched tasks by full name
        self.reserved: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.fail_with: Exception | None = None

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def create_task(self, *, parent: str, task: Any, timeout: float, retry: Any) -> Any:
        self.calls.append(("create", task.name))
        self._maybe_fail()
        if task.name in self.reserved:
            raise api_exceptions.AlreadyExists(f"task {task.name} exists")
        self.reserved.add(task.name)
        self.tasks[task.name] = task
        return task

    def get_task(self, *, name: str, timeout: float, retry: Any) -> Any:
        self.calls.append(("get", name))
        self._maybe_fail()
        if name not in self.tasks:
            raise api_exceptions.NotFound(f"task {name} not found")
        return self.tasks[name]

    def delete_task(self, *, name: str, timeout: float, retry: Any) -> None:
        self.calls.append(("delete", name))
        self._maybe_fail()
        if self.tasks.pop(name, None) is None:
            raise api_exceptions.NotFound(f"task {name} not found")

    def dispatch(self, task_id_: str, *, finished: bool) -> None:
        name = f"{QUEUE}/tasks/{task_id_}"
        self.tasks[name].dispatch_count += 1
        if finished:
            del self.tasks[name]


def _scheduler(client: Any = None, **kw: Any) -> CloudTasksScheduler:
    auth = kw.pop("auth", {"token_provider": lambda: "tok"})
    return CloudTasksScheduler(
        project="p",
        location="l",
        queue="q",
        target_url="https://x.example/api/tasks/expire",
        client=client,
        **auth,
        **kw,
    )


def _ids(fake: FakeCloudTasks) -> list[str]:
    return [name.rsplit("/", 1)[1] for name in fake.tasks]


def test_the_task_is_an_authenticated_json_post_at_the_due_time() -> None:
    fake = FakeCloudTasks()
    _scheduler(fake).schedule("expire-act_1", DUE, PAYLOAD)
    [task] = fake.tasks.values()
    assert task.name == f"{QUEUE}/tasks/expire-act_1"
    assert task.schedule_time == DUE
    request = task.http_request
    assert (
        request.url == "https://x.example/api/tasks/expire" and request.http_method.name == "POST"
    )
    assert json.loads(request.body) == PAYLOAD
    assert dict(request.headers) == {
        "Content-Type": "application/json",
        "Authorization": "Bearer tok",
    }


def test_oidc_mode_asks_cloud_tasks_for_a_token_and_sends_no_header() -> None:
    fake = FakeCloudTasks()
    auth = {
        "oidc_service_account_email": "tasks@p.iam.gserviceaccount.com",
        "oidc_audience": "https://aud",
    }
    _scheduler(fake, auth=auth).schedule("expire-act_1", DUE, PAYLOAD)
    request = next(iter(fake.tasks.values())).http_request
    assert request.oidc_token.service_account_email == "tasks@p.iam.gserviceaccount.com"
    assert request.oidc_token.audience == "https://aud"
    assert "Authorization" not in request.headers


def test_scheduling_the_same_timer_again_is_one_task() -> None:
    fake = FakeCloudTasks()
    scheduler = _scheduler(fake)
    scheduler.schedule("expire-act_1", DUE, PAYLOAD)
    scheduler.schedule("expire-act_1", DUE, PAYLOAD)
    assert _ids(fake) == ["expire-act_1"]
    assert [c[0] for c in fake.calls] == ["create", "create", "get"]


def test_a_new_due_moves_to_a_successor_named_after_it() -> None:
    fake = FakeCloudTasks()
    scheduler = _scheduler(fake)
    scheduler.schedule("expire-act_1", DUE, PAYLOAD)
    later = DUE + timedelta(minutes=5)
    scheduler.schedule("expire-act_1", later, PAYLOAD)
    scheduler.schedule("expire-act_1", later, PAYLOAD)  # and that is idempotent too
    assert _ids(fake) == ["expire-act_1", successor_ids("expire-act_1", later)[0]]


def test_re_arming_while_the_task_is_being_delivered_early_gets_a_fresh_task() -> None:
    fake = FakeCloudTasks()
    scheduler = _scheduler(fake)
    scheduler.schedule("expire-act_1", DUE, PAYLOAD)
    fake.dispatch("expire-act_1", finished=False)  # the handler answers "early" and re-arms
    scheduler.schedule("expire-act_1", DUE, PAYLOAD)
    fake.dispatch("expire-act_1", finished=True)
    first, second = successor_ids("expire-act_1", DUE)[:2]
    assert _ids(fake) == [first]
    fake.dispatch(first, finished=True)  # early again: the next successor
    scheduler.schedule("expire-act_1", DUE, PAYLOAD)
    assert _ids(fake) == [second]


def test_cancel_deletes_the_primary_and_ignores_not_found() -> None:
    fake = FakeCloudTasks()
    scheduler = _scheduler(fake)
    scheduler.schedule("expire-act_1", DUE, PAYLOAD)
    scheduler.cancel("expire-act_1")
    scheduler.cancel("expire-act_1")
    scheduler.cancel("expire-never")
    assert fake.tasks == {}


@pytest.mark.parametrize(
    "error",
    [
        api_exceptions.ServiceUnavailable("down"),
        api_exceptions.PermissionDenied("no"),
        api_exceptions.MethodNotImplemented("emulator"),
    ],
    ids=["unavailable", "permission", "unimplemented"],
)
def test_google_errors_become_unavailable(error: Exception) -> None:
    fake = FakeCloudTasks()
    fake.fail_with = error
    scheduler = _scheduler(fake)
    for call in (
        lambda: scheduler.schedule("expire-act_1", DUE, PAYLOAD),
        lambda: scheduler.cancel("expire-act_1"),
    ):
        with pytest.raises(Unavailable) as caught:
            call()
        assert "Cloud Tasks" in caught.value.detail and type(error).__name__ in caught.value.detail
        assert isinstance(caught.value.__cause__, api_exceptions.GoogleAPIError)


def test_the_client_is_created_on_first_use_only() -> None:
    made: list[FakeCloudTasks] = []

    def factory() -> FakeCloudTasks:
        made.append(FakeCloudTasks())
        return made[-1]

    scheduler = _scheduler(client_factory=factory)
    assert made == []
    scheduler.schedule("a", DUE, {})
    scheduler.cancel("a")
    assert len(made) == 1


def test_a_failing_factory_is_unavailable_too() -> None:
    from google.auth.exceptions import DefaultCredentialsError

    def factory() -> Any:
        raise DefaultCredentialsError("no ADC here")

    scheduler = _scheduler(client_factory=factory)
    with pytest.raises(Unavailable):
        scheduler.schedule("a", DUE, {})


@pytest.mark.parametrize(
    "name, expected", [("expire-act_0af3", "expire-act_0af3"), ("a_B-9", "a_B-9")]
)
def test_allowed_names_are_kept(name: str, expected: str) -> None:
    assert task_id(name) == expected


@pytest.mark.parametrize("name", ["expire-act:1", "expire act/1", "é", "x" * 600, "a.b"])
def test_other_names_are_sanitised_distinctly_and_leave_room_for_successors(name: str) -> None:
    tid = task_id(name)
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in tid)
    assert tid != task_id(name + "!")
    for candidate in [tid] + successor_ids(name, DUE):
        assert len(candidate) <= MAX_TASK_ID_LENGTH


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of"),
        ({"token_provider": lambda: "t", "oidc_service_account_email": "a@b"}, "exactly one of"),
        ({"token_provider": lambda: "t", "oidc_audience": "x"}, "oidc_audience"),
        ({"token_provider": lambda: "t", "client": object(), "client_factory": object}, "not both"),
    ],
)
def test_bad_construction_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CloudTasksScheduler(project="p", location="l", queue="q", target_url="https://x/", **kwargs)


def test_naive_due_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _scheduler(FakeCloudTasks()).schedule("a", datetime(2026, 1, 1), {})
