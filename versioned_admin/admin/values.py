"""Text from URLs and forms to column values (and back, for enums)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

_INT_BOUNDS = {
    sa.SmallInteger: 2**15,
    sa.Integer: 2**31,
    sa.BigInteger: 2**63,
}


def int_bounds(type_: sa.types.TypeEngine[Any]) -> tuple[int, int]:
    """Smallest and largest value an integer column of this type holds."""
    for cls in (sa.SmallInteger, sa.BigInteger, sa.Integer):
        if isinstance(type_, cls):
            bound = _INT_BOUNDS[cls]
            return -bound, bound - 1
    return -(2**63), 2**63 - 1


def parse_value(column: sa.ColumnElement[Any], raw: str) -> Any:
    """Convert text from a URL or a form into the python value of ``column``; ValueError if bad."""
    type_ = column.type
    if "\x00" in raw:
        raise ValueError("contains a NUL character")
    if isinstance(type_, sa.Boolean):
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "y", "on"}:
            return True
        if lowered in {"0", "false", "no", "n", "off"}:
            return False
        raise ValueError("not yes or no")
    if isinstance(type_, sa.Enum):
        return enum_from_text(type_, raw)
    if isinstance(type_, sa.Integer):
        value = int(raw.strip())
        low, high = int_bounds(type_)
        if not low <= value <= high:
            raise ValueError("out of range")
        return value
    if isinstance(type_, sa.Float):
        number = float(raw)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("not a finite number")
        return number
    if isinstance(type_, sa.Numeric):
        try:
            decimal = Decimal(raw.strip())
        except InvalidOperation as exc:
            raise ValueError("not a number") from exc
        if not decimal.is_finite():
            raise ValueError("not a finite number")
        return decimal
    if isinstance(type_, sa.DateTime):
        return datetime.fromisoformat(raw.strip())
    if isinstance(type_, sa.Date):
        return date.fromisoformat(raw.strip())
    if isinstance(type_, sa.Time):
        return time.fromisoformat(raw.strip())
    if isinstance(type_, sa.Uuid):
        return uuid.UUID(raw.strip())
    if isinstance(type_, sa.String):
        return raw
    raise ValueError("cannot filter on this column")


def enum_choices(type_: sa.Enum) -> list[tuple[str, str]]:
    """The (form value, label) pairs of an enum column."""
    if type_.enum_class is not None:
        return [(member.name, enum_label(member)) for member in type_.enum_class]
    return [(value, value) for value in type_.enums]


def enum_label(value: Any) -> str:
    """How an enum value is shown to people."""
    if isinstance(value, enum.Enum):
        return str(value.value) if isinstance(value.value, str) else value.name
    return str(value)


def enum_from_text(type_: sa.Enum, raw: str) -> Any:
    """The enum value named by ``raw`` (member name or value); ValueError if none."""
    if type_.enum_class is not None:
        for member in type_.enum_class:
            if raw in (member.name, str(member.value)):
                return member
    elif raw in type_.enums:
        return raw
    raise ValueError("not one of the choices")
