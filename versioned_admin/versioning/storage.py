"""Where each strategy keeps a model's history, and how a version is read back from it.

What differs between the shadow and the rows strategy on the reading side lives here, once:
the history table and its number column, the SELECT that returns versions with their
changesets, the row-to-Version conversion, which rows are live. History queries, temporal
lookups and records ask a model's Storage instead of branching on its strategy.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, Table, and_, exists, select
from sqlalchemy.orm import Session

from .codec import decode, encode
from .inheritance import kind_clause
from .rows_collections import side_table
from .schema import ModelInfo
from .types import Changeset, Operation, Version

_STORAGE = "storage"  # key of a model's Storage in its ModelInfo.cache


class Storage:
    """One model's history: shared by both strategies, specialised by each."""

    def __init__(self, info: ModelInfo, history: Table, number: str) -> None:
        self.info = info
        #: The table versions are rows of, and the name of its version-number column.
        self.history = history
        self.number_name = number

    @property
    def number(self) -> Any:
        """The version-number column."""
        return self.history.c[self.number_name]

    @property
    def operation(self) -> Any:
        """The operation column (insert/update/delete)."""
        return self.history.c.operation

    @property
    def changeset_id(self) -> Any:
        """The column naming each version's changeset."""
        return self.history.c.changeset_id

    def kind(self) -> ColumnElement[bool] | None:
        """The condition keeping to this model's records in a shared history (inheritance)."""
        return None

    def select(self) -> Select[Any]:
        """Versions of this model's records, with their changesets."""
        raise NotImplementedError

    def version(self, row: Row[Any]) -> Version:
        """One version from a row of ``select()``."""
        raise NotImplementedError

    def of_record(self, pk: tuple[Any, ...]) -> ColumnElement[bool]:
        """The versions of one record."""
        cols = [self.history.c[c.name] for c in self.info.pk_columns]
        return and_(*[c == v for c, v in zip(cols, pk, strict=True)])

    def is_latest(self) -> ColumnElement[bool]:
        """True for each record's newest version."""
        later = self.history.alias("later")
        same = [later.c[c.name] == self.history.c[c.name] for c in self.info.pk_columns]
        return ~exists().where(*same, later.c[self.number_name] > self.number)

    def touches(self, changesets: Table) -> ColumnElement[bool]:
        """True for a changeset that has a version of this model."""
        cond = self.changeset_id == changesets.c.id
        kind = self.kind()
        return exists().where(cond if kind is None else and_(cond, kind))

    def live_filter(self) -> ColumnElement[bool] | None:
        """The WHERE that keeps only the live table's live rows (None: every row is live)."""
        return None

    #: Whether a deleted record's collection links stay in place for a restore (else a
    #: restore brings the tombstone's lists back itself).
    keeps_links: bool = False

    def get_live(self, session: Session, key: tuple[Any, ...]) -> Any:
        """The live instance of a record, or None."""
        ident = key[0] if len(key) == 1 else key
        return session.get(self.info.model, ident)


class ShadowStorage(Storage):
    """Shadow strategy: versions are rows of ``<table>_version``, states as JSON."""

    def kind(self) -> ColumnElement[bool] | None:
        """A subclass's versions, by the discriminator in the stored state."""
        return kind_clause(self.info, self.history.c.state)

    def select(self) -> Select[Any]:
        """Versions with their changesets, limited to this model's records."""
        stmt = _shadow_select(self.info)
        kind = self.kind()
        return stmt if kind is None else stmt.where(kind)

    def version(self, row: Row[Any]) -> Version:
        """A stored state decoded as its record's own class."""
        return _shadow_version(self.info, row)


class RowsStorage(Storage):
    """Rows strategy: versions are the rows of the live table itself, keyed by version_id."""

    keeps_links = True  # links are keyed by the record's key, which every row shares

    def select(self) -> Select[Any]:
        """Rows with their changeset, the previous row and the collections."""
        return _rows_select(self.info)

    def version(self, row: Row[Any]) -> Version:
        """A version from a row and the row before it."""
        return _rows_version(self.info, row)

    def live_filter(self) -> ColumnElement[bool] | None:
        """The current row of each record."""
        return self.info.table.c.is_current_version.is_(True)

    def get_live(self, session: Session, key: tuple[Any, ...]) -> Any:
        """The record's current row: its key alone names every row it ever had."""
        cond = and_(*[c == v for c, v in zip(self.info.pk_columns, key, strict=True)])
        live = self.live_filter()
        stmt: Select[Any] = select(self.info.model).where(cond)
        return session.execute(stmt if live is None else stmt.where(live)).scalars().first()


def storage(info: ModelInfo) -> Storage:
    """The model's Storage (made once per model)."""
    found = info.cache.get(_STORAGE)
    if not isinstance(found, Storage):
        if info.strategy == "rows":
            found = RowsStorage(info, info.table, "version_id")
        else:
            assert info.version_table is not None
            found = ShadowStorage(info, info.version_table, "version")
        info.cache[_STORAGE] = found
    return found


def changeset_of(row: Any, prefix: str = "cs_") -> Changeset:
    """The changeset columns of a history row."""
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
        changeset=changeset_of(row),
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
        changeset=changeset_of(row) if row.cs_id is not None else _NO_CHANGESET,
        reverted_from=row.reverted_from,
    )


