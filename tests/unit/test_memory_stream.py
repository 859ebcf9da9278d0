"""The in-process stream keeps Kafka's contract: partitions, offsets, groups, seek."""

from __future__ import annotations

import time

from streamfit.streams.base import OutRecord, RecordSink, Source
from streamfit.streams.memory import MemoryBroker, MemorySink, MemorySource


def test_meets_the_protocols() -> None:
    broker = MemoryBroker()
    assert isinstance(MemorySource(broker, ["t"], "g"), Source)
    assert isinstance(MemorySink(broker, "t"), RecordSink)


def test_reads_across_topics_in_append_order() -> None:
    broker = MemoryBroker()
    broker.append("a", [b"1"])
    broker.append("b", [b"2"])
    broker.append("a", [b"3"])
    msgs = MemorySource(broker, ["a", "b"], "g").poll(10, 0)
    assert msgs is not None
    assert msgs.values == [b"1", b"2", b"3"]
    assert msgs.topics.tolist() == ["a", "b", "a"]
    assert msgs.offsets.tolist() == [0, 0, 1]


def test_poll_respects_max_records_and_returns_none_when_drained() -> None:
    broker = MemoryBroker()
    broker.append("t", [b"%d" % i for i in range(5)])
    source = MemorySource(broker, ["t"], "g")
    first = source.poll(3, 0)
    second = source.poll(3, 0)
    assert first is not None and second is not None
    assert len(first) == 3 and len(second) == 2
    assert source.poll(3, 0) is None


def test_a_new_consumer_resumes_after_the_committed_offsets() -> None:
    broker = MemoryBroker()
    broker.append("t", [b"a", b"b", b"c"])
    source = MemorySource(broker, ["t"], "g")
    msgs = source.poll(2, 0)
    assert msgs is not None
    source.commit(msgs.next_offsets())
    again = MemorySource(broker, ["t"], "g").poll(10, 0)
    assert again is not None and again.values == [b"c"]


def test_seek_rewinds() -> None:
    broker = MemoryBroker()
    broker.append("t", [b"a", b"b", b"c"])
    source = MemorySource(broker, ["t"], "g")
    source.poll(10, 0)
    source.seek({("t", 0): 1})
    msgs = source.poll(10, 0)
    assert msgs is not None and msgs.values == [b"b", b"c"]


def test_partitions_by_key() -> None:
    broker = MemoryBroker(partitions=4)
    broker.append("t", [b"v"] * 40, keys=[b"k%d" % (i % 8) for i in range(40)])
    msgs = MemorySource(broker, ["t"], "g").poll(100, 0)
    assert msgs is not None and len(msgs) == 40
    assert len(set(msgs.partitions.tolist())) > 1
    assert sum(broker.end_offsets("t").values()) == 40


def test_poll_waits_at_most_its_timeout() -> None:
    source = MemorySource(MemoryBroker(), ["t"], "g")
    started = time.monotonic()
    assert source.poll(10, 0.05) is None
    assert time.monotonic() - started < 1.0


def test_sink_writes_on_flush() -> None:
    broker = MemoryBroker()
    sink = MemorySink(broker, "out")
    sink.write([OutRecord(b"k", b"v")])
    assert broker.read("out") == []
    sink.flush()
    assert broker.read("out") == [(b"k", b"v")]
