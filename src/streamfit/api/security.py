"""API keys: who may write, and (when reads are keyed) who may read.

Keys come from ``STREAMFIT_API_KEYS`` and from a file (``STREAMFIT_API_KEYS_FILE``, or
``streamfit serve --api-keys FILE``). Each key has rights:

==========  ====================================================
``predict`` ``POST .../predict``
``events``  ``POST .../events`` (events into the pipeline's topics)
``admin``   ``POST .../promote``, ``.../rollback``
``read``    every ``GET`` under ``/v1`` and ``/metrics``, when reads are keyed
==========  ====================================================

In the variable, keys are separated by commas, each optionally followed by ``:`` and its
rights joined by ``+``; in the file, one key a line, its rights after it separated by spaces
(``#`` starts a comment). A key without rights has them all. A key is at least 16 characters
of letters, digits and ``-_.~`` (what ``secrets.token_urlsafe`` makes).

>>> keys = ApiKeys.parse("k1-aaaaaaaaaaaaaaaa:predict+events, k2-bbbbbbbbbbbbbbbb")
>>> keys.rights_of("k1-aaaaaaaaaaaaaaaa") == {"predict", "events"}
True
>>> sorted(keys.rights_of("k2-bbbbbbbbbbbbbbbb"))
['admin', 'events', 'predict', 'read']
>>> keys.rights_of("nope") is None
True

A request gives its key as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Without one:
401; with a key that lacks the right: 403. A key is checked against every configured key with
``hmac.compare_digest`` over their SHA-256 digests, all of them every time, so the time taken
says nothing about how much of a key was right, nor which key matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from streamfit.errors import SpecError

__all__ = ["RIGHTS", "ApiKeys", "keyed_reads_from_environment", "keys_from_environment"]

RIGHTS = frozenset({"predict", "events", "admin", "read"})
_KEY = re.compile(r"^[A-Za-z0-9\-_.~]{16,256}$")


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    rights: frozenset[str]


class ApiKeys:
    """The configured keys and their rights (only their digests are kept)."""

    def __init__(self, entries: Iterable[tuple[str, Iterable[str]]] = ()) -> None:
        self._entries: list[_Entry] = []
        for key, rights in entries:
            self.add(key, rights)

    def add(self, key: str, rights: Iterable[str] = ()) -> None:
        if not _KEY.match(key):
            raise SpecError(
                "an API key is 16 to 256 letters, digits and '-_.~' "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe())')",
                "api_keys",
            )
        wanted = frozenset(rights) or RIGHTS
        unknown = wanted - RIGHTS
        if unknown:
            raise SpecError(
                f"unknown API key rights {sorted(unknown)}; rights are {sorted(RIGHTS)}",
                "api_keys",
            )
        self._entries.append(_Entry(_digest(key), wanted))

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        """Keys as ``STREAMFIT_API_KEYS`` writes them (see the module docstring)."""
        keys = cls()
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            key, _, rights = item.partition(":")
            keys.add(key.strip(), [r.strip() for r in rights.split("+") if r.strip()])
        return keys

    def read_file(self, path: str | Path) -> None:
        """Add the keys of a key file (see the module docstring)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"cannot read the API key file {path}: {exc}", "api_keys") from exc
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if words:
                self.add(words[0], words[1:])

    def rights_of(self, key: str) -> frozenset[str] | None:
        """The rights of ``key``, or None if it is not a configured key. Compares the key's
        digest with every configured one, in constant time each, without stopping early."""
        digest = _digest(key)
        found: frozenset[str] | None = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.digest) and found is None:
                found = entry.rights
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def keys_from_environment(file: str | Path | None = None) -> ApiKeys:
    """The keys of ``STREAMFIT_API_KEYS`` and of the key file (``file``, else
    ``STREAMFIT_API_KEYS_FILE``)."""
    import os

    keys = ApiKeys.parse(os.environ.get("STREAMFIT_API_KEYS", ""))
    path = file or os.environ.get("STREAMFIT_API_KEYS_FILE", "").strip()
    if path:
        keys.read_file(path)
    return keys


def keyed_reads_from_environment() -> bool:
    """``STREAMFIT_API_KEYED_READS=1``: reads need a key with the right ``read`` too."""
    import os

    return os.environ.get("STREAMFIT_API_KEYED_READS", "").strip().lower() in ("1", "true", "yes")
