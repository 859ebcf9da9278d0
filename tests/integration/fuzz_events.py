"""Generated hostile streams for the fuzz test: what is sent, and what must become of each.

``fuzz_stream(seed)`` makes good events (ten numbers and a category deciding a binary label)
interleaved with every kind of hostile message, each tagged with the rule that applies to it
(``Expect``): a dead letter with a reason, or an event the pipeline accepts by its rules and
scores (with its original bytes kept in ``event_payload`` where its row cannot hold it as it
came). The same seed gives the same stream, byte for byte.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from streamfit.limits import MAX_DEPTH, MAX_EVENT_BYTES, MAX_NAME_CHARS

WEIGHTS = np.array([1.5, -2.0, 0.7, 0.0, 1.1, -0.4, 0.0, 0.9, -1.3, 0.2])
CATEGORY_EFFECT = {"red": 1.0, "green": 0.0, "blue": -1.0}


@dataclass(frozen=True, slots=True)
class Expect:
    """What must become of one message.

    ``dead``: a dead letter whose reason starts with ``reason``. Otherwise it is scored: one
    results row, whose ``label`` is ``label``; ``payload`` says whether the row must keep the
    event's bytes in ``event_payload`` (True), must not (False), or may (None: the rule
    depends on which fields got a column first).
    """

    kind: str
    dead: bool = False
    reason: str = ""
    label: str | None = None
    payload: bool | None = False


@dataclass(slots=True)
class Stream:
    messages: list[bytes | None] = field(default_factory=list)
    expected: list[Expect] = field(default_factory=list)

    def add(self, message: bytes | None, expect: Expect) -> None:
        self.messages.append(message)
        self.expected.append(expect)


def good_events(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Ten normal numbers ``x0..x9`` and a category ``c`` that decide ``y``."""
    X = rng.normal(size=(n, len(WEIGHTS))).round(5)
    colors = rng.choice(list(CATEGORY_EFFECT), size=n)
    effect = np.array([CATEGORY_EFFECT[c] for c in colors])
    y = (X @ WEIGHTS + effect + rng.normal(scale=0.3, size=n) > 0).astype(int)
    return [
        {**{f"x{i}": v for i, v in enumerate(row)}, "c": str(color), "y": int(label)}
        for row, color, label in zip(X.tolist(), colors.tolist(), y.tolist(), strict=True)
    ]


def held_out(n: int, seed: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Clean events the pipeline never sees, and their labels: how the model is judged."""
    events = good_events(n, np.random.default_rng(seed))
    return [{k: v for k, v in e.items() if k != "y"} for e in events], [e["y"] for e in events]


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.ascii_letters, k=n))


def _nested(depth: int) -> bytes:
    """An object nested ``depth`` levels deep (itself the first), with good fields."""
    inner = b'{"a":' * (depth - 1) + b"1" + b"}" * (depth - 1)
    return b'{"x0":0.5,"c":"red","deep":' + inner + b"}"


def fuzz_stream(seed: int, good: int = 7000) -> tuple[Stream, list[dict[str, Any]]]:
    """The hostile stream, and its good labeled events alone, in the same order (what a clean
    run learns from)."""
    rng = random.Random(seed)
    events = good_events(good, np.random.default_rng(seed))
    hostile = _hostile(rng, events)
    total = good + len(hostile)
    # hostile messages first (the events that decide types and columns), then spread out
    places = set(range(40)) | set(rng.sample(range(40, total), len(hostile) - 40))
    stream = Stream()
    bad, fine = iter(hostile), iter(events)
    for position in range(total):
        if position in places:
            stream.add(*next(bad))
        else:
            event = next(fine)
            stream.add(orjson.dumps(event), Expect("good", label=str(event["y"])))
    return stream, events


def _hostile(rng: random.Random, events: list[dict[str, Any]]) -> list[tuple[bytes | None, Expect]]:
    out: list[tuple[bytes | None, Expect]] = []

    def base() -> dict[str, Any]:  # the fields of a good event, no label
        event = dict(rng.choice(events))
        del event["y"]
        return event

    def dead(message: bytes | None, kind: str, reason: str) -> None:
        out.append((message, Expect(kind, dead=True, reason=reason)))

    def scored(event: Any, kind: str, payload: bool | None, label: str | None = None) -> None:
        message = event if isinstance(event, bytes) else orjson.dumps(event)
        out.append((message, Expect(kind, label=label, payload=payload)))

    # -- dead letters ----------------------------------------------------------------------
    for _ in range(1000):  # random bytes
        raw = rng.randbytes(rng.randint(1, 200))
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            dead(raw, "random bytes", "not JSON")
        else:
            assert type(parsed) is not dict  # a seed that makes an object: pick another
            dead(raw, "random bytes", "not a JSON object")
    for _ in range(600):  # truncated JSON
        whole = orjson.dumps(rng.choice(events))
        dead(whole[: rng.randint(1, len(whole) - 1)], "truncated", "not JSON")
    for depth in [MAX_DEPTH + 1, MAX_DEPTH + 2, 100, 254, 255, 256, 300, 1000, 1023, 1024, 5000]:
        for _ in range(10):
            dead(_nested(depth), "deep", f"nested deeper than {MAX_DEPTH} levels")
    for value in [b"[]", b"[1,2]", b'"text"', b"12", b"null", b"true", b"3.5", b'[{"y":1}]']:
        for _ in range(40):
            dead(value, "not an object", "not a JSON object")
    for _ in range(60):  # invalid UTF-8 and lone surrogates
        text = orjson.dumps(base())
        invalid = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])
        dead(b'{"s":"' + invalid + b'",' + text[1:], "invalid UTF-8", "not JSON")
        dead(b'{"s":"\\ud800",' + text[1:], "lone surrogate", "not JSON")
    for token in [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"9" * 400]:
        for _ in range(15):  # NaN, Infinity and numbers beyond a double: not JSON numbers
            dead(b'{"x1":' + token + b',"c":"red","y":1}', "not a number", "not JSON")
    for target in ["[1]", '{"a":1}', "1.5", "-0.25"]:
        for _ in range(40):
            dead(b'{"x0":1,"c":"red","y":' + target.encode() + b"}", "bad target", "target 'y'")
    for _ in range(30):
        dead(b"", "empty", "empty payload")
        dead(None, "no payload", "no payload (null value)")
    for _ in range(4):  # past the size limit
        big = b'{"c":"red","s":"' + b"a" * (MAX_EVENT_BYTES + rng.randint(1, 5000)) + b'"}'
        dead(big, "too large", f"payload of {len(big)} bytes")
    for _ in range(30):  # raw control characters in a string
        dead(b'{"c":"red","s":"a\x00b"}', "raw NUL", "not JSON")

    # -- accepted by the rules: scored ------------------------------------------------------
    for label in ["maybe", 7]:  # an unseen label is a class of its own
        for _ in range(10):
            scored(base() | {"y": label}, "unseen label", False, label=str(label))
    for _ in range(500):  # no target, or a null one: "score me"
        event = base()
        if rng.random() < 0.3:
            event["y"] = None
        scored(event, "no target", False)
    for bad in ["abc", "", "NaN", "Infinity", "-inf", [1, 2], {"a": 1}, "1e999", 1e200, -1e300]:
        for _ in range(15):  # a value that does not fit its field: missing for the model
            event = base() | {"y": rng.randint(0, 1)}
            event[f"x{rng.randint(0, 9)}"] = bad
            # a number too large for a feature is still a number for its column
            kept = isinstance(bad, float)
            scored(event, "wrong type", not kept, label=str(event["y"]))
    for _ in range(40):  # NUL in strings, names of quotes and backslashes, duplicate keys
        event = base()
        event["c"] = rng.choice(["red", "green", "blue"]) + "\x00"
        scored(event, "NUL", True)
        event = base() | {'quote"d': 1.0, "back\\slash": "v", "": 2, "spaced out": 3}
        scored(event, "odd names", None)
        text = orjson.dumps(base())
        scored(text[:-1] + b',"x0":1.5,"x0":-0.5}', "duplicate keys", False)
    for _ in range(40):  # names no column is made for: control characters, too long
        event = base() | {rng.choice(["a\x00b", "tab\there", "\x1f"]): 1}
        scored(event, "control name", True)
        event = base() | {"n" * (MAX_NAME_CHARS + rng.randint(1, 300)): "v"}
        scored(event, "long name", True)
    for _ in range(40):  # names that fold or cut to one column
        event = base() | {"X0": 1.0, "C": "x", "Ã": 1, "a" * 70 + "1": 1, "a" * 70 + "2": 2}
        scored(event, "colliding names", None)
    for i in range(200):  # thousands of distinct names: 10,000 in all, half of them learned
        event = base() | {f"name_{i}_{j}_{_text(rng, 6)}": rng.random() for j in range(50)}
        label = None
        if i % 2:
            event["y"] = rng.randint(0, 1)
            label = str(event["y"])
        scored(event, "many names", None, label=label)
    for _ in range(5):  # strings of a million characters
        scored(base() | {"blob": _text(rng, 1_000_000)}, "1 MB string", None)
    for _ in range(10):  # nesting at the limit
        scored(_nested(MAX_DEPTH), "deep at the limit", None)
    rng.shuffle(out)
    return out
