"""Snapshots of instances and the batched INSERT of shadow versions."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Select, func, literal_column, select
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.base import NO_VALUE

from .codec import PLAIN, encode
from .schema import ModelInfo
from .statements import (
    copies,
    copy_rows,
    insert_rows,
    keys_in,
    latest_per_key,
    lookup,
    pk_params,
)

# One encoder for every state: json.dumps() with non-default options builds a new
# JSONEncoder per call, which costs as much as encoding a small state.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def snapshot(info: ModelInfo, obj: object) -> dict[str, Any]:
    """Return the JSON-safe state of ``obj``'s recorded columns, loading unloaded ones."""
    data = attributes.instance_dict(obj)
    state: dict[str, Any] = {}
    for key, _col in info.fields:
        value = data.get(key, NO_VALUE)
        if value is NO_VALUE:
            value = getattr(obj, key)
        # Most values are str/int/bool/None: skip the call for them (it adds up per row).
        state[key] = value if value.__class__ in PLAIN else encode(value)
    return state


def stored_snapshot(info: ModelInfo, obj: object, dialect: Dialect) -> dict[str, Any]:
    """``snapshot`` of a just-inserted object as the database keeps it, not as it was set.

    SQLite drops a time zone and turns NaN into NULL; the version must say what the row says.
    """
    state = snapshot(info, obj)
    if dialect.name != "sqlite":
        return state
    converters: dict[str, Callable[[Any], Any]] | None = info.cache.get("sqlite_stored")
    if converters is None:
        converters = info.cache["sqlite_stored"] = _sqlite_converters(info, dialect)
    if not converters:
        return state
    data = attributes.instance_dict(obj)
    for key, convert in converters.items():
        value = data.get(key)
        if value is not None and value.__class__ not in PLAIN:
            state[key] = encode(convert(value))
    return state


def _sqlite_converters(info: ModelInfo, dialect: Dialect) -> dict[str, Callable[[Any], Any]]:
    """Per recorded column whose value SQLite changes on the way in: that change."""
    found: dict[str, Callable[[Any], Any]] = {}
    for key, col in info.fields:
        impl = col.type.dialect_impl(dialect)
        if isinstance(impl, sqltypes.Float):
            found[key] = _sqlite_float
            continue
        bind = impl.bind_processor(dialect)
        result = impl.result_processor(dialect, None)
        if isinstance(impl, (sqltypes.DateTime, sqltypes.Time)) and bind and result:
            found[key] = _round_trip(bind, result)
    return found


def _sqlite_float(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _round_trip(bind: Callable[[Any], Any], result: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return result(bind(value))

    return convert


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
        cond = keys_in(list(cols), chunk, session.connection().dialect)
        # An ORM query fills the expired attributes of the instances already in the session.
        session.execute(select(info.model).where(cond)).all()


def pk_of(info: ModelInfo, obj: object) -> tuple[Any, ...]:
    """The record's logical primary key, read from the instance."""
    data = attributes.instance_dict(obj)
    keys = info.pk_keys
    if len(keys) == 1:  # per row: skip the generator for the usual single-column key
        key = keys[0]
        return (data[key] if key in data else getattr(obj, key),)
    return tuple(data[k] if k in data else getattr(obj, k) for k in keys)


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
    if len(changed) < 2:
        return changed
    order: dict[str, int] | None = info.cache.get("field_order")
    if order is None:  # per model, not per row
        order = info.cache["field_order"] = {k: i for i, (k, _c) in enumerate(info.fields)}
    return sorted(changed, key=order.__getitem__)


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
    return own_row(info, pk, operation, changeset_id, dict(state),
                   None if changed is None else list(changed), reverted_from)


def own_row(
    info: ModelInfo,
    pk: tuple[Any, ...],
    operation: str,
    changeset_id: int,
    state: dict[str, Any],
    changed: list[str] | None,
    reverted_from: int | None = None,
) -> dict[str, Any]:
    """``version_row`` that takes ownership of ``state`` and ``changed`` (no copies)."""
    row: dict[str, Any] = dict(zip(pk_params(info), pk, strict=True))
    row["operation"] = operation
    row["changeset_id"] = changeset_id
    row["reverted_from"] = reverted_from
    row["state"] = state
    row["changed"] = changed
    return row


FRESH = "_fresh"
NUMBER = "_number"


def _number(session: Session, info: ModelInfo, known: list[dict[str, Any]],
            unknown: list[dict[str, Any]]) -> None:
    """Number ``unknown`` rows after their records' latest versions (one lookup)."""
    names = pk_params(info)
    pks = [tuple(r[n] for n in names) for r in unknown]
    latest = latest_numbers(session, info, pks)
    taken: dict[tuple[Any, ...], int] = {}
    for row in known:  # a record can have a numbered row in the same flush
        pk = tuple(row[n] for n in names)
        taken[pk] = max(taken.get(pk, 0), row["version"])
    for pk, row in zip(pks, unknown, strict=True):
        taken[pk] = max(taken.get(pk, 0), latest.get(pk, 0)) + 1
        row["version"] = taken[pk]


def write_shadow(session: Session, info: ModelInfo, rows: list[dict[str, Any]]) -> None:
    """Insert shadow versions: one COPY or executemany per table (plus a lookup where needed)."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    # SQLite serializes writers and runs in-process, so it numbers every row in the INSERT
    # itself. Elsewhere each written record's row is locked by our own INSERT/UPDATE/DELETE
    # until commit, so a number known already (a key fresh from a sequence, or read with the
    # row) stays right, and so does one looked up now.
    in_sql = dialect.name == "sqlite"
    known: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    changed_json: dict[tuple[str, ...], str] = {}  # a batch's rows mostly share one list
    for row in rows:
        number = 1 if row.pop(FRESH, False) else row.pop(NUMBER, None)
        row.pop(NUMBER, None)
        # Encoded here, after relations added collections: SQLAlchemy's per-row JSON bind
        # processing costs as much as the INSERT itself on a 100-row flush.
        row["state"] = _dumps(row["state"])
        changed = row["changed"]
        if changed is not None:
            key = tuple(changed)
            found = changed_json.get(key)
            if found is None:
                found = changed_json[key] = _dumps(changed)
            row["changed"] = found
        if number is None or in_sql:
            unknown.append(row)
        else:
            row["version"] = number
            known.append(row)
    if copies(dialect):
        if unknown:
            _number(session, info, known, unknown)
        copy_rows(conn, info, known + unknown)
        return
    # Known numbers first: a numbered-by-INSERT row of the same record then counts them.
    if known:
        insert_rows(conn, info, known, numbered=True)
    if unknown:
        insert_rows(conn, info, unknown, numbered=False)


def generated_key(info: ModelInfo, obj: object) -> bool:
    """True if the database will make this new object's key from a sequence (never reused)."""
    try:
        key = info.cache["sequence_key"]
    except KeyError:  # asked per new object: work out once per model which key that is
        cols = info.pk_columns
        single = len(cols) == 1 and cols[0] is info.table.autoincrement_column
        key = info.cache["sequence_key"] = info.pk_keys[0] if single else None
    return key is not None and attributes.instance_dict(obj).get(key) is None


def read_for_delete(
    session: Session, info: ModelInfo, objs: list[object]
) -> dict[tuple[Any, ...], tuple[dict[str, Any], int]]:
    """The rows ``objs`` are about to delete, as stored, with their latest version numbers:
    one SELECT per 500 that also loads the instances (the DELETE needs them loaded) and
    locks the rows until the DELETE, where the database has row locks."""
    vt = info.version_table
    assert vt is not None
    cols = list(info.mapper.primary_key)
    latest = (
        select(func.coalesce(func.max(vt.c.version), literal_column("0")))
        .where(*[vt.c[c.name] == c for c in info.pk_columns])
        .scalar_subquery()
    )
    idents = [tuple(attributes.instance_state(o).key[1]) for o in objs]  # type: ignore[index]
    found: dict[tuple[Any, ...], tuple[dict[str, Any], int]] = {}
    for i in range(0, len(idents), _LOAD_CHUNK):
        cond = keys_in(cols, idents[i : i + _LOAD_CHUNK], session.connection().dialect)
        stmt = (
            select(info.model, latest).where(cond).with_for_update(of=info.table)
            # the stored values, over a stale instance's or its unsaved edits
            .execution_options(populate_existing=True)
        )
        for obj, number in session.execute(stmt):
            found[pk_of(info, obj)] = (snapshot(info, obj), int(number))
    return found


def read_states(
    session: Session, info: ModelInfo, pks: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[dict[str, Any], int]]:
    """The encoded states of live rows as the database holds them now, with each record's
    latest version number (one SELECT)."""
    if not pks:
        return {}
    keys = [k for k, _c in info.fields]
    pk_cols = info.pk_columns
    index = [keys.index(k) for k in info.pk_keys]
    vt = info.version_table
    assert vt is not None

    def build() -> Select[Any]:
        latest = (
            select(func.coalesce(func.max(vt.c.version), literal_column("0")))
            .where(*[vt.c[c.name] == c for c in pk_cols])
            .scalar_subquery()
        )
        stmt = select(*[c for _k, c in info.fields], latest)
        if len(info.mapper.tables) > 1:  # joined-table inheritance: the base joined to its own
            stmt = stmt.select_from(info.mapper.persist_selectable)
        return stmt

    found: dict[tuple[Any, ...], tuple[dict[str, Any], int]] = {}
    row: Any
    for row in lookup(session, info, "states", pk_cols, pks, build):
        state = {
            k: v if v.__class__ in PLAIN else encode(v)
            for k, v in zip(keys, row[:-1], strict=True)
        }
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
    if len(cols) == 1 and session.connection().dialect.name == "postgresql":
        return latest_per_key(session, info, cols[0], number, pks)

    def build() -> Select[Any]:
        return select(*cols, func.max(number)).group_by(*cols)

    return {tuple(r[:-1]): int(r[-1]) for r in lookup(session, info, "latest", cols, pks, build)}
