"""Waiting out transient failures (Redis or Kafka unreachable): back off, retry, never commit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis.exceptions as rx
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, RetriableError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT: tuple[type[BaseException], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.BusyLoadingError,
    rx.ReadOnlyError,
    rx.TryAgainError,
    KafkaConnectionError,
    KafkaTimeoutError,
    RetriableError,  # kafka-python's own class of errors worth retrying
)


class Interrupted(Exception):
    """Asked to stop while waiting out an outage: the batch was not applied, not committed."""


def retry_transient(
    fn: Callable[[], T],
    stop: threading.Event,
    *,
    what: str,
    initial_s: float,
    max_s: float,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    delay = initial_s
    attempt = 0
    while True:
        try:
            return fn()
        except TRANSIENT as e:
            attempt += 1
            if on_retry is not None:
                on_retry(e)
            # First failure and then every tenth: an outage should be visible, not a flood.
            if attempt == 1 or attempt % 10 == 0:
                log.warning(
                    "%s failed (%s: %s); retry %d in %.2fs",
                    what,
                    type(e).__name__,
                    e,
                    attempt,
                    delay,
                )
            if stop.wait(delay):
                raise Interrupted(what) from e
            delay = min(delay * 2, max_s)
