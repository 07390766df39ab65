"""Bulk statements (``update()``, ``delete()``, ``insert()`` of a model): versioned or refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import false
from sqlalchemy.orm import ORMExecuteState, Session

from .bulk_collections import version_parents, write_versions
from .bulk_parents import ParentChanges, analyse, volatile_call
from .inheritance import states_select
from .relations import lists_for
from .schema import ModelInfo, model_info, pk_in, registered
from .statements import keys_in
from .types import Operation, UnversionedWriteError
from .writer import version_row

ChangesetFor = Callable[[Session, ModelInfo], int]


def _target(state: ORMExecuteState) -> ModelInfo | None:
    mapper = state.bind_mapper
    if mapper is not None:
        return model_info(mapper.class_)
    table = getattr(state.statement, "table", None)
    entity = getattr(table, "entity_namespace", None)
    if isinstance(entity, type):
        return model_info(entity)
    # A Core statement on a versioned model's table, run through the session.
    return next((i for i in registered() if i.table is table), None)


def _sets_pk(info: ModelInfo, stmt: Any) -> bool:
    """True if an UPDATE statement assigns a primary key column."""
    names = set(info.pk_keys) | {c.name for c in info.pk_columns}
    values = dict(getattr(stmt, "_values", None) or {})
    values.update(dict(getattr(stmt, "_ordered_values", None) or ()))
    return any((k if isinstance(k, str) else getattr(k, "key", None)) in names for k in values)


def _single(params: Any) -> dict[str, Any]:
    """The one parameter set of a statement, which its WHERE may bind; else none."""
    if isinstance(params, list):
        return dict(params[0]) if len(params) == 1 else {}
    return dict(params or {})


def _states(
    session: Session,
    info: ModelInfo,
    where: Any,
    params: dict[str, Any] | None = None,
    lock: bool = False,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Current encoded states of the rows matching ``where``, by primary key (``lock``: and
    hold them until the transaction ends, so nobody changes them before the statement)."""
    # Joins a subclass's own table and keeps to its class, reading each row as its class.
    stmt, read = states_select(info)
    if where is not None:
        stmt = stmt.where(where)
    if lock:
        if session.connection().dialect.name == "sqlite":
            # SQLite locks the whole database for writing, and only once a write begins:
            # begin one that changes nothing, so no other writer commits between this read
            # and the statement.
            first = info.pk_columns[0]
            session.connection().execute(
                info.table.update().where(false()).values({first: first}))
        else:
            # Only the base table: PostgreSQL refuses FOR UPDATE on an outer join's other side.
            stmt = stmt.with_for_update(of=info.table)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in session.connection().execute(stmt, params or {}):
        pk, state = read(row)
        found[pk] = state
    return found


def _by_pks(info: ModelInfo, pks: list[tuple[Any, ...]]) -> Any:
    return pk_in(info.pk_columns, pks)


_PARAMETER_LIMIT = 30_000  # below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters


def _keys(session: Session, info: ModelInfo, pks: list[tuple[Any, ...]]) -> Any:
    """The rows with these keys: an IN list (which the ORM can evaluate in Python), or one
    array parameter on PostgreSQL when the list would pass the driver's parameter limit."""
    # The ORM attributes: a joined subclass's UPDATE then filters the table it writes.
    cols = [getattr(info.model, k) for k in info.pk_keys]
    if len(pks) * len(cols) < _PARAMETER_LIMIT:
        return pk_in(cols, pks)
    return keys_in(cols, pks, session.connection().dialect)


def _params_pks(info: ModelInfo, params: Any) -> list[tuple[Any, ...]] | None:
    if not isinstance(params, list) or not params:
        return None
    pks = []
    for p in params:
        if not all(k in p for k in info.pk_keys):
            return None
        pks.append(tuple(p[k] for k in info.pk_keys))
    return pks


def handle(state: ORMExecuteState, changeset_for: ChangesetFor) -> Any:
    """Run a bulk DML statement on a versioned model and write its versions."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return None
    info = _target(state)
    if info is not None and info.strategy == "rows":
        raise UnversionedWriteError(
            f"bulk {_verb(state)} on {info.model.__name__} (rows strategy) is not versioned: "
            "load the objects and change them through the session instead"
        )
    session = state.session
    if info is None:
        # Rows of this table may still be members of versioned records' collections.
        parents = analyse(state)
        if parents is None:
            return None
        result = state.invoke_statement()
        version_parents(session, parents, changeset_for)
        return result
    name = info.model.__name__
    listed = _params_pks(info, state.parameters)
    if state.is_insert:
        if listed is None:
            raise UnversionedWriteError(
                f"bulk INSERT into {name} without explicit primary keys cannot be versioned: "
                "use session.add_all() or pass the primary key values"
            )
        parents = analyse(state)
        result = state.invoke_statement()
        after = _states(session, info, _by_pks(info, listed))
        _write(session, info, changeset_for, Operation.INSERT, {}, after, parents)
        return result
    if state.is_update and _sets_pk(info, state.statement):
        raise UnversionedWriteError(
            f"bulk UPDATE on {name} changes a primary key, which versioning cannot follow: "
            "delete the records and insert new ones"
        )
    if state.is_delete and any(len(m.mapper.tables) > 1 for m in info.root.family()):
        raise UnversionedWriteError(
            f"bulk DELETE on {name} (joined-table inheritance) would delete only one table's "
            "rows of each record: delete the records through the session instead"
        )
    parents = analyse(state)  # other records whose collections hold these rows
    if listed is not None:
        where: Any = _by_pks(info, listed)
    else:
        where = state.statement.whereclause  # type: ignore[attr-defined]
        _check_rerunnable(state, info, where)
    before = _states(session, info, where, _single(state.parameters), lock=True)
    if listed is None:
        # Only the rows just read (and locked): a row another transaction commits meanwhile
        # that matches the WHERE would otherwise change without a version.
        only_read = _keys(session, info, list(before))
        result = state.invoke_statement(
            statement=state.statement.where(only_read)  # type: ignore[attr-defined]
        )
    else:
        result = state.invoke_statement()
    if not before:
        return result
    if state.is_delete:
        _write(session, info, changeset_for, Operation.DELETE, before, {}, parents)
    else:
        after = _states(session, info, _by_pks(info, list(before)))
        _write(session, info, changeset_for, Operation.UPDATE, before, after, parents)
    return result


def _check_rerunnable(state: ORMExecuteState, info: ModelInfo, where: Any) -> None:
    """Refuse a WHERE whose second run (to read the rows' states) may match other rows."""
    name = info.model.__name__
    if isinstance(state.parameters, list) and len(state.parameters) > 1:
        raise UnversionedWriteError(
            f"bulk {_verb(state)} on {name} runs once per parameter set with a WHERE clause, "
            "whose rows cannot be read in one go to version them: run one statement per set, "
            "or pass the primary key values in each set"
        )
    called = volatile_call(where)
    if called is not None:
        raise UnversionedWriteError(
            f"bulk {_verb(state)} on {name} cannot be versioned: its WHERE calls {called}(), "
            "so reading its rows again may match others; select the keys first, then run the "
            "statement on those keys"
        )


def _verb(state: ORMExecuteState) -> str:
    return "UPDATE" if state.is_update else "DELETE" if state.is_delete else "INSERT"


def _write(
    session: Session,
    info: ModelInfo,
    changeset_for: ChangesetFor,
    operation: Operation,
    before: dict[tuple[Any, ...], dict[str, Any]],
    after: dict[tuple[Any, ...], dict[str, Any]],
    parents: ParentChanges | None,
) -> None:
    rows: list[dict[str, Any]] = []
    keys = [k for k, _c in info.fields]
    items: list[tuple[tuple[Any, ...], dict[str, Any], list[str]]]
    if operation is Operation.DELETE:
        items = [(pk, before[pk], []) for pk in before]
    elif operation is Operation.INSERT:
        items = [(pk, after[pk], keys) for pk in after]
    else:
        items = []
        for pk, new in after.items():
            old = before.get(pk, {})
            changed = [k for k in keys if old.get(k) != new.get(k)]
            if changed:
                items.append((pk, new, changed))
    if items:
        cs_id = changeset_for(session, info)
        for pk, snap, changed in items:
            rows.append(version_row(info, pk, operation.value, cs_id, snap, changed))
        # The new versions list the collections as they now are and share the previous
        # version's map entries, as a column-only flush does.
        lists_for(session, info, rows)
    if parents is not None:
        # Other records' collections (and this model's own, if it refers to itself).
        version_parents(session, parents, changeset_for, (info, rows))
    write_versions(session, info, rows, changeset_for)
