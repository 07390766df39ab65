"""History queries: versions (keyset), get_version, as_of, changesets(), deleted_records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from engine_models import versioned_sessions
from sqlalchemy import Engine, Integer, String, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from versioned_admin.versioning import (
    CHANGESET_TABLE,
    Operation,
    Versioned,
    VersionedRows,
    VersionNotFound,
    as_of,
    changesets,
    deleted_records,
    get_live,
    get_version,
    latest_version,
    set_user,
    versions,
)


class Base(DeclarativeBase):
    pass


class Doc(Versioned, Base):
    __tablename__ = "hi_doc"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(String(50))


class Row(VersionedRows, Base):
    __tablename__ = "hi_row"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(String(50))


MODELS = {"shadow": Doc, "rows": Row}
T0 = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def _set_time(s: Session, changeset_id: int, when: dt.datetime) -> None:
    """Pin a changeset's timestamp so time-based queries are deterministic."""
    cs = Base.metadata.tables[CHANGESET_TABLE]
    s.execute(update(cs).where(cs.c.id == changeset_id).values(issued_at=when))


def _edit(s: Session, model: type, pk: int, text: str) -> int:
    """Insert or update a record in its own transaction; returns the changeset id."""
    obj = get_live(s, model, pk)
    if obj is None:
        s.add(model(id=pk, text=text))
    else:
        obj.text = text
    s.commit()
    latest = latest_version(s, model, pk)
    assert latest is not None
    return latest.changeset.id


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_versions_keyset_pagination(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    with maker() as s:
        for i in range(1, 8):
            _edit(s, model, 1, f"t{i}")
        _edit(s, model, 2, "other")
        pages = []
        before = None
        while True:
            page = versions(s, model, 1, before=before, limit=3)
            if not page:
                break
            pages.append([v.number for v in page])
            before = page[-1].number
        assert pages == [[7, 6, 5], [4, 3, 2], [1]]
        assert [v.state["text"] for v in versions(s, model, 1, limit=2)] == ["t7", "t6"]
        assert get_version(s, model, 1, 4).state["text"] == "t4"
        assert get_version(s, model, (1,), 1).operation is Operation.INSERT
        for bad in (0, 8, -1):
            with pytest.raises(VersionNotFound):
                get_version(s, model, 1, bad)
        with pytest.raises(VersionNotFound):
            get_version(s, model, 99, 1)
        with pytest.raises(VersionNotFound):
            get_version(s, model, (1, 2), 1)
        assert versions(s, model, 99) == []
        assert latest_version(s, model, 99) is None


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_as_of(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    with maker() as s:
        ids = [_edit(s, model, 1, f"t{i}") for i in range(1, 4)]
        obj = get_live(s, model, 1)
        s.delete(obj)
        s.commit()
        ids.append(versions(s, model, 1)[0].changeset.id)
        for i, cs_id in enumerate(ids):
            _set_time(s, cs_id, T0 + dt.timedelta(hours=i))
        s.commit()
        assert as_of(s, model, 1, T0 - dt.timedelta(seconds=1)) is None
        got = as_of(s, model, 1, T0)
        assert got is not None and got.number == 1
        got = as_of(s, model, 1, T0 + dt.timedelta(minutes=90))
        assert got is not None and (got.number, got.state["text"]) == (2, "t2")
        naive = (T0 + dt.timedelta(hours=2)).replace(tzinfo=None)  # naive means UTC
        got = as_of(s, model, 1, naive)
        assert got is not None and got.number == 3
        other_zone = (T0 + dt.timedelta(hours=2)).astimezone(dt.timezone(dt.timedelta(hours=5)))
        got = as_of(s, model, 1, other_zone)
        assert got is not None and got.number == 3
        got = as_of(s, model, 1, T0 + dt.timedelta(days=1))
        assert got is not None and got.operation is Operation.DELETE


def test_changesets_filters_and_keyset(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        plan = [("ann", Doc, 1), ("bob", Row, 1), ("ann", Row, 2), ("bob", Doc, 1), ("ann", Doc, 2)]
        ids = []
        for i, (user, model, pk) in enumerate(plan):
            set_user(s, user)
            ids.append(_edit(s, model, pk, f"v{i}"))
        for i, cs_id in enumerate(ids):
            _set_time(s, cs_id, T0 + dt.timedelta(days=i))
        s.commit()
        both = [Doc, Row]
        everything = changesets(s, both)
        assert [cs.id for cs, _ in everything] == list(reversed(ids))
        assert [cs.issued_at for cs, _ in everything][-1] == T0
        assert all(cs.issued_at.tzinfo is not None for cs, _ in everything)
        assert [[(v.model, v.pk) for v in vs] for _, vs in everything] == [
            [(Doc, (2,))],
            [(Doc, (1,))],
            [(Row, (2,))],
            [(Row, (1,))],
            [(Doc, (1,))],
        ]
        assert [cs.id for cs, _ in changesets(s, both, user="ann")] == [ids[4], ids[2], ids[0]]
        assert [cs.id for cs, _ in changesets(s, [Doc])] == [ids[4], ids[3], ids[0]]
        assert [cs.id for cs, _ in changesets(s, [Row])] == [ids[2], ids[1]]
        window = changesets(s, both, start=T0 + dt.timedelta(days=1), end=T0 + dt.timedelta(days=3))
        assert [cs.id for cs, _ in window] == [ids[2], ids[1]]  # start inclusive, end exclusive
        naive_start = (T0 + dt.timedelta(days=3)).replace(tzinfo=None)
        assert [cs.id for cs, _ in changesets(s, both, start=naive_start)] == [ids[4], ids[3]]
        page1 = changesets(s, both, limit=2)
        page2 = changesets(s, both, limit=2, before=page1[-1][0].id)
        page3 = changesets(s, both, limit=2, before=page2[-1][0].id)
        assert [cs.id for cs, _ in page1 + page2 + page3] == list(reversed(ids))
        assert changesets(s, both, user="nobody") == []
        assert changesets(s, []) == []


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_deleted_records(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    with maker() as s:
        for pk in range(1, 6):
            _edit(s, model, pk, f"r{pk}")
        for pk in (2, 4, 5):
            s.delete(get_live(s, model, pk))
            s.commit()
        _edit(s, model, 1, "r1 edited")
        gone = deleted_records(s, model)
        assert [v.pk for v in gone] == [(5,), (4,), (2,)]
        assert all(v.operation is Operation.DELETE for v in gone)
        assert gone[0].state["text"] == "r5"
        page1 = deleted_records(s, model, limit=2)
        page2 = deleted_records(s, model, limit=2, before=page1[-1].changeset.id)
        assert [v.pk for v in page1 + page2] == [(5,), (4,), (2,)]
        # re-created with the same key: no longer deleted
        s.add(model(id=4, text="again"))
        s.commit()
        assert [v.pk for v in deleted_records(s, model)] == [(5,), (2,)]
        assert [v.number for v in versions(s, model, 4)] == [3, 2, 1]
