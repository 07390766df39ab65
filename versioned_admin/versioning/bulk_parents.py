"""Which records' collections a bulk statement changes, read before it runs (or a refusal).

A statement on a child table (``update(Line).values(order_id=…)``) or on an association table
(``article_tag.insert()``) changes the collections of records it never names. Their keys are
read with one SELECT before the statement (the old parents of the matched rows and, for an
UPDATE, the parents the SET clause gives them), or taken from an INSERT's own values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, Column, Select, Table, select
from sqlalchemy.orm import Mapper, ORMExecuteState
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.functions import FunctionElement

from .bulk_cascades import cascading, read_cascades
from .relations import CollectionSpec, Pk
from .schema import ModelInfo, pk_in, registered
from .types import UnversionedWriteError

Watched = list[tuple[ModelInfo, CollectionSpec]]

# Functions whose value differs between our SELECT and the statement itself: re-running a
# WHERE (or a SET expression) that calls them would not find the rows the statement changes.
VOLATILE = frozenset({
    "random", "randomblob", "nextval", "setval", "gen_random_uuid", "uuid_generate_v4",
    "clock_timestamp", "statement_timestamp", "timeofday", "changes", "last_insert_rowid",
})


@dataclass
class ParentChanges:
    """The records whose collections a bulk statement may change, by model."""

    table: Table
    watched: Watched
    parents: dict[int, tuple[ModelInfo, set[Pk]]] = field(default_factory=dict)

    def add(self, info: ModelInfo, pks: set[Pk]) -> None:
        """Note parents of ``info`` (keys with a NULL are no parent)."""
        keep = {pk for pk in pks if all(v is not None for v in pk)}
        if keep:
            self.parents.setdefault(id(info), (info, set()))[1].update(keep)


def watched(table: Table) -> Watched:
    """(model, collection) pairs whose members are held by rows of ``table``."""
    return [(info, spec) for info in registered() for spec in info.collections
            if spec.parent_cols[0].table is table]


def analyse(state: ORMExecuteState) -> ParentChanges | None:
    """Find the parents a bulk statement changes; refuse what cannot be versioned."""
    table = getattr(state.statement, "table", None)
    if not isinstance(table, Table):
        return None
    table = table._deannotate()  # an ORM statement's table is an annotated copy
    assert isinstance(table, Table)
    specs = watched(table)
    fks = cascading(table) if state.is_delete else []
    if not specs and not fks:
        return None
    held = [pair for fk in fks for pair in watched(fk.table)]
    found = ParentChanges(table, specs + held)
    reader = StatementReader(state, table, specs + held)
    if state.is_insert:
        reader.insert(found)
    elif state.is_update:
        reader.update(found)
    else:
        reader.delete(found, specs)
        read_cascades(reader, found, fks, held)
    for info, pks in found.parents.values():
        if info.strategy == "rows":
            keys = ", ".join(s.key for i, s in specs if i is info)
            raise UnversionedWriteError(
                f"bulk {_verb(state)} on {table.name} changes {info.model.__name__}.{keys} of "
                f"{len(pks)} record(s) ({info.model.__name__} uses the rows strategy), which is "
                f"not versioned: load the {info.model.__name__} records and change their "
                f"{keys} through the session instead"
            )
    return found


def volatile_call(expr: Any) -> str | None:
    """The name of a function in ``expr`` whose value may differ when evaluated again."""
    if not isinstance(expr, ClauseElement):
        return None
    for node in visitors.iterate(expr):
        if isinstance(node, FunctionElement) and str(node.name).lower() in VOLATILE:
            return str(node.name)
    return None


def _verb(state: ORMExecuteState) -> str:
    return "UPDATE" if state.is_update else "DELETE" if state.is_delete else "INSERT"


def _names(table: Table, mapper: Mapper[Any] | None) -> dict[str, Column[Any]]:
    """Column key, column name and (ORM statements) attribute key -> column of ``table``."""
    found: dict[str, Column[Any]] = {c.name: c for c in table.c}
    found.update({c.key: c for c in table.c})
    if mapper is not None:
        for prop in mapper.column_attrs:
            col = prop.columns[0]
            if isinstance(col, Column) and col.table is table:
                found[prop.key] = col
    return found


def _literal(value: Any) -> tuple[bool, Any]:
    """(True, python value) for a plain or bound value; (False, expression) otherwise."""
    if isinstance(value, BindParameter) and not value.required and value.callable is None:
        return True, value.value
    if isinstance(value, ClauseElement):
        return False, value
    return True, value


class StatementReader:
    """Reads one statement's parents; built per statement."""

    def __init__(self, state: ORMExecuteState, table: Table, specs: Watched) -> None:
        self.state = state
        self.stmt: Any = state.statement
        self.table = table
        self.specs = specs
        self.names = _names(table, state.bind_mapper)
        self.conn = state.session.connection()
        params = state.parameters
        self.many: list[dict[str, Any]] | None = params if isinstance(params, list) else None
        self.params: dict[str, Any] = dict(params) if isinstance(params, dict) else {}

    def refuse(self, why: str) -> UnversionedWriteError:
        """The refusal for a statement whose parents cannot be read."""
        what = "rows that other tables refer to"
        if self.specs:
            info, spec = self.specs[0]
            what = f"{info.model.__name__}.{spec.key}"
        return UnversionedWriteError(
            f"bulk {_verb(self.state)} on {self.table.name} changes {what}, and {why}, so the "
            f"records it changes cannot be versioned: change them through the session instead"
        )

    def column(self, key: Any) -> Column[Any] | None:
        """The column of ``table`` a SET/VALUES key names."""
        if isinstance(key, str):
            return self.names.get(key)
        if getattr(key, "table", None) is self.table:
            return self.table.c.get(key.key)
        name = getattr(key, "key", None)
        return self.names.get(name) if isinstance(name, str) else None

    def check_rerunnable(self, *exprs: Any) -> None:
        """Refuse expressions whose second evaluation may differ from the statement's."""
        for expr in exprs:
            if not isinstance(expr, ClauseElement):
                continue
            called = volatile_call(expr)
            if called is not None:
                raise self.refuse(f"it calls {called}(), which a second read would not repeat")
            for node in visitors.iterate(expr):
                if (isinstance(node, BindParameter) and node.required
                        and node.key not in self.params):
                    raise self.refuse(f"its parameter {node.key!r} has no value to read with")

    def run(self, sel: Select[Any]) -> list[Any]:
        """Run a SELECT with the statement's own parameters (its WHERE may bind them)."""
        return list(self.conn.execute(sel, self.params))

    # ------------------------------------------------------------------------- INSERT

    def insert(self, found: ParentChanges) -> None:
        """Parents named by an INSERT's values."""
        stmt = self.stmt
        if getattr(stmt, "select", None) is not None:
            raise self.refuse("INSERT … FROM SELECT gives its rows only when it runs (insert "
                              "explicit values)")
        post = getattr(stmt, "_post_values_clause", None)
        if post is not None and type(post).__name__ != "OnConflictDoNothing":
            raise self.refuse("ON CONFLICT DO UPDATE may move existing rows")
        rows = self._insert_rows()
        pending: list[tuple[ModelInfo, list[Any]]] = []
        exprs: list[Any] = []
        for info, spec in self.specs:
            for row in rows:
                key: list[Any] = []
                for col in spec.parent_cols:
                    known, value = _literal(row[col]) if col in row else self._default(col)
                    if not known:
                        self.check_rerunnable(value)
                        exprs.append(value)
                        value = _Slot(len(exprs) - 1)
                    key.append(value)
                pending.append((info, key))
        values = list(self.conn.execute(select(*exprs), self.params).one()) if exprs else []
        for info, key in pending:
            found.add(info, {tuple(values[v.index] if isinstance(v, _Slot) else v for v in key)})

    def _insert_rows(self) -> list[dict[Column[Any], Any]]:
        stmt = self.stmt
        base: dict[Column[Any], Any] = {}
        for key, value in (stmt._values or {}).items():
            col = self.column(key)
            if col is not None:
                base[col] = value
        multi = [r for group in (stmt._multi_values or ()) for r in group]
        if multi:
            cols = list(self.table.c)
            out = []
            for r in multi:
                if isinstance(r, dict):
                    out.append({**base, **{c: v for k, v in r.items()
                                           if (c := self.column(k)) is not None}})
                else:
                    out.append({**base, **dict(zip(cols, r, strict=False))})
            return out
        sets = self.many if self.many is not None else [self.params]
        return [{**base, **{c: v for k, v in p.items() if (c := self.column(k)) is not None}}
                for p in sets]

    def _default(self, col: Column[Any]) -> tuple[bool, Any]:
        """The value a column gets when an INSERT leaves it out."""
        if col.server_default is not None or (col.default is not None
                                             and not col.default.is_scalar):
            raise self.refuse(f"{col.name} is left to a default that is known only when the "
                              f"row is written (pass it explicitly)")
        return True, col.default.arg if col.default is not None else None  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------- UPDATE

    def update(self, found: ParentChanges) -> None:
        """Old parents of the matched rows and the new ones their SET clause gives them."""
        if self.many is not None:
            self._update_by_keys(found)
            return
        assigned: dict[Column[Any], Any] = {}
        pairs = list((self.stmt._values or {}).items())
        pairs += list(getattr(self.stmt, "_ordered_values", None) or ())
        pairs += list(self.params.items())  # Core: a parameter named like a column sets it
        for key, value in pairs:
            col = self.column(key)
            if col is not None:
                assigned.setdefault(col, value)
        specs = [(i, s) for i, s in self.specs if _touches(s, set(assigned))]
        if not specs:
            return  # no member, key or order changes: the collections stay as they are
        where = self.stmt.whereclause
        self.check_rerunnable(where, *[assigned[c] for _i, s in specs
                                       for c in s.parent_cols if c in assigned])
        exprs: list[Any] = []
        plan: list[tuple[ModelInfo, list[int], list[tuple[bool, Any]]]] = []
        for info, spec in specs:
            old = []
            for col in spec.parent_cols:
                exprs.append(col)
                old.append(len(exprs) - 1)
            new: list[tuple[bool, Any]] = []
            for col, at in zip(spec.parent_cols, old, strict=True):
                known, value = _literal(assigned[col]) if col in assigned else (False, None)
                if known:
                    new.append((True, value))
                elif col in assigned:
                    exprs.append(value)  # the SET expression, on the row as it is now
                    new.append((False, len(exprs) - 1))
                else:
                    new.append((False, at))
            plan.append((info, old, new))
        if not plan:
            return
        sel = select(*exprs)
        if where is not None:
            sel = sel.where(where)
        for row in self.run(sel):
            for info, old, new in plan:
                found.add(info, {tuple(row[i] for i in old),
                                 tuple(v if known else row[v] for known, v in new)})

    def _update_by_keys(self, found: ParentChanges) -> None:
        """ORM UPDATE by primary key: one parameter set per row, each naming its key."""
        mapper = self.state.bind_mapper
        if mapper is None or self.stmt.whereclause is not None:
            raise self.refuse("it runs once per parameter set with a WHERE clause, which "
                              "cannot be read in one go (run one statement per set)")
        pk_cols = [c for k in mapper.primary_key if (c := self.column(k.key)) is not None]
        names = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
        sets = [{c: v for k, v in p.items() if (c := self.column(k)) is not None}
                for p in self.many or []]
        specs = [(i, s) for i, s in self.specs
                 if any(_touches(s, set(p)) for p in sets)]
        if not specs or len(pk_cols) != len(names):
            return  # the key lives in another table (inheritance): SQLAlchemy decides
        keys = [tuple(p.get(n) for n in names) for p in self.many or []]
        cols = [c for _i, s in specs for c in s.parent_cols]
        rows = {tuple(r[:len(pk_cols)]): r[len(pk_cols):]
                for r in self.run(select(*pk_cols, *cols).where(pk_in(pk_cols, keys)))}
        for key, values in zip(keys, sets, strict=True):
            row = rows.get(key)
            if row is None:
                continue
            at = 0
            for info, spec in specs:
                old = tuple(row[at:at + len(spec.parent_cols)])
                new = tuple(values.get(c, o) for c, o in zip(spec.parent_cols, old, strict=True))
                at += len(spec.parent_cols)
                found.add(info, {old, new})

    # ------------------------------------------------------------------------- DELETE

    def delete(self, found: ParentChanges, specs: Watched) -> None:
        """Parents of the rows a DELETE matches (``specs``: collections held in its table)."""
        if self.many is not None:
            raise self.refuse("it runs once per parameter set, which cannot be read in one go "
                              "(run one statement per set)")
        where = self.stmt.whereclause
        self.check_rerunnable(where)
        if not specs:
            return
        cols = [c for _i, s in specs for c in s.parent_cols]
        sel = select(*cols)
        if where is not None:
            sel = sel.where(where)
        for row in self.run(sel):
            at = 0
            for info, spec in specs:
                found.add(info, {tuple(row[at:at + len(spec.parent_cols)])})
                at += len(spec.parent_cols)


@dataclass(frozen=True)
class _Slot:
    """A value an INSERT computes in SQL: its position in the one SELECT that reads them."""

    index: int


def _touches(spec: CollectionSpec, assigned: set[Column[Any]]) -> bool:
    """True if setting ``assigned`` columns can change the collection (members or order)."""
    cols = set(spec.parent_cols) | set(spec.target_cols)
    if spec.ordered:
        for expr in spec.prop.order_by or ():
            cols |= {c for c in visitors.iterate(expr) if isinstance(c, Column)}
    return bool(cols & assigned)
