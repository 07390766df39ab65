"""Snapshots of instances and the batched INSERT of shadow versions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from sqlalchemy import Insert, bindparam, func, literal_column, select
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.base import NO_VALUE

from .codec import encode
from .schema import ModelInfo, pk_in

_INSERTS: dict[int, Insert] = {}
_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def snapshot(info: ModelInfo, obj: object) -> dict[str, Any]:
    """Return the JSON-safe state of ``obj``'s recorded columns, loading unloaded ones."""
    data = attributes.instance_dict(obj)
    state: dict[str, Any] = {}
    for key, _col in info.fields:
        value = data.get(key, NO_VALUE)
        if value is NO_VALUE:
            value = getattr(obj, key)
        state[key] = encode(value)
    return state


_LOAD_CHUNK = 500


def load_expired(
    session: Session, info: ModelInfo, objs: Iterable[object], keys: frozenset[str] | None = None
) -> None:
    """Load attributes expired on persistent ``objs`` with one SELECT per 500 objects."""
    # Reading them one by one (server-generated columns after a flush, everything after a
    # commit) would cost one SELECT per object.
    wanted = info.field_keys if keys is None else keys
    idents: list[tuple[Any, ...]] = []
    for obj in objs:
        state = attributes.instance_state(obj)
        if state.key is not None and not wanted <= state.dict.keys():
            idents.append(tuple(state.key[1]))
    cols = info.mapper.primary_key
    for i in range(0, len(idents), _LOAD_CHUNK):
        chunk = idents[i : i + _LOAD_CHUNK]
        cond = pk_in(list(cols), chunk)
        # An ORM query fills the expired attributes of the instances already in the session.
        session.execute(select(info.model).where(cond)).all()


def pk_of(info: ModelInfo, obj: object) -> tuple[Any, ...]:
    """The record's logical primary key, read from the instance."""
    data = attributes.instance_dict(obj)
    return tuple(data[k] if k in data else getattr(obj, k) for k in info.pk_keys)


def same_value(old: Any, new: Any) -> bool:
    """True if a column value did not really change (equal, or stored alike, e.g. NaN)."""
    try:
        if bool(old == new):
            return True  # e.g. the same instant in another time zone
    except Exception:  # noqa: BLE001 - odd types: fall back to the stored form
        pass
    return bool(encode(old) == encode(new))


def changed_keys(info: ModelInfo, obj: object) -> list[str]:
    """Keys of recorded columns whose value really changed in this unit of work."""
    state = attributes.instance_state(obj)
    # committed_state holds the old value of exactly the attributes that were set, so this
    # costs O(attributes touched), not O(columns).
    committed = state.committed_state
    if not committed:
        return []
    data = state.dict
    keys = info.field_keys
    changed: list[str] = []
    for key, old in committed.items():
        if key not in keys:
            continue
        new = data.get(key, NO_VALUE)
        if old is NO_VALUE or new is NO_VALUE:
            changed.append(key)
        elif old is not new and not same_value(old, new):
            changed.append(key)
    order = {k: i for i, (k, _c) in enumerate(info.fields)}
    return sorted(changed, key=order.__getitem__)


def _insert_for(info: ModelInfo) -> Insert:
    stmt = _INSERTS.get(id(info))
    if stmt is not None:
        return stmt
    vt = info.version_table
    assert vt is not None
    pk_cols = [vt.c[c.name] for c in info.pk_columns]
    inner = vt.alias("prev")
    params = [bindparam(f"pk_{c.name}", type_=c.type) for c in pk_cols]
    # The next number is computed in SQL so one executemany covers the whole flush;
    # the (pk, version) primary key turns a lost race into an IntegrityError, never a gap.
    sel = select(
        *params,
        func.coalesce(func.max(inner.c.version), literal_column("0")) + literal_column("1"),
        bindparam("operation", type_=vt.c.operation.type),
        bindparam("changeset_id", type_=vt.c.changeset_id.type),
        bindparam("reverted_from", type_=vt.c.reverted_from.type),
        bindparam("state", type_=vt.c.state.type),
        bindparam("changed", type_=vt.c.changed.type),
    ).where(*[inner.c[c.name] == p for c, p in zip(pk_cols, params, strict=True)])
    names = [c.name for c in pk_cols] + [
        "version",
        "operation",
        "changeset_id",
        "reverted_from",
        "state",
        "changed",
    ]
    stmt = vt.insert().from_select(names, sel)
    _INSERTS[id(info)] = stmt
    return stmt


def version_row(
    info: ModelInfo,
    pk: tuple[Any, ...],
    operation: str,
    changeset_id: int,
    state: Mapping[str, Any],
    changed: Iterable[str] | None,
    reverted_from: int | None = None,
) -> dict[str, Any]:
    """Parameters of one shadow-version row."""
    row: dict[str, Any] = {
        f"pk_{c.name}": v for c, v in zip(info.pk_columns, pk, strict=True)
    }
    row.update(
        operation=operation,
        changeset_id=changeset_id,
        reverted_from=reverted_from,
        state=dict(state),
        changed=None if changed is None else list(changed),
    )
    return row


_DRIVER_SQL: dict[tuple[int, str], tuple[str, list[str] | None]] = {}


def _driver_sql(info: ModelInfo, dialect: Any) -> tuple[str, list[str] | None]:
    """The INSERT compiled once per dialect; positional dialects get the parameter order."""
    key = (id(info), dialect.name)
    found = _DRIVER_SQL.get(key)
    if found is None:
        compiled = _insert_for(info).compile(dialect=dialect)
        order = list(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        found = (compiled.string, order)
        _DRIVER_SQL[key] = found
    return found


FRESH = "_fresh"
NUMBER = "_number"


def _insert_numbered(session: Session, info: ModelInfo, rows: list[dict[str, Any]]) -> None:
    """Rows whose version numbers are known: one multi-row INSERT."""
    vt = info.version_table
    assert vt is not None
    names = {f"pk_{c.name}": c.name for c in info.pk_columns}
    values = []
    for row in rows:
        value = {names.get(k, k): v for k, v in row.items() if k != NUMBER}
        value["version"] = row[NUMBER]
        values.append(value)
    session.connection().execute(vt.insert(), values)


def write_shadow(session: Session, info: ModelInfo, rows: list[dict[str, Any]]) -> None:
    """Insert shadow versions: one statement per table (plus one lookup where needed)."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        # Here each written record's row is locked by our own INSERT/UPDATE/DELETE until
        # commit, so numbers read now stay right; the (pk, version) key still backs that up.
        for row in rows:
            if row.pop(FRESH, False):
                row[NUMBER] = 1  # a key a sequence just made has no history
        unknown = [r for r in rows if NUMBER not in r]
        if unknown:
            pk_names = [f"pk_{c.name}" for c in info.pk_columns]
            pks = [tuple(r[n] for n in pk_names) for r in unknown]
            latest = latest_numbers(session, info, pks)
            taken: dict[tuple[Any, ...], int] = {}
            for pk, row in zip(pks, unknown, strict=True):
                taken[pk] = taken.get(pk, latest.get(pk, 0)) + 1
                row[NUMBER] = taken[pk]
        _insert_numbered(session, info, rows)
        return
    sql, order = _driver_sql(info, conn.dialect)
    # The rows are JSON-safe already: skip SQLAlchemy's per-row bind processing, which
    # costs as much as the INSERT itself on a 100-row flush. SQLite serializes writers, and
    # the number is computed in the INSERT itself.
    for row in rows:
        row.pop(FRESH, None)
        row.pop(NUMBER, None)
        row["state"] = _dumps(row["state"])
        if row["changed"] is not None:
            row["changed"] = _dumps(row["changed"])
    params: Any = rows if order is None else [tuple(r[k] for k in order) for r in rows]
    conn.exec_driver_sql(sql, params)


def generated_key(info: ModelInfo, obj: object) -> bool:
    """True if the database will make this new object's key from a sequence (never reused)."""
    cols = info.pk_columns
    if len(cols) != 1 or cols[0] is not info.table.autoincrement_column:
        return False
    return attributes.instance_dict(obj).get(info.pk_keys[0]) is None


def read_states(
    session: Session, info: ModelInfo, pks: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[dict[str, Any], int]]:
    """The encoded states of live rows as the database holds them now, with each record's
    latest version number (one SELECT)."""
    if not pks:
        return {}
    keys = [k for k, _c in info.fields]
    cols = [c for _k, c in info.fields]
    pk_cols = info.pk_columns
    cond = pk_in(pk_cols, pks)
    index = [keys.index(k) for k in info.pk_keys]
    vt = info.version_table
    assert vt is not None
    latest = (
        select(func.coalesce(func.max(vt.c.version), literal_column("0")))
        .where(*[vt.c[c.name] == c for c in pk_cols])
        .scalar_subquery()
    )
    found: dict[tuple[Any, ...], tuple[dict[str, Any], int]] = {}
    for row in session.connection().execute(select(*cols, latest).where(cond)):
        state = {k: encode(v) for k, v in zip(keys, row[:-1], strict=True)}
        found[tuple(row[i] for i in index)] = (state, int(row[-1]))
    return found


def latest_numbers(
    session: Session, info: ModelInfo, pks: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], int]:
    """The latest stored version number of each record (one query)."""
    if not pks:
        return {}
    if info.strategy == "rows":
        cols = info.pk_columns
        number = info.table.c.version_id
    else:
        vt = info.version_table
        assert vt is not None
        cols = [vt.c[c.name] for c in info.pk_columns]
        number = vt.c.version
    rows = session.connection().execute(
        select(*cols, func.max(number)).where(pk_in(cols, pks)).group_by(*cols)
    )
    return {tuple(r[:-1]): int(r[-1]) for r in rows}
