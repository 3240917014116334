"""A Cloud Functions CloudEvent target for the push test of test_pubsub_bus.py.

functions-framework loads this file by path (as ``pubsub_push_function`` in
``sys.modules``); the test then sets :data:`CONSUMER`. A Pub/Sub push request
(``{"message": ..., "subscription": ...}``) is turned into a CloudEvent by the
framework itself, as on Cloud Functions; an exception answers 500, so Pub/Sub
redelivers.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from vettra.adapters.pubsub_consumer import PubSubConsumer

CONSUMER: PubSubConsumer | None = None


@functions_framework.cloud_event
def receive(cloud_event: Any) -> None:
    if CONSUMER is None:
        raise RuntimeError("the test did not set CONSUMER")
    CONSUMER.handle_cloud_event(cloud_event)
