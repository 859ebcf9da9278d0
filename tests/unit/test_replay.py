"""Reading a user's data file (`streamfit produce`, file sources): formats, header lines,
quotes and integers, found out and said, never guessed silently."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import orjson
import pandas as pd
import pytest

from streamfit.errors import StreamError
from streamfit.streams.replay import ReadOptions, read_events

# shared/ lies beside the repository (a worktree may be one folder deeper)
_ABOVE = Path(__file__).resolve().parents[3:5]
SMS_FILE = next(
    (
        p
        for p in (d / "shared/datasets/sms_spam/SMSSpamCollection.gz" for d in _ABOVE)
        if p.exists()
    ),
    _ABOVE[0] / "shared/datasets/sms_spam/SMSSpamCollection.gz",
)


def rows(table: object) -> list[dict[str, object]]:
    return [orjson.loads(e) for e in table.events]  # type: ignore[attr-defined]


@pytest.mark.skipif(not SMS_FILE.exists(), reason="the shared SMS Spam Collection is not here")
def test_the_sms_file_loses_no_row_and_keeps_its_first_message(tmp_path: Path) -> None:
    """A headerless TSV, gzipped, with no .tsv in its name, whose messages hold quotes."""
    path = tmp_path / "SMSSpamCollection.gz"
    shutil.copy(SMS_FILE, path)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    table = read_events(path)
    assert (table.format, table.compressed, table.header_found) == ("tsv", True, False)
    assert len(table.events) == len(lines) == 5574
    found = rows(table)
    assert found[0] == {"column_1": "ham", "column_2": lines[0].split("\t", 1)[1]}
    quoted = [i for i, line in enumerate(lines) if '\t"' in line]
    assert quoted  # messages that start with a quote, and do not end with one
    for i in quoted:
        assert found[i]["column_2"] == lines[i].split("\t", 1)[1]
    assert "no header line" in table.describe()


@pytest.mark.parametrize(
    ("name", "text", "expected", "header"),
    [
        (
            "with_header.csv",
            "id,city,y\n1,Oslo,0\n2,Lima,1\n",
            {"id": 1, "city": "Oslo", "y": 0},
            True,
        ),
        (
            "no_header.csv",
            "1,Oslo,0\n2,Lima,1\n",
            {"column_1": 1, "column_2": "Oslo", "column_3": 0},
            False,
        ),
        (
            "labels_first.csv",
            "ham,hello there\nspam,win now\nham,ok\n",
            {"column_1": "ham", "column_2": "hello there"},
            False,
        ),
        (
            "with_header.tsv",
            "label\tsentence\n0\ta fine film\n1\tdull\n",
            {"label": 0, "sentence": "a fine film"},
            True,
        ),
        (
            "no_header.tsv",
            "0\ta fine film\n1\tdull\n",
            {"column_1": 0, "column_2": "a fine film"},
            False,
        ),
        ("events.jsonl", '{"id": 1, "x": 2.5}\n{"id": 2}\n', {"id": 1, "x": 2.5}, None),
        ("events", '{"id": 1, "x": 2.5}\n{"id": 2}\n', {"id": 1, "x": 2.5}, None),
        ("semicolons.txt", "a;b\n1;x\n2;y\n", {"a": 1, "b": "x"}, True),
    ],
)
def test_formats_and_header_lines_are_found(
    tmp_path: Path, name: str, text: str, expected: dict[str, object], header: bool | None
) -> None:
    path = tmp_path / name
    path.write_text(text)
    table = read_events(path)
    assert rows(table)[0] == expected
    assert table.header_found is header
    zipped = tmp_path / (name + ".gz")
    zipped.write_bytes(gzip.compress(text.encode()))
    assert rows(read_events(zipped))[0] == expected


def test_what_the_user_says_wins(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    assert rows(read_events(path, ReadOptions(header=False)))[0] == {
        "column_1": "a",
        "column_2": "b",
    }
    named = read_events(path, ReadOptions(names=["p", "q"]))
    assert rows(named) == [{"p": "a", "q": "b"}, {"p": "1", "q": "2"}]  # columns of text
    assert rows(read_events(path, ReadOptions(format="tsv", header=True)))[0] == {"a,b": "1,2"}


def test_integers_stay_integers_and_missing_values_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,wave,price\n4500,1,2.5\n4501,,3.0\n")
    assert rows(read_events(path)) == [
        {"id": 4500, "wave": 1, "price": 2.5},
        {"id": 4501, "price": 3.0},
    ]
    parquet = tmp_path / "x.parquet"
    pd.DataFrame({"id": pd.array([1, None], dtype="Int64"), "s": ["a", "b"]}).to_parquet(parquet)
    assert rows(read_events(parquet)) == [{"id": 1, "s": "a"}, {"s": "b"}]


def test_well_formed_quotes_are_still_read_as_quotes(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('id,text\n1,"hello, world"\n2,"say ""hi"""\n')
    assert rows(read_events(path)) == [
        {"id": 1, "text": "hello, world"},
        {"id": 2, "text": 'say "hi"'},
    ]


def test_an_unknown_format_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"just some words without any separator\n")
    with pytest.raises(StreamError, match="pass --format"):
        read_events(path)


def test_a_row_that_cannot_be_read_plays_in_its_place_and_becomes_a_dead_letter(
    tmp_path: Path,
) -> None:
    from streamfit.batch import Messages
    from streamfit.codecs import decode_json

    path = tmp_path / "sensors.csv"
    path.write_text("id,temp\n1,20.5\n2,21.0,oops,more\n3,\n4,22.0\n5,1,2,3\n")
    table = read_events(path)
    assert table.events[0] == b'{"id":1,"temp":20.5}'
    assert table.events[1] == b"2,21.0,oops,more"
    assert [orjson.loads(e) for e in (table.events[2], table.events[3])] == [
        {"id": 3},
        {"id": 4, "temp": 22.0},
    ]
    assert table.events[4] == b"5,1,2,3" and len(table.events) == 5
    assert [place for place, _ in table.set_aside] == [1, 4]
    assert "2 rows are not rows of the file's columns (line 3: 4 fields, 2 columns" in (
        table.describe()
    )
    decoded = decode_json(Messages.from_values(table.events), None, "classification")
    assert [letter.offset for letter in decoded.dead_letters] == [1, 4]
    assert len(decoded.batch) == 3

    lines = tmp_path / "sensors.jsonl"
    lines.write_text('{"id": 1}\n{not json\n[1, 2]\n{"id": 4, "temp": 2.5}\n')
    table = read_events(lines)
    assert table.events == [b'{"id":1}', b"{not json", b"[1, 2]", b'{"id":4,"temp":2.5}']
    assert [place for place, _ in table.set_aside] == [1, 2]
    assert "2 rows are not JSON objects (line 2, line 3)" in table.describe()
