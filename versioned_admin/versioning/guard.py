"""Optimistic concurrency: a write based on version N fails if the record moved past N.

The check runs inside the flush, after the row's UPDATE took its lock (PostgreSQL) or the
write lock (SQLite), so two writers racing on one record cannot both pass it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, attributes

from .schema import ModelInfo, require_info
from .types import StaleVersionError
from .writer import latest_numbers, pk_of

EXPECT = "versioned_admin.expect"


def expect_version(session: Session, obj: object, number: int | None) -> None:
    """Make the next flush fail with StaleVersionError unless obj is still at version ``number``.

    ``None`` means the record must have no version yet. The expectation is forgotten after the
    flush that checks it, and at the end of the transaction.
    """
    info = require_info(obj)
    expectations: dict[Any, tuple[ModelInfo, object, int | None]] = session.info.setdefault(
        EXPECT, {}
    )
    expectations[attributes.instance_state(obj)] = (info, obj, number)


def check_expectations(session: Session, strategy: str) -> None:
    """Raise StaleVersionError if a record with an expectation has moved on."""
    expectations: dict[Any, tuple[ModelInfo, object, int | None]] = session.info.get(EXPECT, {})
    mine = {k: v for k, v in expectations.items() if v[0].strategy == strategy}
    if not mine:
        return
    for key in mine:
        del expectations[key]
    by_info: dict[int, list[tuple[ModelInfo, tuple[Any, ...], int | None]]] = {}
    for info, obj, number in mine.values():
        by_info.setdefault(id(info), []).append((info, pk_of(info, obj), number))
    stale: list[tuple[type, tuple[object, ...], int, int]] = []
    for group in by_info.values():
        info = group[0][0]
        latest = latest_numbers(session, info, [pk for _i, pk, _n in group])
        for _i, pk, number in group:
            actual = latest.get(pk, 0)
            if actual != (number or 0):
                stale.append((info.model, pk, number or 0, actual))
    if stale:
        names = ", ".join(f"{m.__name__} {pk!r} (v{exp} → v{act})" for m, pk, exp, act in stale)
        raise StaleVersionError(f"changed by someone else since it was read: {names}", stale)
