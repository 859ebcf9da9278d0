"""Where a worker's outputs go: the results table, the predictions topic, the dead letters.

``Outputs`` writes a scored batch (a results row per event in the database, a record per
event on the predictions topic), writes dead letters (the ``dead_letters`` table, and the
dead-letter topic when there is one: a JSON record with the reason and the original bytes
in base64, ``payload_base64``, up to ``MAX_RECORD_PAYLOAD`` bytes; past that it is null,
and the table alone has them), flushes the topics before a checkpoint, and closes them.
Database writes go through ``Outages.call``, so a database that is down pauses the worker
instead of failing it.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy.typing as npt
import orjson

from streamfit.batch import Batch, DeadLetter
from streamfit.models.base import Task
from streamfit.runtime.keys import keyed
from streamfit.runtime.records import prediction_records
from streamfit.runtime.retry import Outages
from streamfit.spec.model import PipelineSpec
from streamfit.store import ModelPredictions, Store
from streamfit.streams.base import OutRecord, RecordSink

__all__ = ["MAX_RECORD_PAYLOAD", "Outputs"]

#: The largest payload a dead-letter record carries: its base64 keeps the record below the
#: 1,000,000 bytes a Kafka producer sends by default (``message.max.bytes``).
MAX_RECORD_PAYLOAD = 512 * 1024

log = logging.getLogger("streamfit.worker")

_DEAD_LETTERS_LOGGED = 10  # dead letters logged one by one, before one line a thousand


class Outputs:
    """The results table, the predictions topic and the dead letters of one pipeline."""

    def __init__(
        self,
        spec: PipelineSpec,
        store: Store,
        outages: Outages,
        predictions: RecordSink | None = None,
        dead_letters: RecordSink | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.outages = outages
        self.predictions = predictions
        self.dead_letters = dead_letters
        self.results_table = spec.outputs.results_table_name(spec.name)
        self.dead_letters_written = 0

    def scored(
        self,
        batch: Batch,
        predictions: list[ModelPredictions],
        labels: npt.NDArray[Any] | None,
        table: str | None = None,
        task: Literal["classification", "regression", "anomaly"] | None = None,
    ) -> None:
        """A results row (in ``table``: by default the pipeline's results table) and a
        prediction record per event of ``batch``, both keyed by the spec's ``key`` field where
        the event has it."""
        batch = keyed(batch, self.spec.key)
        if self.spec.outputs.write_results:
            self.outages.call(
                "writing results",
                lambda: self.store.write_results(
                    table or self.results_table, batch, predictions, labels, task or self.spec.task
                ),
            )
        if self.predictions is not None:
            self.predictions.write(prediction_records(batch, predictions))

    def label_results(
        self,
        table: str,
        where: tuple[Sequence[str], npt.NDArray[Any], npt.NDArray[Any]],
        labels: npt.NDArray[Any],
        task: str,
    ) -> None:
        """The results rows at ``where`` (topics, partitions, offsets) get their labels,
        which came after them (``runtime.delayed``)."""
        if not self.spec.outputs.write_results:
            return
        kind: Task = "regression" if task == "regression" else "classification"
        self.outages.call(
            "writing labels", lambda: self.store.write_labels(table, where, labels, kind)
        )

    def dead_letter(self, letters: list[DeadLetter]) -> None:
        """Set ``letters`` aside, with their reasons and original bytes."""
        self.outages.call("writing dead letters", lambda: self.store.write_dead_letters(letters))
        if self.dead_letters is not None:
            self.dead_letters.write([self._record(letter) for letter in letters])
        before = self.dead_letters_written
        self.dead_letters_written += len(letters)
        # each of the first ones, then one line a thousand: a stream of bad events must not
        # drown the log (the table and the topic have every one)
        for letter in letters[: max(0, _DEAD_LETTERS_LOGGED - before)]:
            log.warning(
                "dead letter %s[%d]@%d: %s",
                letter.topic,
                letter.partition,
                letter.offset,
                letter.reason,
            )
        if self.dead_letters_written > _DEAD_LETTERS_LOGGED and (
            self.dead_letters_written // 1000 > before // 1000
        ):
            last = letters[-1]
            log.warning(
                "%d dead letters so far (every one is in the dead_letters table); the last, "
                "%s[%d]@%d: %s",
                self.dead_letters_written,
                last.topic,
                last.partition,
                last.offset,
                last.reason,
            )

    def _record(self, letter: DeadLetter) -> OutRecord:
        payload = letter.value or b""
        value = {
            "pipeline": self.spec.name,
            "reason": letter.reason,
            "topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "payload_bytes": len(payload),
            "payload_base64": base64.b64encode(payload).decode()
            if len(payload) <= MAX_RECORD_PAYLOAD
            else None,
        }
        return OutRecord(letter.key, orjson.dumps(value))

    def flush(self) -> None:
        """Make every record written so far durable (retried through outages)."""
        for sink in (self.predictions, self.dead_letters):
            if sink is not None:
                self.outages.call("flushing outputs", sink.flush)

    def close(self) -> None:
        for sink in (self.predictions, self.dead_letters):
            if sink is not None:
                sink.close()
