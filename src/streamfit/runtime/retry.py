"""Outages: pause while a service is down, retry with backoff, resume by itself.

``Outages.call(what, action)`` runs ``action``. While it raises ``ServiceUnavailableError``
(the broker or the database cannot be reached: the errors the Kafka and database boundaries
raise for those conditions), it logs once, on one line, ``<what>: <error>; pausing and
retrying until it is back``, keeps the consumer in its group without taking events
(``Pausable.keepalive``), and retries with a backoff of 0.5 s doubling up to 5 s. When the
action succeeds it logs ``<what>: back after N s; resuming`` and resumes the source. Once a
stop was requested, an outage is waited out for at most ``give_up_after_stop`` seconds, then
the error is raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from streamfit.errors import BrokerUnavailableError, ServiceUnavailableError, StreamError
from streamfit.streams.base import Pausable

__all__ = ["Outages"]

log = logging.getLogger("streamfit.worker")

T = TypeVar("T")


class Outages:
    """Retries actions through outages of the services they need.

    >>> outages = Outages(source=None, stop=threading.Event())
    >>> attempts = []
    >>> def flaky() -> str:
    ...     attempts.append(1)
    ...     if len(attempts) < 2:
    ...         raise ServiceUnavailableError("database unavailable")
    ...     return "done"
    >>> outages.call("writing", flaky, first_delay=0.01)
    'done'
    >>> outages.resumed_at > 0
    True
    """

    def __init__(
        self, source: object, stop: threading.Event, give_up_after_stop: float = 30.0
    ) -> None:
        self.source = source
        self.stop = stop
        self.give_up_after_stop = give_up_after_stop
        self.resumed_at = time.monotonic()  # when a service last came back

    def call(self, what: str, action: Callable[[], T], first_delay: float = 0.5) -> T:
        """``action()``, retried while a service it needs is unavailable."""
        delay = first_delay
        since: float | None = None
        while True:
            try:
                result = action()
            except (ServiceUnavailableError, StreamError) as exc:
                if isinstance(exc, StreamError) and not _transient(exc):
                    raise
                if since is None:
                    since = time.monotonic()
                    # one line, whatever the driver's message holds (psycopg's has newlines)
                    reason = " ".join(str(exc).split())
                    log.warning("%s: %s; pausing and retrying until it is back", what, reason)
                if self.stop.is_set() and time.monotonic() - since > self.give_up_after_stop:
                    raise
                self._pause(min(delay, 5.0))
                delay = min(delay * 2, 5.0)
                continue
            if since is not None:
                log.warning("%s: back after %.1f s; resuming", what, time.monotonic() - since)
                self.resumed_at = time.monotonic()
                if isinstance(self.source, Pausable):
                    self.source.resume()
            return result

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if isinstance(self.source, Pausable):
                self.source.keepalive()
            time.sleep(min(0.5, left))


def _transient(exc: StreamError) -> bool:
    """A broker out of reach, which ``streams.kafka`` tells from librdkafka's error codes."""
    return isinstance(exc, BrokerUnavailableError)
