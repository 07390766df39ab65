"""The statements the writer runs for every flush, built once per model and dialect.

A 100-row flush is dominated by per-row and per-statement overhead, not by the database:
so version rows go below SQLAlchemy's per-row bind processing (their JSON is encoded once,
by the writer), PostgreSQL gets them with COPY, and key lookups bind one array.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Insert, Select, bindparam, exc, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.orm import Session

from .schema import ModelInfo, pk_in

BOOKKEEPING = ("operation", "changeset_id", "reverted_from", "state", "changed")

def pk_params(info: ModelInfo) -> tuple[str, ...]:
    """Names of a version row's key parameters (``pk_<column>``)."""
    names: tuple[str, ...] | None = info.cache.get("pk_params")
    if names is None:
        names = info.cache["pk_params"] = tuple(f"pk_{c.name}" for c in info.pk_columns)
    return names


def _numbering_insert(info: ModelInfo) -> Insert:
    """INSERT … SELECT that numbers each version ``max + 1`` of the record's own versions."""
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
        *[bindparam(name, type_=vt.c[name].type) for name in BOOKKEEPING],
    ).where(*[inner.c[c.name] == p for c, p in zip(pk_cols, params, strict=True)])
    names = [c.name for c in pk_cols] + ["version", *BOOKKEEPING]
    return vt.insert().from_select(names, sel)


def _numbered_insert(info: ModelInfo) -> Insert:
    """A plain INSERT for versions whose numbers are already known."""
    vt = info.version_table
    assert vt is not None
    values: dict[Any, Any] = {
        vt.c[c.name]: bindparam(f"pk_{c.name}", type_=vt.c[c.name].type) for c in info.pk_columns
    }
    values[vt.c.version] = bindparam("version", type_=vt.c.version.type)
    values.update({vt.c[name]: bindparam(name, type_=vt.c[name].type) for name in BOOKKEEPING})
    return vt.insert().values(values)


class _DriverSQL(NamedTuple):
    """An INSERT compiled once per dialect, run below SQLAlchemy's per-row bind processing."""

    sql: str
    order: list[str] | None  # parameter order for positional dialects
    processors: list[tuple[str, Callable[[Any], Any]]]  # bind processors still needed


def _driver_sql(info: ModelInfo, dialect: Dialect, numbered: bool) -> _DriverSQL:
    key = ("driver_sql", dialect.name, numbered)
    found: _DriverSQL | None = info.cache.get(key)
    if found is None:
        stmt = _numbered_insert(info) if numbered else _numbering_insert(info)
        compiled = stmt.compile(dialect=dialect)
        order = list(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        # States arrive as JSON text already; keys and bookkeeping values may still need their
        # type's processing (e.g. a UUID key on SQLite).
        processors: list[tuple[str, Callable[[Any], Any]]] = []
        for name, bind in compiled.binds.items():
            if name in ("state", "changed"):
                continue
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                processors.append((name, proc))
        found = _DriverSQL(compiled.string, order, processors)
        info.cache[key] = found
    return found


def _process(rows: list[dict[str, Any]], processors: list[tuple[str, Any]]) -> None:
    for name, proc in processors:
        for row in rows:
            row[name] = proc(row[name])


def insert_rows(conn: Connection, info: ModelInfo, rows: list[dict[str, Any]],
                numbered: bool) -> None:
    """One executemany of version rows; ``numbered``: rows carry ``version``, else SQL numbers."""
    sql, order, processors = _driver_sql(info, conn.dialect, numbered)
    _process(rows, processors)
    if order is None:
        params: Any = rows
    else:
        row_values = itemgetter(*order)  # positional drivers: tuples, built at C speed
        params = [row_values(r) for r in rows]
    conn.exec_driver_sql(sql, params)


def copies(dialect: Dialect) -> bool:
    """True if versions are written with COPY (psycopg 3, the synchronous driver)."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def copy_rows(conn: Connection, info: ModelInfo, rows: list[dict[str, Any]]) -> None:
    """Write numbered version rows with one COPY: half the time of a pipelined executemany."""
    # COPY skips the per-statement executor start and the per-row Bind/Execute messages. It
    # runs on the driver connection, so cursor events (statement loggers) do not see it.
    dialect = conn.dialect
    found: tuple[str, tuple[str, ...]] | None = info.cache.get("copy_sql")
    if found is None:
        vt = info.version_table
        assert vt is not None
        prep = dialect.identifier_preparer
        names = [c.name for c in info.pk_columns] + ["version", *BOOKKEEPING]
        cols = ", ".join(prep.quote(n) for n in names)
        keys = (*pk_params(info), "version", *BOOKKEEPING)
        found = info.cache["copy_sql"] = (f"COPY {prep.format_table(vt)} ({cols}) FROM STDIN", keys)
    sql, keys = found
    _process(rows, _driver_sql(info, dialect, True).processors)
    driver = conn.connection.driver_connection
    assert driver is not None
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            row_values = itemgetter(*keys)
            for row in rows:
                copy.write_row(row_values(row))
    except dbapi_error as err:
        # The same exception classes as any other statement (IntegrityError on a lost race).
        raise exc.DBAPIError.instance(sql, None, err, dbapi_error) from err


def keys_in(cols: list[Any], pks: list[tuple[Any, ...]], dialect: Dialect) -> ColumnElement[bool]:
    """``pk_in`` that binds one array on PostgreSQL instead of a parameter per key."""
    if len(cols) == 1 and dialect.name == "postgresql":
        return cols[0] == func.any(bindparam(None, [p[0] for p in pks], type_=ARRAY(cols[0].type)))
    return pk_in(cols, pks)


def _keys_param(col: Any, dialect: Dialect) -> ColumnElement[bool]:
    """``col`` in the key list bound as ``pks``: one array parameter on PostgreSQL."""
    # An array is a quarter of the time of 100 placeholders to render, send and plan.
    if dialect.name == "postgresql":
        return col == func.any(bindparam("pks", type_=ARRAY(col.type)))
    return col.in_(bindparam("pks", expanding=True))


def lookup(
    session: Session,
    info: ModelInfo,
    kind: str,
    cols: list[Any],
    pks: list[tuple[Any, ...]],
    build: Callable[[], Select[Any]],
) -> CursorResult[Any]:
    """Run the SELECT ``build`` makes, for the keys ``pks`` of ``cols``; built once per dialect."""
    # Building and cache-keying a statement per flush costs about as much as running it.
    conn = session.connection()
    dialect = conn.dialect
    if len(cols) != 1:
        return conn.execute(build().where(keys_in(cols, pks, dialect)))
    key = ("lookup", dialect.name, kind)
    stmt: Select[Any] | None = info.cache.get(key)
    if stmt is None:
        stmt = info.cache[key] = build().where(_keys_param(cols[0], dialect))
    return conn.execute(stmt, {"pks": [p[0] for p in pks]})


def latest_per_key(
    session: Session, info: ModelInfo, col: Any, number: Any, pks: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], int]:
    """Each key's highest ``number`` on PostgreSQL (single-column keys): one probe per key."""
    # "GROUP BY col WHERE col = ANY(...)" lets the planner scan the whole history table when
    # its statistics are stale, as they are while it fills: 12 ms instead of 0.5 ms at 20,000
    # versions. A max() per key always walks the primary key index backwards.
    cache_key = ("lookup", "postgresql", f"latest:{number.table.name}")
    stmt: Select[Any] | None = info.cache.get(cache_key)
    if stmt is None:
        arr = bindparam("pks", type_=ARRAY(col.type))
        key = func.unnest(arr, type_=col.type).column_valued("k")  # read back as a key
        top = select(func.max(number)).where(col == key).scalar_subquery()
        stmt = info.cache[cache_key] = select(key, top)
    rows = session.connection().execute(stmt, {"pks": [p[0] for p in pks]})
    return {(r[0],): int(r[1]) for r in rows if r[1] is not None}

