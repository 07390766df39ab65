"""Column types round-trip exactly through a version and a revert, on both strategies."""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from engine_models import versioned_sessions
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Engine,
    Enum,
    Float,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    String,
    Time,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from versioned_admin.versioning import (
    Versioned,
    VersionedRows,
    get_live,
    get_version,
    revert,
    versions,
)


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"


class Size(enum.StrEnum):
    SMALL = "s"
    LARGE = "l"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Base(DeclarativeBase):
    pass


class _Columns:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    j: Mapped[Any] = mapped_column(JSON, nullable=True)
    d: Mapped[dt.date | None] = mapped_column(Date)
    tm: Mapped[dt.time | None] = mapped_column(Time)
    naive: Mapped[dt.datetime | None] = mapped_column(DateTime)
    aware: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    num: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    f: Mapped[float | None] = mapped_column(Float)
    color: Mapped[Color | None] = mapped_column(Enum(Color))
    size: Mapped[Size | None] = mapped_column(Enum(Size))
    level: Mapped[Level | None] = mapped_column(Enum(Level))
    label: Mapped[str | None] = mapped_column(String(20))
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)
    flag: Mapped[bool | None] = mapped_column(Boolean)
    span: Mapped[dt.timedelta | None] = mapped_column(Interval)
    uid: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class ShadowTypes(_Columns, Versioned, Base):
    __tablename__ = "ty_shadow"


class RowsTypes(_Columns, VersionedRows, Base):
    __tablename__ = "ty_rows"


MODELS = {"shadow": ShadowTypes, "rows": RowsTypes}
FIELDS = [k for k in _Columns.__annotations__ if k != "id"]

IST = dt.timedelta(hours=5, minutes=30)
FIRST: dict[str, Any] = {
    "j": {"a": [1, 2.5, None, True, "x"], "b": {"c": "d"}, "n": -3},
    "d": dt.date(2024, 2, 29),
    "tm": dt.time(23, 59, 58, 123456),
    "naive": dt.datetime(2024, 3, 1, 12, 30, 45, 123456),
    "aware": dt.datetime(2024, 3, 1, 12, 30, 45, 654321, tzinfo=dt.timezone(IST)),
    "num": Decimal("12345678.1200"),
    "f": 0.1,
    "color": Color.GREEN,
    "size": Size.LARGE,
    "level": Level.HIGH,
    "label": Size.SMALL,  # a str-enum member stored in a plain string column
    "blob": bytes(range(256)),
    "flag": False,
    "span": dt.timedelta(days=3, seconds=7, microseconds=9),
    "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}
SECOND: dict[str, Any] = {
    "j": [1, "two"],
    "d": dt.date(1999, 12, 31),
    "tm": dt.time(0, 0),
    "naive": dt.datetime(2000, 1, 1),
    "aware": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    "num": Decimal("-0.0001"),
    "f": -2.0,
    "color": Color.RED,
    "size": Size.SMALL,
    "level": Level.LOW,
    "label": "plain",
    "blob": b"",
    "flag": True,
    "span": dt.timedelta(0),
    "uid": uuid.UUID(int=0),
}
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 1e300, -0.5]


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same type, NaN equal to NaN; aware datetimes keep their offset."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b) or a != b:
        return False
    if isinstance(a, dt.datetime) and a.tzinfo is not None:
        return a.utcoffset() == b.utcoffset()
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()  # the scale, too
    return True


def _assert_same(got: dict[str, Any], want: dict[str, Any], keys: list[str]) -> None:
    bad = {k: (got.get(k), want.get(k)) for k in keys if not _same(got.get(k), want.get(k))}
    assert not bad, bad


def _live(s: Session, model: type, pk: int) -> dict[str, Any]:
    s.expire_all()
    obj = get_live(s, model, pk)
    return {k: getattr(obj, k) for k in ["id", *FIELDS]}


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
@pytest.mark.parametrize("values", ["full", "nulls"])
def test_round_trip_through_version_and_revert(
    maker: sessionmaker[Session], backend: str, strategy: str, values: str
) -> None:
    model = MODELS[strategy]
    first = FIRST if values == "full" else dict.fromkeys(FIRST)
    with maker() as s:
        s.add(model(id=1, **first))
        s.commit()
        stored = _live(s, model, 1)  # what the database gives back for the first values
        # shadow keeps exactly what was saved (on SQLite: as SQLite keeps it, which drops time
        # zones); rows keeps the row, i.e. what the DB gives back
        saved = {"id": 1, **first, "label": first["label"] and "s"}  # a String column: the str
        expected = saved if strategy == "shadow" and backend != "sqlite" else stored
        _assert_same(get_version(s, model, 1, 1).state, expected, ["id", *FIELDS])
        obj = get_live(s, model, 1)
        for key, value in SECOND.items():
            setattr(obj, key, value)
        s.commit()
        v2 = get_version(s, model, 1, 2)
        assert set(v2.changed) == set(FIELDS)
        revert(s, get_live(s, model, 1), 1)
        s.commit()
        v3 = versions(s, model, 1)[0]
        assert (v3.number, v3.reverted_from) == (3, 1)
        # an UPDATE is recorded as the row reads back after it (a concurrent writer may have
        # changed other columns), so time zones come back as the database keeps them
        _assert_same(v3.state, stored, ["id", *FIELDS])
        _assert_same(_live(s, model, 1), stored, ["id", *FIELDS])
        # a revert to what is already there changes nothing
        revert(s, get_live(s, model, 1), 3)
        s.commit()
        assert [v.changed for v in versions(s, model, 1)[:-3]] == []


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_special_floats(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    with maker() as s:
        s.add_all([model(id=i, f=x) for i, x in enumerate(SPECIAL_FLOATS)])
        s.commit()
        stored = {i: _live(s, model, i)["f"] for i in range(len(SPECIAL_FLOATS))}
        for i, x in enumerate(SPECIAL_FLOATS):
            # the version says what the row says (SQLite keeps NaN as NULL)
            assert _same(get_version(s, model, i, 1).state["f"], stored[i]), (x, stored[i])
            get_live(s, model, i).f = 7.0
        s.commit()
        for i in range(len(SPECIAL_FLOATS)):
            revert(s, get_live(s, model, i), 1)
        s.commit()
        for i, x in enumerate(SPECIAL_FLOATS):
            assert _same(_live(s, model, i)["f"], stored[i]), (x, stored[i])
            # the revert's UPDATE is recorded as the row reads back: what the database keeps
            assert _same(versions(s, model, i)[0].state["f"], stored[i])
