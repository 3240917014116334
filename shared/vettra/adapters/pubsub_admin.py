"""Create a topic with its subscription and dead-letter topic (tests, dev, and the shape
Terraform declares: docs/pubsub.md §Topology).

For topic ``T``: the dead-letter topic ``T-dlq``; the subscription ``T-sub`` (pull, or
push when ``push_endpoint`` is given) with a dead-letter policy (after
``max_delivery_attempts`` deliveries Pub/Sub republishes the message to ``T-dlq``
and acks it) and a retry policy (exponential backoff between redeliveries); and
``T-dlq-sub`` on the dead-letter topic, because a topic without a subscription
keeps nothing: dead letters would be lost.

Everything is idempotent (ALREADY_EXISTS is fine; an existing subscription is
left as it is). In Google Cloud, Pub/Sub's service agent
(``service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com``) also needs
``roles/pubsub.publisher`` on ``T-dlq`` and ``roles/pubsub.subscriber`` on
``T-sub`` for dead-lettering to work; the emulator checks no IAM. Google
exceptions become :class:`~vettra.domain.errors.Unavailable`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..domain.errors import Unavailable
from .pubsub_bus import TOPIC_ID_PATTERN

log = logging.getLogger("vettra.pubsub")

DLQ_SUFFIX = "-dlq"
SUBSCRIPTION_SUFFIX = "-sub"
#: Pub/Sub accepts 5..100 (https://cloud.google.com/pubsub/docs/handling-failures).
MAX_DELIVERY_ATTEMPTS = 5
ACK_DEADLINE_S = 60
MIN_BACKOFF_S = 10
MAX_BACKOFF_S = 600
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Topology:
    """Full resource paths of what :func:`ensure_topology` made."""

    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str


def dead_letter_topic_id(topic_id: str) -> str:
    return topic_id + DLQ_SUFFIX


def subscription_id(topic_id: str) -> str:
    return topic_id + SUBSCRIPTION_SUFFIX


def ensure_topology(
    project: str,
    topic_id: str,
    *,
    publisher: Any = None,
    subscriber: Any = None,
    push_endpoint: str | None = None,
    push_service_account: str | None = None,
    max_delivery_attempts: int = MAX_DELIVERY_ATTEMPTS,
    ack_deadline_s: int = ACK_DEADLINE_S,
    min_backoff_s: float = MIN_BACKOFF_S,
    max_backoff_s: float = MAX_BACKOFF_S,
    ordering: bool = True,
) -> Topology:
    """Topic, dead-letter topic, subscription with dead-letter and retry policies, and the
    dead-letter topic's own subscription (module docstring). Clients default to new ones
    (honouring ``PUBSUB_EMULATOR_HOST``)."""
    if not TOPIC_ID_PATTERN.match(topic_id):
        raise ValueError(f"not a Pub/Sub topic id: {topic_id!r}")
    if not 5 <= max_delivery_attempts <= 100:
        raise ValueError("max_delivery_attempts must be 5..100 (Pub/Sub's bounds)")
    if not 10 <= ack_deadline_s <= 600:
        raise ValueError("ack_deadline_s must be 10..600 (Pub/Sub's bounds)")
    if not 0 <= min_backoff_s <= max_backoff_s <= 600:
        raise ValueError("need 0 <= min_backoff_s <= max_backoff_s <= 600")
    if push_service_account and not push_endpoint:
        raise ValueError("push_service_account needs push_endpoint")
    try:
        if publisher is None or subscriber is None:
            from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

            publisher = publisher or PublisherClient()
            subscriber = subscriber or SubscriberClient()
        topology = Topology(
            topic=f"projects/{project}/topics/{topic_id}",
            subscription=f"projects/{project}/subscriptions/{subscription_id(topic_id)}",
            dead_letter_topic=f"projects/{project}/topics/{dead_letter_topic_id(topic_id)}",
            dead_letter_subscription=(
                f"projects/{project}/subscriptions/"
                f"{subscription_id(dead_letter_topic_id(topic_id))}"
            ),
        )
        _create_topic(publisher, topology.topic)
        _create_topic(publisher, topology.dead_letter_topic)
        _create_subscription(
            subscriber,
            {
                "name": topology.dead_letter_subscription,
                "topic": topology.dead_letter_topic,
                "ack_deadline_seconds": ack_deadline_s,
            },
        )
        request: dict[str, Any] = {
            "name": topology.subscription,
            "topic": topology.topic,
            "ack_deadline_seconds": ack_deadline_s,
            "enable_message_ordering": ordering,
            "dead_letter_policy": {
                "dead_letter_topic": topology.dead_letter_topic,
                "max_delivery_attempts": max_delivery_attempts,
            },
            "retry_policy": {
                "minimum_backoff": {"seconds": int(min_backoff_s), "nanos": _nanos(min_backoff_s)},
                "maximum_backoff": {"seconds": int(max_backoff_s), "nanos": _nanos(max_backoff_s)},
            },
        }
        if push_endpoint:
            push: dict[str, Any] = {"push_endpoint": push_endpoint}
            if push_service_account:
                push["oidc_token"] = {"service_account_email": push_service_account}
            request["push_config"] = push
        _create_subscription(subscriber, request)
    except google_errors() as exc:
        raise unavailable("creating the topology", exc) from exc
    return topology


def _nanos(seconds: float) -> int:
    return int(round((seconds - int(seconds)) * 1e9))


def _create_topic(publisher: Any, path: str) -> None:
    from google.api_core import exceptions as api_exceptions

    try:
        publisher.create_topic(request={"name": path}, timeout=CALL_TIMEOUT_S)
    except api_exceptions.AlreadyExists:
        log.debug("topic exists", extra={"topic": path})


def _create_subscription(subscriber: Any, request: dict[str, Any]) -> None:
    from google.api_core import exceptions as api_exceptions

    try:
        subscriber.create_subscription(request=request, timeout=CALL_TIMEOUT_S)
    except api_exceptions.AlreadyExists:
        log.debug("subscription exists (left as it is)", extra={"subscription": request["name"]})


def google_errors() -> tuple[type[BaseException], ...]:
    """What the client library raises: api_core errors (gRPC statuses, retry exhaustion),
    auth errors (no credentials), raw gRPC errors."""
    import grpc
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    return (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, grpc.RpcError)


def unavailable(operation: str, exc: BaseException) -> Unavailable:
    """The domain error for a failed call; names the kind of error only, never Google's
    message (it may name resources)."""
    return Unavailable(f"Pub/Sub {operation} failed: {type(exc).__name__}")
