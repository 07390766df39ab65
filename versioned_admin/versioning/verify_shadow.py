"""verify for the shadow strategy: each record's versions in order, then its live row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .inheritance import states_select
from .relations import current
from .schema import ModelInfo
from .types import Operation
from .verify_maps import map_problems
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
    same_stored,
    show,
)

DELETE = Operation.DELETE.value


@dataclass
class _Record:
    """The versions of one record read so far (they arrive in order, maybe across batches)."""

    pk: Pk
    last: int
    operation: str


def shadow_problems(
    session: Session, info: ModelInfo, batch_size: int, tally: Tally
) -> Iterator[Problem]:
    """Every problem of one shadow-strategy model, reading its tables in keyset batches."""
    vt = info.version_table
    assert vt is not None
    name = info.model.__name__
    n = len(info.pk_columns)
    key = [*[vt.c[c.name] for c in info.pk_columns], vt.c.version]
    # A hierarchy shares one history: its subclasses' maps are checked with the base's.
    maps = {n: spec for member in info.family() for n, spec in member.maps.items()}
    record: _Record | None = None
    for rows in keyset(session, key, [vt.c.operation, vt.c.changeset_id], batch_size):
        tally.versions += len(rows)
        done: list[_Record] = []
        refs: list[tuple[Pk, int, int | None]] = []
        followed: list[tuple[Pk, int]] = []  # versions whose previous version is stored
        for row in rows:
            pk, number = tuple(row[:n]), int(row[n])
            refs.append((pk, number, row.changeset_id))
            same = record is not None and record.pk == pk
            problem = numbering(name, pk, record.last if same and record else None, number)
            if problem is not None:
                yield problem
            elif maps:
                followed.append((pk, number))
            if same and record is not None:
                record.last, record.operation = number, row.operation
                continue
            if record is not None:
                done.append(record)
            record = _Record(pk, number, row.operation)
        for pk, number, cs_id in missing_changesets(session, info.changesets, refs):
            yield Problem(name, pk, Invariant.MISSING_CHANGESET,
                          f"version {number} points at changeset {cs_id}, which does not exist")
        if followed:
            yield from map_problems(session, name, maps.values(), followed)
        tally.records += len(done)
        yield from _latest(session, info, done)
    if record is not None:
        tally.records += 1
        yield from _latest(session, info, [record])
    yield from _unversioned(session, info, batch_size, tally)


def _live_states(session: Session, info: ModelInfo, pks: Sequence[Pk]
                 ) -> dict[Pk, dict[str, Any]]:
    """The encoded states of these records' live rows (subclass tables joined), by key."""
    stmt, read = states_select(info)  # the writer's own reading and encoding of a live row
    found: dict[Pk, dict[str, Any]] = {}
    for part in chunks(pks):
        for row in session.connection().execute(stmt.where(keys_in(info.pk_columns, part))):
            pk, state = read(row)
            found[pk] = state
    return found


def _states(session: Session, info: ModelInfo, pks: Sequence[Pk]
            ) -> dict[Pk, tuple[int, dict[str, Any]]]:
    """(number, stored state) of each record's latest version, by key."""
    vt = info.version_table
    assert vt is not None
    cols = [vt.c[c.name] for c in info.pk_columns]
    later = vt.alias("later")
    # The newest version by a max() per key (an index probe): binding (key, number) pairs
    # instead cost SQLAlchemy more to expand than the database took to answer.
    newest = select(func.max(later.c.version)).where(
        *[later.c[c.name] == vt.c[c.name] for c in info.pk_columns]).scalar_subquery()
    found: dict[Pk, tuple[int, dict[str, Any]]] = {}
    for part in chunks(pks):
        stmt = select(*cols, vt.c.version, vt.c.state).where(
            keys_in(cols, part), vt.c.version == newest)
        for row in session.connection().execute(stmt):
            found[tuple(row[: len(cols)])] = (int(row.version), row.state)
    return found


def _latest(session: Session, info: ModelInfo, records: Sequence[_Record]) -> Iterator[Problem]:
    """Each finished record's latest version against its live row."""
    if not records:
        return
    name = info.model.__name__
    live = _live_states(session, info, [r.pk for r in records])
    latest = _states(session, info, [r.pk for r in records
                                     if r.operation != DELETE and r.pk in live])
    scanned = {r.pk: r.last for r in records}
    # A version written since the scan read the record's versions is not compared.
    states = {pk: state for pk, (number, state) in latest.items() if scanned[pk] == number}
    by_member: dict[int, tuple[ModelInfo, list[_Record]]] = {}
    for r in records:
        now = live.get(r.pk)
        if r.operation == DELETE:
            if now is not None:
                yield Problem(name, r.pk, Invariant.DELETED_BUT_LIVE,
                              f"version {r.last} is a delete, yet the live row exists")
        elif now is None:
            yield Problem(name, r.pk, Invariant.MISSING_LIVE,
                          f"version {r.last} ({r.operation}) is the latest, yet there is no "
                          "live row")
        elif r.pk in states:  # else changed since the scan read it
            member = info.info_for(now)  # a subclass record is compared by its own columns
            yield from _compare(name, member, r, states[r.pk], now)
            by_member.setdefault(id(member), (member, []))[1].append(r)
    for member, group in by_member.values():
        if member.collections:
            yield from _collections(session, name, member, group, states)


def _compare(name: str, member: ModelInfo, r: _Record, stored: dict[str, Any],
             live: dict[str, Any]) -> Iterator[Problem]:
    """A live row's encoded state against the state its latest version stored."""
    types = member.field_types()
    differs: list[str] = []
    absent: list[str] = []
    for key, value in live.items():
        if key not in stored:
            absent.append(key)
        elif not same_stored(stored[key], value, types[key]):
            differs.append(f"{key}: live {show(value)}, version {r.last} {show(stored[key])}")
    if differs:
        yield Problem(name, r.pk, Invariant.LIVE_DIFFERS, "; ".join(differs))
    gone = sorted(set(stored) - set(live) - {s.key for s in member.collections})
    drift = []
    if absent:
        drift.append(f"version {r.last} has no {', '.join(absent)}")
    if gone:
        drift.append(f"version {r.last} has {', '.join(gone)}, which the table no longer has")
    if drift:
        yield Problem(name, r.pk, Invariant.SCHEMA_DRIFT, "; ".join(drift))


def _collections(session: Session, name: str, member: ModelInfo, records: Sequence[_Record],
                 states: dict[Pk, dict[str, Any]]) -> Iterator[Problem]:
    """Each live record's collections against the lists its latest version stored."""
    for part in chunks(records):
        pks = [r.pk for r in part]
        now = {spec.key: current(session, spec, pks) for spec in member.collections}
        for r in part:
            stored = states[r.pk]
            differs: list[str] = []
            absent: list[str] = []
            for spec in member.collections:
                live = now[spec.key][r.pk]
                if spec.key not in stored:
                    absent.append(spec.key)
                elif stored[spec.key] != live:
                    differs.append(f"{spec.key}: live {show(live)}, version {r.last} "
                                   f"{show(stored[spec.key])}")
            if differs:
                yield Problem(name, r.pk, Invariant.LIVE_DIFFERS, "; ".join(differs))
            if absent:
                yield Problem(name, r.pk, Invariant.SCHEMA_DRIFT,
                              f"version {r.last} does not list {', '.join(absent)}")


def _unversioned(session: Session, info: ModelInfo, batch_size: int, tally: Tally
                 ) -> Iterator[Problem]:
    """Live rows that have no version at all (the records older than versioning)."""
    vt = info.version_table
    assert vt is not None
    # A max() per row is an index probe everywhere; PostgreSQL turns an EXISTS here into a
    # hashed subplan that reads the whole history table once per batch.
    newest = select(func.max(vt.c.version)).where(
        *[vt.c[c.name] == c for c in info.pk_columns]).scalar_subquery().label("newest")
    for rows in keyset(session, info.pk_columns, [newest], batch_size):
        for row in rows:
            if row.newest is None:
                tally.records += 1
                yield Problem(info.model.__name__, tuple(row[:-1]), Invariant.UNVERSIONED,
                              f"no version in {vt.name}")
