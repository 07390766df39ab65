"""The per-transaction changeset: who, when and why, created on first need."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Insert, Table
from sqlalchemy.orm import Session, SessionTransaction

_CHANGESETS = "versioned_admin.changesets"
REASON = "versioned_admin.reason"
USER = "versioned_admin.user"
USER_SOURCE = "versioned_admin.user_source"
# Per savepoint: the user and reason in force when it began, put back if it is rolled back.
_AT_SAVEPOINT = "versioned_admin.at_savepoint"
_UNSET = object()

UserCallable = Callable[[], "str | None"]
_INSERT = "versioned_admin.insert"  # the table's INSERT, kept in its own Table.info


def set_reason(session: Session, reason: str | None) -> None:
    """Record ``reason`` on the changeset of this session's current transaction."""
    session.info[REASON] = (reason or "").strip() or None
    _update_open(session, "reason", session.info[REASON])


def set_user(session: Session, user: str | None) -> None:
    """Record ``user`` as the actor of this session's current transaction."""
    session.info[USER] = user
    _update_open(session, "user", user)


def set_user_source(session: Session, source: UserCallable | None) -> None:
    """Ask ``source()`` for the acting user of every changeset this session writes from now on.

    It wins over the ``user=`` given to ``enable_versioning`` (one per session factory), so
    several admins or apps sharing a factory each record their own users; ``set_user`` wins
    over both for one transaction.
    """
    session.info[USER_SOURCE] = source


def _update_open(session: Session, column: str, value: Any) -> None:
    # A changeset already written in this transaction takes the late reason/user too.
    for table, (_txn, cs_id) in list(session.info.get(_CHANGESETS, {}).items()):
        session.connection().execute(
            table.update().where(table.c.id == cs_id).values({column: value})
        )


def _current_user(session: Session, func: UserCallable | None) -> str | None:
    if USER in session.info:
        user = session.info[USER]
        return None if user is None else str(user)
    if USER_SOURCE in session.info:
        func = session.info[USER_SOURCE]
    if func is None:
        return None
    try:
        user = func()
    except RuntimeError:
        # e.g. a request-bound lookup used outside a request
        return None
    return None if user is None else str(user)


def innermost_transaction(session: Session) -> SessionTransaction | None:
    """The session's current savepoint, else its root transaction."""
    return session.get_nested_transaction() or session.get_transaction()


def ensure_changeset(session: Session, table: Table, user: UserCallable | None = None) -> int:
    """Return the id of this transaction's changeset row in ``table``, inserting it if needed."""
    open_sets: dict[Table, tuple[SessionTransaction | None, int]] = session.info.setdefault(
        _CHANGESETS, {}
    )
    found = open_sets.get(table)
    if found is not None:
        return found[1]
    # One INSERT statement per table, executed with parameters: building it per flush cost a
    # third of the changeset's time.
    stmt = table.info.get(_INSERT)
    if not isinstance(stmt, Insert):
        stmt = table.info[_INSERT] = table.insert()
    result = session.connection().execute(
        stmt,
        {
            "issued_at": dt.datetime.now(dt.UTC),
            "user": _current_user(session, user),
            "reason": session.info.get(REASON),
        },
    )
    pk = result.inserted_primary_key
    assert pk is not None
    cs_id = int(pk[0])
    open_sets[table] = (innermost_transaction(session), cs_id)
    return cs_id


def _enclosing(transaction: SessionTransaction | None) -> SessionTransaction | None:
    """The nearest savepoint or root transaction at or above ``transaction``."""
    while transaction is not None and not transaction.nested and transaction.parent is not None:
        transaction = transaction.parent
    return transaction


def transaction_created(session: Session, transaction: SessionTransaction) -> None:
    """Remember the user and reason in force when a savepoint begins."""
    if transaction.nested:
        saved = session.info.setdefault(_AT_SAVEPOINT, {})
        saved[transaction] = {k: session.info.get(k, _UNSET) for k in (USER, REASON)}


def transaction_rolled_back(session: Session) -> None:
    """Forget changesets of the savepoint (or transaction) being rolled back; a savepoint's
    ``set_user``/``set_reason`` go with it."""
    gone = innermost_transaction(session)
    at_start = session.info.get(_AT_SAVEPOINT, {}).pop(gone, None)
    for key, value in (at_start or {}).items():
        if value is _UNSET:
            session.info.pop(key, None)
        else:
            session.info[key] = value
    open_sets = session.info.get(_CHANGESETS)
    if open_sets:
        for table, (txn, _id) in list(open_sets.items()):
            if txn is gone:
                del open_sets[table]


def transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    """Hand a released savepoint's changesets to the enclosing transaction; forget at the end."""
    open_sets = session.info.get(_CHANGESETS)
    if open_sets:
        parent = _enclosing(transaction.parent)
        for table, (txn, cs_id) in list(open_sets.items()):
            if transaction.parent is None:
                del open_sets[table]
            elif txn is transaction:
                # Still here, so the savepoint was released (a rollback forgets it first).
                open_sets[table] = (parent, cs_id)
    session.info.get(_AT_SAVEPOINT, {}).pop(transaction, None)
    if transaction.parent is None:
        session.info.pop(REASON, None)
        session.info.pop(USER, None)
        session.info.pop(_AT_SAVEPOINT, None)
