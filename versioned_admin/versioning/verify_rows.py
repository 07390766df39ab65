"""verify for the rows strategy: each record's rows in order, one current row, its collections."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from .relations import current
from .rows_collections import side_table
from .schema import ModelInfo
from .types import Operation
from .verify_scan import (
    Invariant,
    Pk,
    Problem,
    Tally,
    chunks,
    keys_in,
    keyset,
    missing_changesets,
    numbering,
    show,
)

DELETE = Operation.DELETE.value


@dataclass
class _Record:
    """The rows of one record read so far (in version order, maybe across batches)."""

    pk: Pk
    last: int
    operation: str
    current: list[int] = field(default_factory=list)
    versioned: bool = False  # some row has a changeset (rows written unversioned have none)


def rows_problems(
    session: Session, info: ModelInfo, batch_size: int, tally: Tally
) -> Iterator[Problem]:
    """Every problem of one rows-strategy model, reading its table in keyset batches."""
    t = info.table
    name = info.model.__name__
    n = len(info.pk_columns)
    side = side_table(info) if info.collections else None
    cols = [t.c.is_current_version, t.c.operation, t.c.changeset_id]
    record: _Record | None = None
    for rows in keyset(session, [*info.pk_columns, t.c.version_id], cols, batch_size):
        tally.versions += len(rows)
        done: list[_Record] = []
        refs: list[tuple[Pk, int, int | None]] = []
        for row in rows:
            pk, number = tuple(row[:n]), int(row[n])
            refs.append((pk, number, row.changeset_id))
            same = record is not None and record.pk == pk
            problem = numbering(name, pk, record.last if same and record else None, number)
            if problem is not None:
                yield problem
            if not same or record is None:
                if record is not None:
                    done.append(record)
                record = _Record(pk, number, row.operation)
            record.last, record.operation = number, row.operation
            if row.is_current_version:
                record.current.append(number)
            record.versioned = record.versioned or row.changeset_id is not None
        for pk, number, cs_id in missing_changesets(session, info.changesets, refs):
            yield Problem(name, pk, Invariant.MISSING_CHANGESET,
                          f"version {number} points at changeset {cs_id}, which does not exist")
        if side is not None:
            yield from _side_rows(session, info, side, [(pk, v) for pk, v, cs in refs if cs])
        tally.records += len(done)
        yield from _finish(session, info, side, done)
    if record is not None:
        tally.records += 1
        yield from _finish(session, info, side, [record])


def _finish(session: Session, info: ModelInfo, side: Table | None, records: Sequence[_Record]
            ) -> Iterator[Problem]:
    """Each finished record's current rows, and its collections against its latest row's."""
    name = info.model.__name__
    live: list[_Record] = []
    for r in records:
        if not r.versioned:
            yield Problem(name, r.pk, Invariant.UNVERSIONED,
                          "no row has a changeset (written without versioning)")
        listed = ", ".join(map(str, r.current))
        if r.operation == DELETE:
            if r.current:
                yield Problem(name, r.pk, Invariant.CURRENT_ROW,
                              f"version {r.last} is a delete, yet version {listed} is current")
            continue
        if r.current == [r.last]:
            live.append(r)
        elif not r.current:
            yield Problem(name, r.pk, Invariant.CURRENT_ROW,
                          f"no row is current (the latest is version {r.last})")
        elif len(r.current) > 1:
            yield Problem(name, r.pk, Invariant.CURRENT_ROW, f"versions {listed} are all current")
        else:
            yield Problem(name, r.pk, Invariant.CURRENT_ROW,
                          f"version {listed} is current, not the latest, {r.last}")
    if side is not None and live:
        yield from _collections(session, info, side, live)


def _stored(session: Session, side: Table, pk_names: list[str],
            wanted: Sequence[tuple[Pk, int]], *, lists: bool = True
            ) -> dict[tuple[Any, ...], Any]:
    """(pk…, version_id) -> the lists ``<table>_collections`` holds for that row (``lists``
    False: None, when only whether the row exists matters)."""
    cols = [side.c[n] for n in pk_names] + [side.c.version_id]
    found: dict[tuple[Any, ...], Any] = {}
    for part in chunks(wanted):
        extra = [side.c.state] if lists else []
        stmt = select(*cols, *extra).where(keys_in(cols, [(*pk, n) for pk, n in part]))
        for row in session.connection().execute(stmt):
            found[tuple(row[: len(cols)])] = row.state if lists else None
    return found


def _side_rows(session: Session, info: ModelInfo, side: Table,
               rows: Sequence[tuple[Pk, int]]) -> Iterator[Problem]:
    """Versioned rows that have no row in ``<table>_collections``."""
    if not rows:
        return
    stored = _stored(session, side, [c.name for c in info.pk_columns], rows, lists=False)
    for pk, number in rows:
        if (*pk, number) not in stored:
            yield Problem(info.model.__name__, pk, Invariant.COLLECTIONS_ROW,
                          f"version {number} has no row in {side.name}")


def _collections(session: Session, info: ModelInfo, side: Table, records: Sequence[_Record]
                 ) -> Iterator[Problem]:
    """The live collections of records against the lists their current row recorded."""
    name = info.model.__name__
    pk_names = [c.name for c in info.pk_columns]
    for part in chunks(records):
        pks = [r.pk for r in part]
        stored = _stored(session, side, pk_names, [(r.pk, r.last) for r in part])
        now = {spec.key: current(session, spec, pks) for spec in info.collections}
        for r in part:
            lists = stored.get((*r.pk, r.last))
            if lists is None:
                continue  # reported by _side_rows, or a row written without versioning
            differs = [
                f"{spec.key}: live {show(now[spec.key][r.pk])}, version {r.last} "
                f"{show(lists.get(spec.key))}"
                for spec in info.collections
                if spec.key in lists and lists[spec.key] != now[spec.key][r.pk]
            ]
            if differs:
                yield Problem(name, r.pk, Invariant.LIVE_DIFFERS, "; ".join(differs))
