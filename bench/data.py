"""Synthetic event streams for the benchmarks, generated in chunks and produced to Kafka fast.

Two datasets, both JSON objects with a binary label ``y`` drawn from a logistic model of the
features, so every learner has something real to learn:

``numeric10``
    Ten standard-normal features ``x0..x9``.
``mixed30``
    Thirty features: five categoricals ``c0..c4`` (cardinalities 1k, 5k, 20k, 50k and 100k,
    skewed so that a few values are frequent and most are rare), 24 numerics ``n0..n23``
    (normal, log-normal amounts, Poisson counts, on different scales) and a short free-text
    field ``text`` of 2 to 8 words. Every feature is missing (JSON ``null``) in about 10% of
    the events. The label depends on six numerics, on two categoricals (a random effect per
    value) and on sentiment words in the text.

Generation is vectorized per column with numpy and serialized with orjson, in chunks of 100k
events, each with its own seed; chunks are cached as JSON lines in ``bench/.cache/`` (made in
parallel processes the first time), so a run reads them back instead of generating again and
10M events never sit in memory at once. ``produce`` writes chunks with a batching,
lz4-compressing producer (round-robin over the topic's partitions) and waits for every ack.

``unlabeled_every=k`` drops the label from every k-th event: on a topic that is both a
``train`` and a ``score`` topic, those are the events a streamfit worker scores.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

__all__ = [
    "CATEGORICALS",
    "DATASETS",
    "NUMERICS_MIXED",
    "NUMERICS_NUMERIC",
    "create_topic",
    "events",
    "produce",
]

DATASETS = ("numeric10", "mixed30")

NUMERICS_NUMERIC = tuple(f"x{i}" for i in range(10))
WEIGHTS = np.array([1.5, -2.0, 0.7, 0.0, 1.1, -0.4, 0.0, 0.9, -1.3, 0.2])

CARDINALITIES = (1_000, 5_000, 20_000, 50_000, 100_000)
CATEGORICALS = tuple(f"c{i}" for i in range(len(CARDINALITIES)))
NUMERICS_MIXED = tuple(f"n{i}" for i in range(24))
TEXT = "text"
MISSING = 0.10
POSITIVE = ("good", "great", "excellent", "love", "happy", "fast")
NEGATIVE = ("bad", "poor", "awful", "hate", "broken", "slow")

CHUNK = 100_000
#: Generated events are cached here (JSON lines, one file per chunk); bump VERSION when the
#: generators change.
CACHE = Path(__file__).resolve().parent / ".cache"
VERSION = 1


def _numeric_chunk(rng: np.random.Generator, n: int) -> tuple[list[str], list[list[object]]]:
    X = rng.normal(size=(n, len(WEIGHTS)))
    p = 1.0 / (1.0 + np.exp(-(X @ WEIGHTS)))
    y = (rng.random(n) < p).astype(np.int64)
    columns: list[list[object]] = [col.tolist() for col in X.round(5).T]
    columns.append(y.tolist())
    return [*NUMERICS_NUMERIC, "y"], columns


_VOCAB: dict[str, np.ndarray] = {}


def _vocabularies() -> dict[str, np.ndarray]:
    """Category values per field and the text vocabulary (same for every chunk)."""
    if not _VOCAB:
        rng = np.random.default_rng(7)
        for name, card in zip(CATEGORICALS, CARDINALITIES, strict=True):
            _VOCAB[name] = np.array([f"{name}v{i}" for i in range(card)], dtype=object)
            _VOCAB[f"{name}_effect"] = rng.normal(scale=1.0, size=card)
        syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "fe"]
        words = {a + b + c for a in syllables for b in syllables for c in ("", "n", "r", "s", "l")}
        _VOCAB["words"] = np.array(sorted(words)[:600] + list(POSITIVE + NEGATIVE), dtype=object)
    return _VOCAB


def _mixed_chunk(rng: np.random.Generator, n: int) -> tuple[list[str], list[list[object]]]:
    vocab = _vocabularies()
    numerics = np.empty((n, len(NUMERICS_MIXED)))
    numerics[:, :10] = rng.normal(size=(n, 10)) * np.array([1, 2, 5, 0.5, 10, 1, 3, 1, 100, 0.1])
    numerics[:, 10:16] = rng.lognormal(mean=3.0, sigma=1.0, size=(n, 6))
    numerics[:, 16:22] = rng.poisson(lam=[1, 3, 5, 10, 20, 50], size=(n, 6))
    numerics[:, 22:24] = rng.random(size=(n, 2))
    codes = [
        (card * rng.random(n) ** 3).astype(np.int64) for card in CARDINALITIES
    ]  # skewed: a few frequent values, a long tail
    words = vocab["words"]
    n_words = rng.integers(2, 9, size=n)
    word_idx = (len(words) * rng.random((n, 8)) ** 1.5).astype(np.int64)
    n_sentiment = len(POSITIVE) + len(NEGATIVE)
    sentiment = rng.random(n) < 0.4  # 40% of texts carry one sentiment word
    sentiment_word = rng.integers(0, n_sentiment, size=n)
    word_idx[sentiment, 0] = len(words) - n_sentiment + sentiment_word[sentiment]
    text_sign = np.where(sentiment, np.where(sentiment_word < len(POSITIVE), 1.0, -1.0), 0.0)
    z = numerics[:, :10] / np.array([1, 2, 5, 0.5, 10, 1, 3, 1, 100, 0.1])
    logit = (
        1.2 * z[:, 0]
        - 0.9 * z[:, 1]
        + 0.6 * z[:, 4]
        + 0.5 * (np.log(numerics[:, 10]) - 3.0)
        - 0.08 * (numerics[:, 18] - 5.0)
        + 0.7 * z[:, 8]
        + vocab["c0_effect"][codes[0]]
        + 0.8 * vocab["c2_effect"][codes[2]]
        + 1.5 * text_sign
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    def with_missing(values: np.ndarray) -> list[object]:
        out = values.astype(object)
        out[rng.random(n) < MISSING] = None
        return out.tolist()

    columns: list[list[object]] = []
    for j in range(len(NUMERICS_MIXED)):
        col = numerics[:, j]
        columns.append(with_missing(col.round(4) if j < 16 else col.astype(np.int64)))
    for name, code in zip(CATEGORICALS, codes, strict=True):
        columns.append(with_missing(vocab[name][code]))
    texts = np.array(
        [
            " ".join(ws[:k])
            for ws, k in zip(words[word_idx].tolist(), n_words.tolist(), strict=True)
        ],
        dtype=object,
    )
    columns.append(with_missing(texts))
    columns.append(y.tolist())
    return [*NUMERICS_MIXED, *CATEGORICALS, TEXT, "y"], columns


def _chunk_path(dataset: str, index: int, seed: int, unlabeled_every: int) -> Path:
    variant = f"-u{unlabeled_every}" if unlabeled_every else ""
    return CACHE / f"{dataset}-v{VERSION}-s{seed}{variant}" / f"{index:05d}.jsonl"


def _write_chunk(job: tuple[str, int, int, int]) -> Path:
    """Generate chunk ``index`` (its own seed, so chunks are independent) into the cache."""
    dataset, index, seed, unlabeled_every = job
    path = _chunk_path(dataset, index, seed, unlabeled_every)
    if path.exists():
        return path
    make = {"numeric10": _numeric_chunk, "mixed30": _mixed_chunk}[dataset]
    rng = np.random.default_rng([seed, index])
    names, columns = make(rng, CHUNK)
    dumps = orjson.dumps
    lines = []
    for i, row in enumerate(zip(*columns, strict=True)):
        event = dict(zip(names, row, strict=True))
        if unlabeled_every and (index * CHUNK + i) % unlabeled_every == unlabeled_every - 1:
            del event["y"]
        lines.append(dumps(event))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(b"\n".join(lines))
    tmp.replace(path)
    return path


def events(dataset: str, n: int, seed: int = 42, unlabeled_every: int = 0) -> Iterator[list[bytes]]:
    """The first ``n`` JSON events of ``dataset``, in chunks (from the cache, generated there
    in parallel the first time). The same arguments always give the same events."""
    count = -(-n // CHUNK)
    jobs = [(dataset, i, seed, unlabeled_every) for i in range(count)]
    missing = [job for job in jobs if not _chunk_path(*job).exists()]
    if missing:
        print(f"  generating {len(missing) * CHUNK:,} {dataset} events ...", file=sys.stderr)
        with multiprocessing.get_context("spawn").Pool(
            min(len(missing), os.cpu_count() or 1)
        ) as pool:
            pool.map(_write_chunk, missing)
    left = n
    for job in jobs:
        lines = _chunk_path(*job).read_bytes().split(b"\n")
        yield lines[:left] if left < len(lines) else lines
        left -= len(lines)


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` (replication 1) and wait until it exists."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=5).topics.get(topic)
        if meta is not None and meta.error is None and len(meta.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} did not appear")


def produce(bootstrap: str, topic: str, chunks: Iterator[list[bytes]], partitions: int = 1) -> int:
    """Write every event of ``chunks`` to ``topic``, round-robin over ``partitions`` (so one
    partition keeps the order), and wait until all are acknowledged. Returns the count."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 20_000,
            "batch.size": 4_000_000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
            "compression.type": "lz4",
            "enable.idempotence": True,
        }
    )
    sent = 0
    put = producer.produce
    for chunk in chunks:
        for value in chunk:
            while True:
                try:
                    put(topic, value, partition=sent % partitions)
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
        producer.poll(0)
    remaining = producer.flush(300)
    if remaining:
        raise RuntimeError(f"{remaining} benchmark events were not delivered to {topic}")
    return sent
