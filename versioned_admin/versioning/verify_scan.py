"""What verify reports, and the keyset scans it is built from (no table is ever read whole)."""

from __future__ import annotations

import datetime as dt
import enum
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Row,
    Table,
    and_,
    bindparam,
    func,
    literal,
    null,
    select,
    tuple_,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import sqltypes

from .codec import decode
from .writer import same_value

T = TypeVar("T")
Pk = tuple[Any, ...]
# Keys per IN list: well under every database's parameter limit, whatever the batch size.
CHUNK = 500
_SHOWN = 60  # characters of a value quoted in a problem's detail


class Invariant(enum.StrEnum):
    """One promise the history makes; verify reports each record that breaks one."""

    LIVE_DIFFERS = "live_differs"
    DELETED_BUT_LIVE = "deleted_but_live"
    MISSING_LIVE = "missing_live"
    NUMBERING = "numbering"
    MISSING_CHANGESET = "missing_changeset"
    ORPHAN_CHANGESET = "orphan_changeset"
    CURRENT_ROW = "current_row"
    COLLECTIONS_ROW = "collections_row"
    MAP_ENTRIES = "map_entries"
    UNVERSIONED = "unversioned"
    SCHEMA_DRIFT = "schema_drift"

    def __str__(self) -> str:
        return self.value

    @property
    def warning(self) -> bool:
        """True for findings that are legitimate on their own (they fail only with strict)."""
        return self in (Invariant.UNVERSIONED, Invariant.SCHEMA_DRIFT)

    @property
    def description(self) -> str:
        """What the invariant promises, in a sentence."""
        return _DESCRIPTIONS[self.value]


_DESCRIPTIONS = MappingProxyType({
    "live_differs": "the live row equals its record's latest version",
    "deleted_but_live": "a record whose latest version is a delete has no live row",
    "missing_live": "a record whose latest version is not a delete has a live row",
    "numbering": "a record's versions are numbered exactly 1..n",
    "missing_changeset": "every version's changeset exists",
    "orphan_changeset": "every changeset has at least one version",
    "current_row": "rows strategy: one current row, the latest, per record not deleted; "
                   "none for a deleted one",
    "collections_row": "rows strategy: every version has its row of collections",
    "map_entries": "a version's map entries are the previous version's with its own changes",
    "unversioned": "warning: a live row with no history (older than versioning: it gets a "
                   "version on its next change)",
    "schema_drift": "warning: the latest version lacks a column the table has now, or has one "
                    "the table no longer has",
})


@dataclass(frozen=True)
class Problem:
    """One record that breaks one invariant."""

    model: str  # the model's class name, or "changeset" for orphan changesets
    pk: Pk
    invariant: Invariant
    detail: str

    @property
    def warning(self) -> bool:
        """True if this finding fails verification only in strict mode."""
        return self.invariant.warning

    def __str__(self) -> str:
        key = self.pk[0] if len(self.pk) == 1 else self.pk
        label = "warning " if self.warning else ""
        return f"{self.model} {key!r}: {label}{self.invariant}: {self.detail}"


@dataclass
class Tally:
    """What a run has read so far."""

    records: int = 0
    versions: int = 0


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def keys_in(cols: Sequence[Any], keys: Sequence[tuple[Any, ...]]) -> ColumnElement[bool]:
    """``cols IN keys`` that every database answers from an index on ``cols``."""
    if len(cols) == 1:
        return cols[0].in_([k[0] for k in keys])
    # SQLite answers a bare row-value IN (it renders as IN (VALUES ...)) by scanning the whole
    # table; the IN on the first column lets it search the index.
    return and_(cols[0].in_(list({k[0] for k in keys})), tuple_(*cols).in_(list(keys)))


def _after(key: Sequence[Column[Any]], last: Pk) -> ColumnElement[bool]:
    """Rows after ``last`` in ``key`` order (a row-value comparison for composite keys)."""
    params = [bindparam(None, v, type_=c.type) for c, v in zip(key, last, strict=True)]
    if len(key) == 1:
        return key[0] > params[0]
    return tuple_(*key) > tuple_(*params)


def keyset(
    session: Session,
    key: Sequence[Column[Any]],
    columns: Sequence[Any],
    batch_size: int,
) -> Iterator[Sequence[Row[Any]]]:
    """The rows of ``key``'s table in key order, ``batch_size`` at a time (key columns first)."""
    # Each batch starts after the last key seen, so every query walks the primary key index
    # from a known point: no OFFSET, no cursor held open, memory bounded by the batch.
    last: Pk | None = None
    while True:
        stmt = select(*key, *columns).order_by(*key).limit(batch_size)
        if last is not None:
            stmt = stmt.where(_after(key, last))
        rows = session.connection().execute(stmt).all()
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        last = tuple(rows[-1][: len(key)])


def show(value: Any) -> str:
    """A value as quoted in a problem's detail: repr, shortened."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _single_precision(type_: Any) -> bool:
    base = type_
    while isinstance(base, sqltypes.TypeDecorator):
        base = base.impl_instance
    precision = getattr(base, "precision", None)
    return isinstance(base, sqltypes.REAL) or (
        isinstance(base, sqltypes.Float) and precision is not None and precision <= 24
    )


def same_stored(stored: Any, live: Any, type_: Any) -> bool:
    """True if a live column value, encoded as the writer encodes it, is what a version stored."""
    if stored == live:
        return True
    # The writer may have stored a value as the application set it, which the database hands
    # back normalized (Decimal scale, time zone, float precision): compare the values.
    try:
        old, new = decode(stored, type_), decode(live, type_)
    except (ValueError, TypeError, KeyError, ArithmeticError):
        return False
    if same_value(old, new):
        return True
    if isinstance(old, float) and isinstance(new, float) and _single_precision(type_):
        return struct.pack("<f", old) == struct.pack("<f", new)
    if isinstance(old, dt.datetime) and isinstance(new, dt.datetime):
        # A database without time zones (SQLite) keeps an aware value's wall time only.
        if (old.tzinfo is None) != (new.tzinfo is None):
            return old.replace(tzinfo=None) == new.replace(tzinfo=None)
    return False


def numbering(name: str, pk: Pk, last: int | None, number: int) -> Problem | None:
    """The problem with version ``number`` following ``last`` (None: the record's first)."""
    if last is None:
        if number == 1:
            return None
        return Problem(name, pk, Invariant.NUMBERING, f"the first version is {number}, not 1")
    if number == last + 1:
        return None
    if number == last:
        return Problem(name, pk, Invariant.NUMBERING, f"version {number} is stored twice")
    gap = f"{last + 1}" if number == last + 2 else f"{last + 1} to {number - 1}"
    return Problem(name, pk, Invariant.NUMBERING,
                   f"version {number} follows version {last}: {gap} missing")


def missing_changesets(
    session: Session, changesets: Table, found: Sequence[tuple[Pk, int, int | None]]
) -> Iterator[tuple[Pk, int, int]]:
    """(pk, version, changeset id) of each version whose changeset id names no changeset."""
    ids = sorted({cs for _pk, _n, cs in found if cs is not None})
    present: set[int] = set()
    for part in chunks(ids):
        stmt = select(changesets.c.id).where(changesets.c.id.in_(part))
        present.update(int(i) for i in session.connection().execute(stmt).scalars())
    for pk, number, cs_id in found:
        if cs_id is not None and cs_id not in present:
            yield pk, number, cs_id


def orphan_changesets(
    session: Session, changesets: Table, referencing: Sequence[Column[Any]], batch_size: int
) -> Iterator[Problem]:
    """Changesets that no history row refers to, in keyset batches of the changeset table."""
    cs = changesets
    # One probe per history table as a scalar subquery with LIMIT 1 (an index lookup on its
    # changeset_id, stopped by COALESCE at the first table that has one): PostgreSQL may turn
    # a NOT EXISTS into a hashed plan that reads a whole history table once per batch.
    probes = [select(literal(1)).where(col == cs.c.id).limit(1).scalar_subquery()
              for col in referencing]
    used: Any = (probes[0] if len(probes) == 1 else func.coalesce(*probes)) if probes else null()
    for rows in keyset(session, [cs.c.id], [cs.c.issued_at, used.label("used")], batch_size):
        for row in rows:
            if row.used is not None:
                continue
            when = row.issued_at.isoformat(" ", "seconds") if row.issued_at else "?"
            yield Problem("changeset", (int(row.id),), Invariant.ORPHAN_CHANGESET,
                          f"changeset {row.id} (issued {when}) has no version in any history "
                          "table")
