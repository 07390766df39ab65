"""Reading history: versions of a record, as-of, changesets, deleted records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, and_, exists, or_, select
from sqlalchemy.orm import Session

from .codec import decode, encode
from .inheritance import kind_clause
from .rows_collections import side_table
from .schema import ModelInfo, require_info
from .types import Changeset, Operation, Version, VersionNotFound


def normalize_pk(info: ModelInfo, pk: Any) -> tuple[Any, ...]:
    """Accept a scalar or a tuple as a record's primary key, typed like its columns."""
    values = tuple(pk) if isinstance(pk, (tuple, list)) else (pk,)
    if len(values) != len(info.pk_keys):
        raise VersionNotFound(
            f"{info.model.__name__}: primary key needs {len(info.pk_keys)} values"
        )
    return values


def _changeset(row: Any, prefix: str = "cs_") -> Changeset:
    issued_at = getattr(row, f"{prefix}issued_at")
    return Changeset(
        id=int(getattr(row, f"{prefix}id")),
        issued_at=issued_at,
        user=getattr(row, f"{prefix}user"),
        reason=getattr(row, f"{prefix}reason"),
    )


def _cs_columns(info: ModelInfo) -> list[Any]:
    cs = info.changesets
    return [
        cs.c.id.label("cs_id"),
        cs.c.issued_at.label("cs_issued_at"),
        cs.c.user.label("cs_user"),
        cs.c.reason.label("cs_reason"),
    ]


def decode_state(info: ModelInfo, raw: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Decode a stored state; keys of columns no longer on the model are kept raw."""
    types = info.field_types()
    relations = {c.key for c in info.collections}
    state: dict[str, Any] = {}
    removed: list[str] = []
    for key, value in raw.items():
        type_ = types.get(key)
        if key in relations:
            state[key] = value
        elif type_ is None:
            removed.append(key)
            state[key] = value
        else:
            try:
                state[key] = decode(value, type_)
            except (ValueError, TypeError, KeyError):
                # A column whose type changed since: show what was stored.
                state[key] = value
    return state, tuple(removed)


# ----------------------------------------------------------------- shadow strategy


def _shadow_select(info: ModelInfo) -> Select[Any]:
    vt = info.version_table
    assert vt is not None
    cs = info.changesets
    return select(vt, *_cs_columns(info)).join(cs, cs.c.id == vt.c.changeset_id)


def _shadow_where(info: ModelInfo, pk: tuple[Any, ...]) -> Any:
    vt = info.version_table
    assert vt is not None
    cond = and_(*[vt.c[c.name] == v for c, v in zip(info.pk_columns, pk, strict=True)])
    kind = kind_clause(info, vt.c.state)
    return cond if kind is None else and_(cond, kind)


def _of_kind(info: ModelInfo, stmt: Select[Any]) -> Select[Any]:
    """``stmt`` limited to versions of ``info``'s records (a subclass shares its base's history)."""
    vt = info.version_table
    assert vt is not None
    kind = kind_clause(info, vt.c.state)
    return stmt if kind is None else stmt.where(kind)


def _all_if_insert(row: Row[Any], state: dict[str, Any]) -> tuple[str, ...]:
    # Inserts store no list: every field is new.
    return tuple(state) if row.operation == Operation.INSERT.value else ()


def _shadow_version(info: ModelInfo, row: Row[Any]) -> Version:
    # A base's history holds its subclasses' records too: each version is of its own class.
    info = info.info_for(row.state)
    state, removed = decode_state(info, row.state)
    return Version(
        model=info.model,
        pk=tuple(getattr(row, c.name) for c in info.pk_columns),
        number=int(row.version),
        operation=Operation(row.operation),
        state=state,
        changed=tuple(row.changed) if row.changed is not None else _all_if_insert(row, state),
        changeset=_changeset(row),
        reverted_from=row.reverted_from,
        removed_fields=removed,
    )


# ------------------------------------------------------------------- rows strategy


def _prev_label(name: str) -> str:
    return f"prev__{name}"


_LISTS = "collections__state"


def _rows_select(info: ModelInfo) -> Select[Any]:
    """Rows with their changeset and, for ``changed``, the record's previous row."""
    cs = info.changesets
    t = info.table
    prev = t.alias("prev")
    same_record = [prev.c[c.name] == c for c in info.pk_columns]
    prev_cols = [prev.c[col.name].label(_prev_label(col.name)) for _k, col in info.fields]
    stmt = (
        select(t, *_cs_columns(info), prev.c.version_id.label(_prev_label("version_id")))
        .add_columns(*prev_cols)
        .outerjoin(cs, cs.c.id == t.c.changeset_id)
        .outerjoin(prev, and_(*same_record, prev.c.version_id == t.c.version_id - 1))
    )
    side = side_table(info) if info.collections else None
    if side is None:
        return stmt
    # The version's collections, and its previous version's, for ``changed``.
    lists, prev_lists = side.alias("lists"), side.alias("prev_lists")
    for alias, number, label in ((lists, t.c.version_id, _LISTS),
                                 (prev_lists, t.c.version_id - 1, _prev_label(_LISTS))):
        stmt = stmt.add_columns(alias.c.state.label(label)).outerjoin(alias, and_(
            *[alias.c[c.name] == c for c in info.pk_columns], alias.c.version_id == number))
    return stmt


def _rows_where(info: ModelInfo, pk: tuple[Any, ...]) -> Any:
    return and_(*[c == v for c, v in zip(info.pk_columns, pk, strict=True)])


_NO_CHANGESET = Changeset(
    id=0, issued_at=dt.datetime.min.replace(tzinfo=dt.UTC), user=None, reason=None
)


def _rows_version(info: ModelInfo, row: Row[Any]) -> Version:
    """One version from a row of ``_rows_select``."""
    mapping = row._mapping
    state = {key: mapping[info.table.c[col.name]] for key, col in info.fields}
    operation = Operation(row.operation)
    if operation is Operation.INSERT:
        changed = tuple(state)
    elif operation is Operation.DELETE or mapping[_prev_label("version_id")] is None:
        changed = ()
    else:
        changed = tuple(
            key
            for key, col in info.fields
            if encode(mapping[_prev_label(col.name)]) != encode(state[key])
        )
    lists = mapping.get(_LISTS)
    if lists is not None:
        state.update(lists)
        before = mapping.get(_prev_label(_LISTS))
        if operation is Operation.INSERT:
            changed += tuple(lists)
        elif operation is Operation.UPDATE and before is not None:
            changed += tuple(k for k in lists if k in before and before[k] != lists[k])
    return Version(
        model=info.model,
        pk=tuple(mapping[c] for c in info.pk_columns),
        number=int(row.version_id),
        operation=operation,
        state=state,
        changed=changed,
        changeset=_changeset(row) if row.cs_id is not None else _NO_CHANGESET,
        reverted_from=row.reverted_from,
    )


# ---------------------------------------------------------------------- public API


def versions(
    session: Session, model: type, pk: Any, *, before: int | None = None, limit: int = 50
) -> list[Version]:
    """The record's versions, newest first; ``before`` continues below that number."""
    info = require_info(model)
    key = normalize_pk(info, pk)
    if info.strategy == "rows":
        t = info.table
        stmt = _rows_select(info).where(_rows_where(info, key))
        if before is not None:
            stmt = stmt.where(t.c.version_id < before)
        rows = session.execute(stmt.order_by(t.c.version_id.desc()).limit(limit)).all()
        return [_rows_version(info, r) for r in rows]
    vt = info.version_table
    assert vt is not None
    stmt = _shadow_select(info).where(_shadow_where(info, key))
    if before is not None:
        stmt = stmt.where(vt.c.version < before)
    rows = session.execute(stmt.order_by(vt.c.version.desc()).limit(limit)).all()
    return [_shadow_version(info, r) for r in rows]


def get_version(session: Session, model: type, pk: Any, number: int) -> Version:
    """One version by number (a primary-key lookup); raises VersionNotFound."""
    info = require_info(model)
    key = normalize_pk(info, pk)
    if info.strategy == "rows":
        t = info.table
        found = session.execute(
            _rows_select(info).where(_rows_where(info, key), t.c.version_id == number)
        ).first()
        if found is None:
            raise VersionNotFound(f"{info.model.__name__} {key!r} has no version {number}")
        return _rows_version(info, found)
    vt = info.version_table
    assert vt is not None
    row = session.execute(
        _shadow_select(info).where(_shadow_where(info, key), vt.c.version == number)
    ).first()
    if row is None:
        raise VersionNotFound(f"{info.model.__name__} {key!r} has no version {number}")
    return _shadow_version(info, row)


def latest_version(session: Session, model: type, pk: Any) -> Version | None:
    """The record's newest version, or None if it has none."""
    found = versions(session, model, pk, limit=1)
    return found[0] if found else None


def as_of(session: Session, model: type, pk: Any, when: dt.datetime) -> Version | None:
    """The version that was current at ``when`` (None if the record did not exist yet)."""
    info = require_info(model)
    key = normalize_pk(info, pk)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    cs = info.changesets
    if info.strategy == "rows":
        t = info.table
        found = session.execute(
            _rows_select(info)
            .where(_rows_where(info, key), cs.c.issued_at <= when)
            .order_by(t.c.version_id.desc())
            .limit(1)
        ).first()
        return _rows_version(info, found) if found is not None else None
    vt = info.version_table
    assert vt is not None
    row = session.execute(
        _shadow_select(info)
        .where(_shadow_where(info, key), cs.c.issued_at <= when)
        .order_by(vt.c.version.desc())
        .limit(1)
    ).first()
    return _shadow_version(info, row) if row is not None else None


def deleted_records(
    session: Session, model: type, *, before: int | None = None, limit: int = 50
) -> list[Version]:
    """The final delete version of each currently deleted record, newest changeset first."""
    info = require_info(model)
    if info.strategy == "rows":
        t = info.table
        alias = t.alias("later")
        pk_match = and_(*[alias.c[c.name] == c for c in info.pk_columns])
        stmt = _rows_select(info).where(
            t.c.operation == Operation.DELETE.value,
            ~exists().where(pk_match, alias.c.version_id > t.c.version_id),
        )
        if before is not None:
            stmt = stmt.where(t.c.changeset_id < before)
        rows = session.execute(stmt.order_by(t.c.changeset_id.desc()).limit(limit)).all()
        return [_rows_version(info, r) for r in rows]
    vt = info.version_table
    assert vt is not None
    later = vt.alias("later")
    pk_match = and_(*[later.c[c.name] == vt.c[c.name] for c in info.pk_columns])
    stmt = _of_kind(info, _shadow_select(info).where(
        vt.c.operation == Operation.DELETE.value,
        ~exists().where(pk_match, later.c.version > vt.c.version),
    ))
    if before is not None:
        stmt = stmt.where(vt.c.changeset_id < before)
    rows = session.execute(stmt.order_by(vt.c.changeset_id.desc()).limit(limit)).all()
    return [_shadow_version(info, r) for r in rows]


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
        _touches(i, cs) for i in infos if i.changesets is cs
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


def _touches(info: ModelInfo, cs: Any) -> Any:
    if info.strategy == "rows":
        return exists().where(info.table.c.changeset_id == cs.c.id)
    vt = info.version_table
    assert vt is not None
    kind = kind_clause(info, vt.c.state)
    cond = vt.c.changeset_id == cs.c.id
    return exists().where(cond if kind is None else and_(cond, kind))


def _ancestor_in(info: ModelInfo, infos: list[ModelInfo]) -> bool:
    parent = info.parent
    while parent is not None:
        if parent in infos:
            return True
        parent = parent.parent
    return False


def _versions_in(session: Session, info: ModelInfo, ids: list[int]) -> list[Version]:
    if info.strategy == "rows":
        t = info.table
        rows = session.execute(
            _rows_select(info).where(t.c.changeset_id.in_(ids)).order_by(t.c.version_id)
        ).all()
        return [_rows_version(info, r) for r in rows]
    vt = info.version_table
    assert vt is not None
    rows = session.execute(
        _of_kind(info, _shadow_select(info).where(vt.c.changeset_id.in_(ids)))
        .order_by(vt.c.version)
    ).all()
    return [_shadow_version(info, r) for r in rows]

