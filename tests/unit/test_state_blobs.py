"""State blobs: those written by earlier releases still load, and a bad one fails only with
``StateFormatError``, whichever kind of state reads it.

``tests/unit/state_blobs/`` holds blobs of each kind of state (built-in models, both kinds of
evaluator, featurizers) written by ``write_blobs`` below at commit 2cea747, before the three
state formats shared one envelope. Every one must load and ``state()`` of what was loaded must
give the committed bytes back (a model's, less the parameters retired since: ``same_state``).
The same blobs, cut short, with a byte flipped, with other magic or a later version, or with a
well-framed header that does not describe them, must raise ``StateFormatError`` and nothing else.

``python tests/unit/test_state_blobs.py DIR`` writes the same blobs with the code at hand.
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import scipy.sparse as sp

from streamfit.batch import Messages
from streamfit.codecs.json import decode_json
from streamfit.errors import StateFormatError
from streamfit.evaluation import ClassificationEvaluator, RegressionEvaluator
from streamfit.features.featurizer import Featurizer
from streamfit.features.moments import WARM_UP
from streamfit.models import LinearRegression, LogisticRegression, model_from_state
from streamfit.models import state as state_format
from streamfit.spec.model import FeaturesSpec

BLOBS = Path(__file__).parent / "state_blobs"

#: Each blob's file and the class whose ``from_state`` reads it.
READERS: dict[str, Any] = {
    "logistic_binary.sfst": LogisticRegression,
    "logistic_softmax.sfst": LogisticRegression,
    "logistic_unfitted.sfst": LogisticRegression,
    "linear_regression.sfst": LinearRegression,
    "evaluator_classification.sfev": ClassificationEvaluator,
    "evaluator_binary.sfev": ClassificationEvaluator,
    "evaluator_regression.sfev": RegressionEvaluator,
    "featurizer.sffeats": Featurizer,
    "featurizer_empty.sffeats": Featurizer,
}


def blob(name: str) -> bytes:
    return (BLOBS / name).read_bytes()


def test_every_committed_blob_has_a_reader() -> None:
    assert sorted(p.name for p in BLOBS.iterdir()) == sorted(READERS)


#: Constructor parameters the built-in models no longer take (since the per-event learners):
#: a blob that names one still loads, and writes the same state back without it.
RETIRED_PARAMS = ("micro_batch",)


def same_state(written: bytes, old: bytes) -> bool:
    """``written`` holds what ``old`` held, but for the retired parameters (a model's), or
    in a later version of its format (a featurizer's: version 1 had no text settings nor
    document frequencies, and loads as the text it made then)."""
    if written == old:
        return True
    if old.startswith(b"SFFEATS\x00"):
        return same_featurizer(written, old)
    if not old.startswith(state_format.MAGIC):
        return False
    before, after = state_format.decode_state(old), state_format.decode_state(written)
    params = {k: v for k, v in before.params.items() if k not in RETIRED_PARAMS}
    return (
        after.params == params
        and (after.model, after.kind, after.classes) == (before.model, before.kind, before.classes)
        and after.counters == before.counters
        and after.arrays.keys() == before.arrays.keys()
        and all(np.array_equal(after.arrays[k], before.arrays[k]) for k in before.arrays)
    )


def same_featurizer(written: bytes, old: bytes) -> bool:
    """A version-1 featurizer blob, loaded and written again as version 2: the same header
    but for the new keys, the same moments, no document frequencies, and the first values
    of its fields unknown (NaN)."""
    version = struct.unpack_from("<H", old, 8)[0]
    if version != 1 or struct.unpack_from("<H", written, 8)[0] != 2:
        return False
    old_header, old_payload = header_and_payload(old)
    new_header, new_payload = header_and_payload(written)
    text = new_header["spec"].pop("text")
    return (
        text == {"bigrams": False, "weighting": "tf"}
        and new_header.pop("documents") == []
        and new_header.pop("frequencies") == 0
        and new_header.pop("first_values") == WARM_UP
        and new_header == old_header
        and new_payload[: len(old_payload)] == old_payload  # the moments; no frequencies
        and np.isnan(np.frombuffer(new_payload[len(old_payload) :], "<f8")).all()
    )


def header_and_payload(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from("<I", data, 10)
    return json.loads(data[14 : 14 + length]), data[14 + length : -4]


@pytest.mark.parametrize("name", sorted(READERS))
def test_an_earlier_blob_loads_and_writes_back_the_same_bytes(name: str) -> None:
    old = blob(name)
    loaded = READERS[name].from_state(old)
    assert same_state(loaded.state(), old)


@pytest.mark.parametrize("name", [n for n in sorted(READERS) if n.endswith(".sfst")])
def test_an_earlier_model_blob_loads_by_the_name_in_its_header(name: str) -> None:
    model = model_from_state(blob(name))
    assert type(model) is READERS[name]
    assert same_state(model.state(), blob(name))


def test_what_the_earlier_blobs_hold() -> None:
    softmax = LogisticRegression.from_state(blob("logistic_softmax.sfst"))
    assert len(softmax.classes) == 4 and "café" in softmax.classes
    evaluator = ClassificationEvaluator.from_state(blob("evaluator_classification.sfev"))
    assert evaluator.snapshot()["events_seen"] == 400
    featurizer = Featurizer.from_state(blob("featurizer.sffeats"))
    assert featurizer.spec.text.weighting == "tf" and not featurizer.spec.text.bigrams
    assert featurizer.schema == {
        "age": "numeric",
        "zip": "categorical",
        "note": "text",
        "ok": "boolean",
        "city": "categorical",
    }


# -- bad blobs: StateFormatError and nothing else ----------------------------------------------

#: The length of each kind's magic bytes, by file suffix.
MAGIC_LENGTH = {".sfst": 4, ".sfev": 4, ".sffeats": 8}


def readers(name: str) -> list[Callable[[bytes], Any]]:
    """Every reader a blob of this kind can be handed to."""
    cls = READERS[name]
    return [cls.from_state, model_from_state] if name.endswith(".sfst") else [cls.from_state]


def split(name: str) -> tuple[bytes, int, bytes, bytes]:
    """A committed blob's magic, version, header and payload."""
    data, m = blob(name), MAGIC_LENGTH[Path(name).suffix]
    version, length = struct.unpack_from("<HI", data, m)
    start = m + 6
    return data[:m], version, data[start : start + length], data[start + length : -4]


def frame(magic: bytes, version: int, header: bytes, payload: bytes) -> bytes:
    """A blob with a valid checksum around whatever it is given."""
    body = magic + struct.pack("<HI", version, len(header)) + header + payload
    return body + struct.pack("<I", zlib.crc32(body))


def refuses(reader: Callable[[bytes], Any], data: object) -> None:
    with pytest.raises(StateFormatError):
        reader(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_blob_cut_short_anywhere_is_refused(name: str) -> None:
    data = blob(name)
    for reader in readers(name):
        for length in range(len(data)):
            refuses(reader, data[:length])


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_blob_with_any_byte_flipped_is_refused(name: str) -> None:
    data = bytearray(blob(name))
    for reader in readers(name):
        for at in range(len(data)):
            data[at] ^= 0x01
            refuses(reader, bytes(data))
            data[at] ^= 0x01


@pytest.mark.parametrize("name", sorted(READERS))
def test_other_magic_a_later_version_and_other_kinds_are_refused(name: str) -> None:
    magic, version, header, payload = split(name)
    others = [blob(other) for other in READERS if Path(other).suffix != Path(name).suffix]
    bad = [
        frame(b"X" * len(magic), version, header, payload),
        frame(magic, version + 1, header, payload),
        frame(magic, 0, header, payload),
        b"",
        b"\x00" * 64,
        *others,
    ]
    for reader in readers(name):
        for data in bad:
            refuses(reader, data)
        for not_bytes in (None, "SFST", 42):
            refuses(reader, not_bytes)


def mutations(name: str) -> Iterator[bytes]:
    """Well-framed blobs whose header or payload no longer describe each other."""
    magic, version, header, payload = split(name)
    fields = json.loads(header)
    for text in (b"", b"{not json", b"[]", b"null", b"\xff\xfe", b"{}"):
        yield frame(magic, version, text, payload)
    yield frame(magic, version, header, payload[:-1])
    yield frame(magic, version, header, payload + b"\x00")
    for key in fields:
        rest = {k: v for k, v in fields.items() if k != key}
        yield frame(magic, version, json.dumps(rest).encode(), payload)
        for value in (None, 1, -1.5, "x", [], {}, [[1, 2]], [{"name": 1}]):
            changed = {**fields, key: value}
            yield frame(magic, version, json.dumps(changed).encode(), payload)
    for entry in range(len(fields.get("arrays", []))):
        for change in ({"dtype": "<f4"}, {"shape": [-1]}, {"shape": [2**62, 2**62]}, {"name": 7}):
            arrays = [dict(a) for a in fields["arrays"]]
            arrays[entry].update(change)
            changed = {**fields, "arrays": arrays}
            yield frame(magic, version, json.dumps(changed).encode(), payload)


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_header_that_does_not_describe_the_blob_fails_only_with_state_format_error(
    name: str,
) -> None:
    """Some changes leave a state that is still valid (a setting back to its default): those
    may load. Nothing may fail with any other error."""
    for reader in readers(name):
        for data in mutations(name):
            with contextlib.suppress(StateFormatError):
                reader(data)


def write_blobs(out: Path) -> None:
    """The blobs of ``state_blobs/``, made from seeded data."""
    rng = np.random.default_rng(17)
    n_features = 2**8

    def rows(n: int) -> sp.csr_matrix:
        idx = rng.integers(0, n_features, size=(n, 4))
        data = rng.normal(size=(n, 4))
        r = np.repeat(np.arange(n), 4)
        return sp.csr_matrix((data.ravel(), (r, idx.ravel())), shape=(n, n_features))

    X = rows(300)
    binary = LogisticRegression(n_features=n_features, learning_rate=0.2)
    binary.learn_many(X, np.where(X[:, :128].sum(axis=1).A1 > 0, "yes", "no").astype(object))
    (out / "logistic_binary.sfst").write_bytes(binary.state())
    softmax = LogisticRegression(n_features=n_features)
    labels = np.array([0, 1, 2, True, "café"], dtype=object)
    softmax.learn_many(X, labels[rng.integers(0, 5, size=300)])
    (out / "logistic_softmax.sfst").write_bytes(softmax.state())
    linear = LinearRegression(n_features=n_features, l2=0.001)
    linear.learn_many(X, X[:, :40].sum(axis=1).A1 * 2.0 + 1.0)
    (out / "linear_regression.sfst").write_bytes(linear.state())
    unfitted = LogisticRegression(n_features=n_features)
    (out / "logistic_unfitted.sfst").write_bytes(unfitted.state())

    multiclass = ClassificationEvaluator(window=50, auc_bins=64)
    y = rng.choice(np.array(["a", "b", "c"], dtype=object), 400)
    proba = rng.dirichlet(np.ones(3), 400)
    for start in range(0, 400, 70):
        multiclass.update(y[start : start + 70], proba[start : start + 70], ["a", "b", "c"])
    (out / "evaluator_classification.sfev").write_bytes(multiclass.state())
    binary_evaluator = ClassificationEvaluator(window=20, positive_label=True, auc_bins=32)
    truth = rng.random(90) < 0.4
    p = rng.random(90)
    binary_evaluator.update(truth.astype(object), np.column_stack([1 - p, p]), [False, True])
    (out / "evaluator_binary.sfev").write_bytes(binary_evaluator.state())
    regression = RegressionEvaluator(window=30)
    target = rng.normal(size=200)
    regression.update(target, target + rng.normal(scale=0.3, size=200))
    (out / "evaluator_regression.sfev").write_bytes(regression.state())

    spec = FeaturesSpec(
        types={"zip": "categorical", "note": "text"}, hash_bits=12, exclude=["debug_*"]
    )
    featurizer = Featurizer(spec, exclude=["label"])
    columns = zip(
        rng.normal(40, 10, 60).tolist(),
        rng.integers(1000, 1010, 60).tolist(),
        ["good film", "bad", None] * 20,
        [True, False, None] * 20,
        ["Zürich", "Genève", None, "Bern"] * 15,
        strict=True,
    )
    events = [
        {"age": a, "zip": z, "note": t, "ok": b, "label": 1, "debug_x": 3, "city": c}
        for a, z, t, b, c in columns
    ]
    messages = Messages.from_values([orjson.dumps(e) for e in events])
    featurizer.learn_transform(decode_json(messages, "label", "classification").batch)
    (out / "featurizer.sffeats").write_bytes(featurizer.state())
    (out / "featurizer_empty.sffeats").write_bytes(Featurizer(FeaturesSpec()).state())


if __name__ == "__main__":
    write_blobs(Path(sys.argv[1]))
