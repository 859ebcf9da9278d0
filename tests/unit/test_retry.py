"""``Outages``: the pause and resume lines a person reads when a service goes away."""

from __future__ import annotations

import logging
import threading

import pytest

from streamfit.errors import DatabaseUnavailableError
from streamfit.runtime.retry import Outages


def test_the_pause_line_is_one_line_whatever_the_driver_says(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """psycopg's message for a server that went away spans three lines; the worker's line
    saying what it waits for must stay one (log readers and the outage tests read lines)."""
    attempts: list[int] = []

    def write() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise DatabaseUnavailableError(
                "writing results: database unavailable: server closed the connection "
                "unexpectedly\n\tThis probably means the server terminated abnormally\n"
                "\tbefore or while processing the request."
            )
        return "written"

    outages = Outages(source=None, stop=threading.Event())
    with caplog.at_level(logging.WARNING, logger="streamfit.worker"):
        assert outages.call("writing results", write, first_delay=0.01) == "written"
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines  # one pause, one resume, whatever the retries
    pause, back = lines
    assert "\n" not in pause and "\t" not in pause
    assert pause.startswith("writing results: writing results: database unavailable: ")
    assert pause.endswith("processing the request.; pausing and retrying until it is back")
    assert back.startswith("writing results: back after ")
