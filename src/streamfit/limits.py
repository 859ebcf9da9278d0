"""The limits that let no input stop a pipeline, in one place.

Every event is either used or set aside as a dead letter with its reason and its original
bytes; these limits decide which, and what happens to the parts of an event that go past them.
Past a limit that is not a dead letter, the event is still scored and stored, and its results
row keeps the event's original JSON in ``event_payload`` (NULL for the rows that need it not).

======================================  =========  =============================================
limit                                   value      past it
======================================  =========  =============================================
``MAX_EVENT_BYTES``: an event's size    1 MiB      dead letter: ``payload of N bytes; at most
                                                   1048576 are accepted``
``MAX_DEPTH``: objects and arrays       64 levels  dead letter: ``nested deeper than 64
nested in an event (itself level 1)                levels``
``MAX_NAME_CHARS``: a field name's      256        the field gets no column and no feature
length                                             (``event_payload`` keeps it)
field names with a control character    none       the same: no column, no feature
(U+0000 to U+001F)
``MAX_BATCH_FIELDS``: fields read into  2,000      the most frequent fields of the poll get
columns from one poll                              columns; the others none (``event_payload``)
``MAX_FEATURE_FIELDS``: fields the      1,000      later new fields are not features (counted,
featurizer learns, per pipeline                    logged once)
``MAX_RESULT_FIELDS``: event fields     250        later new fields get no column
with a column in a results table                   (``event_payload``; counted, logged once)
``MAX_STATS_FIELDS``: fields with       200        later new fields have no statistics (counted,
statistics, per pipeline                           logged once)
``MAX_CORRELATED_FIELDS``: numeric      50         later numeric fields have no correlations
fields with correlations
``MAX_KEY_BYTES``: the spec's ``key:``  1 KiB      the event keeps its Kafka key (predictions
field's value, as text                             topic, ``event_key``)
``MAX_TEXT_CHARS``: characters of a     65,536     the rest of the text is not read as
text field read as features                        features (counted in
                                                   ``Featurizer.truncated_texts``; stored whole)
``MAX_MAGNITUDE``: a numeric feature's  1e100      missing for the model, counted as invalid
value                                              (stored as it is)
... and a regression target             1e100      dead letter: ``target 'y' is 1e+300; a
                                                   regression target is at most 1e+100 in
                                                   magnitude``
======================================  =========  =============================================

``MAX_MAGNITUDE`` keeps the featurizer's running moments finite (a value near the largest
double would overflow them, and every later event would be scaled with infinities) and a
regression learner's steps usable.

``MAX_RESULT_FIELDS`` is what every supported database can hold in one row whatever the
values: PostgreSQL refuses a row of more than 8,160 bytes (about 440 long text values, each
stored aside with an 18-byte pointer) and MariaDB's InnoDB one of more than 8,126 (about 350
long text values, 20 bytes each), and each results table also has its own columns and two per
challenger model.

Strings have no limit of their own: an event's size bounds them. They are stored whole; a
category's value is hashed whole, a text's first ``MAX_TEXT_CHARS`` characters are tokenized
(a 1 MB text costs what 64 KiB do). Text stored in the
database never holds NUL (PostgreSQL cannot), on every database alike: each NUL is stored as
U+FFFD, and a results row where that changed one of the event's values keeps the original in
``event_payload``.

>>> MAX_DEPTH, MAX_RESULT_FIELDS <= MAX_FEATURE_FIELDS <= MAX_BATCH_FIELDS
(64, True)
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_BATCH_FIELDS",
    "MAX_CORRELATED_FIELDS",
    "MAX_DEPTH",
    "MAX_EVENT_BYTES",
    "MAX_FEATURE_FIELDS",
    "MAX_KEY_BYTES",
    "MAX_MAGNITUDE",
    "MAX_NAME_CHARS",
    "MAX_RESULT_FIELDS",
    "MAX_STATS_FIELDS",
    "MAX_TEXT_CHARS",
]

MAX_EVENT_BYTES: Final = 1 << 20
MAX_DEPTH: Final = 64
MAX_NAME_CHARS: Final = 256
MAX_BATCH_FIELDS: Final = 2_000
MAX_FEATURE_FIELDS: Final = 1_000
MAX_RESULT_FIELDS: Final = 250
MAX_MAGNITUDE: Final = 1e100
MAX_KEY_BYTES: Final = 1024
MAX_STATS_FIELDS: Final = 200
MAX_CORRELATED_FIELDS: Final = 50
MAX_TEXT_CHARS: Final = 65_536
