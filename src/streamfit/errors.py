"""One exception tree for streamfit.

::

    StreamfitError
    ├── SpecError            a pipeline spec or setting is invalid (carries the key path)
    ├── DecodeError          an event cannot be decoded (becomes a dead letter, never a crash)
    ├── FeatureError         features cannot be built from a batch
    ├── ModelError           a model cannot be built, trained, or its state read
    │   └── StateFormatError a state blob has an unknown version or is corrupt
    ├── StreamError          a source or sink failed (delivery refused, consumer fenced, ...)
    │   ├── BrokerUnavailableError    the broker cannot be reached or did not answer in time
    │   └── GroupMovedOnError  the consumer group took this member's partitions meanwhile
    ├── StoreError           the database failed
    │   └── DatabaseUnavailableError  the database server cannot be reached, or is busy
    └── ServiceUnavailableError  a dependency is down; retry after ``retry_after`` seconds
        ├── BrokerUnavailableError    (also a StreamError)
        └── DatabaseUnavailableError  (also a StoreError)

A ``ServiceUnavailableError`` is transient: it is raised where streamfit meets the broker or
the database (``streamfit.streams.kafka``, ``streamfit.store``), from the client library's
error codes, and the worker pauses and retries until the service is back. Every other error
is not.

Every name ends in ``Error``; wrap a library's exception with ``raise X(msg) from exc``.

>>> issubclass(StateFormatError, StreamfitError)
True
>>> error = BrokerUnavailableError("all brokers down")
>>> isinstance(error, StreamError), isinstance(error, ServiceUnavailableError)
(True, True)
"""

from __future__ import annotations

__all__ = [
    "BrokerUnavailableError",
    "DatabaseUnavailableError",
    "DecodeError",
    "FeatureError",
    "GroupMovedOnError",
    "ModelError",
    "ServiceUnavailableError",
    "SpecError",
    "StateFormatError",
    "StoreError",
    "StreamError",
    "StreamfitError",
]


class StreamfitError(Exception):
    """Root of every error streamfit raises on purpose."""


class SpecError(StreamfitError):
    """A pipeline spec is invalid. ``path`` names the bad key, e.g. ``models.0.params``."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class DecodeError(StreamfitError):
    """An event's bytes cannot be turned into a row."""


class FeatureError(StreamfitError):
    """Features cannot be built."""


class ModelError(StreamfitError):
    """A model cannot be built, trained or restored."""


class StateFormatError(ModelError):
    """A model state blob is corrupt or of a version this release cannot read."""


class StreamError(StreamfitError):
    """A source or a sink failed."""


class StoreError(StreamfitError):
    """The database failed."""


class ServiceUnavailableError(StreamfitError):
    """A service (broker, database) is unreachable; try again after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class BrokerUnavailableError(StreamError, ServiceUnavailableError):
    """The Kafka broker cannot be reached or did not answer in time (librdkafka said so)."""


class DatabaseUnavailableError(StoreError, ServiceUnavailableError):
    """The database server cannot be reached, dropped the connection, or is busy."""


class GroupMovedOnError(StreamError):
    """The consumer group went on without this member (its session ended, e.g. during an
    outage): what it did since its last checkpoint cannot be committed and is done again."""
