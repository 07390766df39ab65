"""Reading history: versions of a record, as-of, changesets, deleted records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .schema import ModelInfo, require_info
from .storage import decode_state as decode_state  # re-exported
from .storage import storage
from .types import Changeset, Operation, Version, VersionNotFound


def normalize_pk(info: ModelInfo, pk: Any) -> tuple[Any, ...]:
    """Accept a scalar or a tuple as a record's primary key, typed like its columns."""
    values = tuple(pk) if isinstance(pk, (tuple, list)) else (pk,)
    if len(values) != len(info.pk_keys):
        raise VersionNotFound(
            f"{info.model.__name__}: primary key needs {len(info.pk_keys)} values"
        )
    return values


def versions(
    session: Session, model: type, pk: Any, *, before: int | None = None, limit: int = 50
) -> list[Version]:
    """The record's versions, newest first; ``before`` continues below that number."""
    info = require_info(model)
    st = storage(info)
    stmt = st.select().where(st.of_record(normalize_pk(info, pk)))
    if before is not None:
        stmt = stmt.where(st.number < before)
    rows = session.execute(stmt.order_by(st.number.desc()).limit(limit)).all()
    return [st.version(r) for r in rows]


def get_version(session: Session, model: type, pk: Any, number: int) -> Version:
    """One version by number (a primary-key lookup); raises VersionNotFound."""
    info = require_info(model)
    st = storage(info)
    key = normalize_pk(info, pk)
    row = session.execute(st.select().where(st.of_record(key), st.number == number)).first()
    if row is None:
        raise VersionNotFound(f"{info.model.__name__} {key!r} has no version {number}")
    return st.version(row)


def latest_version(session: Session, model: type, pk: Any) -> Version | None:
    """The record's newest version, or None if it has none."""
    found = versions(session, model, pk, limit=1)
    return found[0] if found else None


def as_of(session: Session, model: type, pk: Any, when: dt.datetime) -> Version | None:
    """The version that was current at ``when`` (None if the record did not exist yet)."""
    info = require_info(model)
    st = storage(info)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    row = session.execute(
        st.select()
        .where(st.of_record(normalize_pk(info, pk)), info.changesets.c.issued_at <= when)
        .order_by(st.number.desc())
        .limit(1)
    ).first()
    return st.version(row) if row is not None else None


def deleted_records(
    session: Session, model: type, *, before: int | None = None, limit: int = 50
) -> list[Version]:
    """The final delete version of each currently deleted record, newest changeset first."""
    st = storage(require_info(model))
    stmt = st.select().where(st.operation == Operation.DELETE.value, st.is_latest())
    if before is not None:
        stmt = stmt.where(st.changeset_id < before)
    rows = session.execute(stmt.order_by(st.changeset_id.desc()).limit(limit)).all()
    return [st.version(r) for r in rows]


def changesets(
    session: Session,
    models: Sequence[type],
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    user: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[tuple[Changeset, list[Version]]]:
    """Changesets newest first (keyset on id), each with its versions of ``models``."""
    infos = [require_info(m) for m in models]
    # A base's versions include its subclasses': asking for both must not list them twice.
    infos = [i for i in infos if not _ancestor_in(i, infos)]
    if not infos:
        return []
    tables = {id(i.changesets): i.changesets for i in infos}
    cs = next(iter(tables.values()))
    touching = [
        storage(i).touches(cs) for i in infos if i.changesets is cs
    ]
    stmt = select(cs).where(touching[0] if len(touching) == 1 else or_(*touching))
    if start is not None:
        stmt = stmt.where(cs.c.issued_at >= start)
    if end is not None:
        stmt = stmt.where(cs.c.issued_at < end)
    if user is not None:
        stmt = stmt.where(cs.c.user == user)
    if before is not None:
        stmt = stmt.where(cs.c.id < before)
    heads = session.execute(stmt.order_by(cs.c.id.desc()).limit(limit)).all()
    ids = [int(r.id) for r in heads]
    entries: dict[int, list[Version]] = {i: [] for i in ids}
    if ids:
        for info in infos:
            for version in _versions_in(session, info, ids):
                entries[version.changeset.id].append(version)
    return [
        (
            Changeset(id=int(r.id), issued_at=r.issued_at, user=r.user, reason=r.reason),
            entries[int(r.id)],
        )
        for r in heads
    ]


def _ancestor_in(info: ModelInfo, infos: list[ModelInfo]) -> bool:
    parent = info.parent
    while parent is not None:
        if parent in infos:
            return True
        parent = parent.parent
    return False


def _versions_in(session: Session, info: ModelInfo, ids: list[int]) -> list[Version]:
    st = storage(info)
    rows = session.execute(
        st.select().where(st.changeset_id.in_(ids)).order_by(st.number)
    ).all()
    return [st.version(r) for r in rows]
