"""Rows strategy: an UPDATE becomes an INSERT of the record's next row (the seeds' recipe)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_models import changeset_count, count_statements, versioned_sessions
from sqlalchemy import (
    Engine,
    ForeignKeyConstraint,
    Integer,
    String,
    func,
    select,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from versioned_admin.versioning import (
    NotDeleted,
    Operation,
    VersionedRows,
    VersioningError,
    changesets,
    deleted_records,
    get_live,
    get_version,
    live_select,
    record_pk,
    restore,
    revert,
    versions,
)


class Base(DeclarativeBase):
    pass


class Example(VersionedRows, Base):
    __tablename__ = "rw_example"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[str | None] = mapped_column(String(50))
    extra: Mapped[int | None] = mapped_column(Integer)


class Parent(Base):
    __tablename__ = "rw_parent"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int | None] = mapped_column(Integer)
    child_version_id: Mapped[int | None] = mapped_column(Integer)
    child: Mapped[Child | None] = relationship(back_populates="parent")

    __table_args__ = (
        ForeignKeyConstraint(
            ["child_id", "child_version_id"], ["rw_child.id", "rw_child.version_id"]
        ),
    )


class Child(VersionedRows, Base):
    __tablename__ = "rw_child"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[str | None] = mapped_column(String(50))
    parent: Mapped[Parent | None] = relationship(back_populates="child", uselist=False)


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine, user=lambda: "rita") as mk:
        yield mk


def _rows(s: Session, model: type) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in s.execute(
            select(
                model.id,  # type: ignore[attr-defined]
                model.version_id,  # type: ignore[attr-defined]
                model.is_current_version,  # type: ignore[attr-defined]
                model.calc_is_current_version,  # type: ignore[attr-defined]
                model.data,  # type: ignore[attr-defined]
            ).order_by(model.id, model.version_id)  # type: ignore[attr-defined]
        )
    ]


def test_seed_example_scenario(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        e1 = Example(id=1, data="e1")
        s.add(e1)
        s.commit()
        e1.data = "e2"
        s.commit()
        assert _rows(s, Example) == [(1, 1, False, False, "e1"), (1, 2, True, True, "e2")]
        got = versions(s, Example, 1)
        assert [(v.number, v.operation, v.state["data"]) for v in got] == [
            (2, Operation.UPDATE, "e2"),
            (1, Operation.INSERT, "e1"),
        ]
        assert got[0].changed == ("data",)
        assert set(got[1].changed) == {"id", "data", "extra"}
        assert got[0].changeset.user == "rita"
        assert got[0].changeset.issued_at.tzinfo is not None
        assert record_pk(e1) == (1,)


def test_seed_parent_child_scenario(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        p1 = Parent(child=Child(id=1, data="c1"))
        s.add(p1)
        s.commit()
        assert p1.child is not None
        p1.child.data = "c2"
        s.commit()
        assert p1.child_id == 1
        assert p1.child.version_id == 2
        assert p1.child_version_id == 2
        assert _rows(s, Child) == [(1, 1, False, False, "c1"), (1, 2, True, True, "c2")]
    with maker() as s:  # and from the database, not just the identity map
        parent = s.scalars(select(Parent)).one()
        assert (parent.child_id, parent.child_version_id) == (1, 2)
        assert parent.child is not None and parent.child.data == "c2"


def test_multiple_records_and_flushes(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a, b = Example(id=1, data="a1"), Example(id=2, data="b1")
        s.add_all([a, b])
        s.flush()
        a.data = "a2"
        s.flush()
        a.data = "a3"
        b.extra = 7
        s.commit()
        assert [v.number for v in versions(s, Example, 1)] == [3, 2, 1]
        assert [v.number for v in versions(s, Example, 2)] == [2, 1]
        assert versions(s, Example, 2)[0].changed == ("extra",)
        assert changeset_count(s, Example) == 1
        live = s.scalars(live_select(Example).order_by(Example.id)).all()
        assert [(x.id, x.version_id, x.data) for x in live] == [(1, 3, "a3"), (2, 2, "b1")]


def test_noop_on_expired_object(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        e = Example(id=1, data="same", extra=1)
        s.add(e)
        s.commit()
        e.data = "same"  # e is expired after the commit
        e.extra = 1
        s.commit()
        s.flush()
        assert _rows(s, Example) == [(1, 1, True, True, "same")]
        assert changeset_count(s, Example) == 1


def test_delete_leaves_tombstone_and_restore(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.add_all([Example(id=1, data="x"), Example(id=2, data="keep")])
        s.commit()
        e = get_live(s, Example, 1)
        e.data = "y"
        s.commit()
        s.delete(e)  # expired attributes: they must be loaded for the tombstone
        s.commit()
        assert _rows(s, Example) == [
            (1, 1, False, False, "x"),
            (1, 2, False, False, "y"),
            (1, 3, False, True, "y"),
            (2, 1, True, True, "keep"),
        ]
        assert get_live(s, Example, 1) is None
        last = versions(s, Example, 1)[0]
        assert (last.number, last.operation, last.state["data"]) == (3, Operation.DELETE, "y")
        gone = deleted_records(s, Example)
        assert [(v.pk, v.number) for v in gone] == [((1,), 3)]
        with pytest.raises(NotDeleted):
            restore(s, Example, 2)
        back = restore(s, Example, 1)
        s.commit()
        assert (back.id, back.version_id, back.data) == (1, 4, "y")
        v4 = get_version(s, Example, 1, 4)
        assert v4.operation is Operation.INSERT and v4.reverted_from == 2
        assert get_live(s, Example, 1).version_id == 4
        assert deleted_records(s, Example) == []
        with pytest.raises(NotDeleted):
            restore(s, Example, 1)
        live = s.scalars(live_select(Example)).all()
        assert sorted(x.id for x in live) == [1, 2]


def test_revert(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        e = Example(id=1, data="v1", extra=1)
        s.add(e)
        s.commit()
        e.data = "v2"
        e.extra = 2
        s.commit()
        revert(s, e, 1)
        s.commit()
        v3 = versions(s, Example, 1)[0]
        assert (v3.number, v3.reverted_from, v3.operation) == (3, 1, Operation.UPDATE)
        assert v3.state == get_version(s, Example, 1, 1).state
        assert set(v3.changed) == {"data", "extra"}
        assert _rows(s, Example)[-1] == (1, 3, True, True, "v1")


def test_rollback_leaves_no_rows(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.add(Example(id=1, data="a"))
        s.commit()
        e = get_live(s, Example, 1)
        e.data = "b"
        s.add(Example(id=2, data="c"))
        s.flush()
        s.rollback()
        assert _rows(s, Example) == [(1, 1, True, True, "a")]
        assert changeset_count(s, Example) == 1
        nested = s.begin_nested()
        e = get_live(s, Example, 1)
        e.data = "d"
        s.flush()
        nested.rollback()
        s.commit()
        assert _rows(s, Example) == [(1, 1, True, True, "a")]
        assert changeset_count(s, Example) == 1


def test_changesets_report_changed_fields(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        e = Example(id=1, data="a", extra=1)
        s.add(e)
        s.commit()
        e.extra = 2
        s.commit()
        s.delete(e)
        s.commit()
        found = changesets(s, [Example])
        assert [[(v.number, v.changed) for v in vs] for _cs, vs in found] == [
            [(3, ())],
            [(2, ("extra",))],
            [(1, ("id", "data", "extra"))],
        ]


def test_batched_statements(engine: Engine) -> None:
    """A 100-row flush: the INSERT of new rows plus at most 2 statements."""
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        for op in ("insert", "update", "delete"):
            objs = s.scalars(live_select(Example)).all()  # loaded outside the count
            with count_statements(engine) as seen:
                if op == "insert":
                    s.add_all([Example(id=i, data=f"d{i}") for i in range(1, 101)])
                for o in objs:
                    if op == "update":
                        o.data = (o.data or "") + "!"
                    else:
                        s.delete(o)
                s.flush()
            inserts = [q for q in seen if q.lstrip().upper().startswith("INSERT INTO RW_EXAMPLE")]
            extra = [q for q in seen if q not in inserts]
            assert inserts, seen
            assert len(extra) <= 2, (op, extra)
            s.commit()
            assert versions(s, Example, 50)[0].operation.value == op
        assert s.execute(select(func.count()).select_from(Example)).scalar_one() == 300


def test_changing_the_record_key_raises(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        e = Example(id=1, data="a")
        s.add(e)
        s.commit()
        e.id = 2
        with pytest.raises(VersioningError, match="primary key"):
            s.flush()
        s.rollback()


def test_released_savepoint_keeps_one_changeset(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        with s.begin_nested():
            e = Example(id=1, data="a")
            s.add(e)
        e.data = "b"
        s.commit()
        got = versions(s, Example, 1)
        assert [v.number for v in got] == [2, 1]
        assert len({v.changeset.id for v in got}) == 1
        assert changeset_count(s, Example) == 1


def test_delete_of_expired_objects_loads_them_in_one_statement(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        s.add_all([Example(id=i, data=f"d{i}", extra=i) for i in range(1, 101)])
        s.commit()
        objs = s.scalars(live_select(Example)).all()
        s.commit()  # every attribute expired
        with count_statements(engine) as seen:
            for o in objs:
                s.delete(o)
            s.flush()
        assert len(seen) <= 4, seen  # SELECT, changeset, retire, INSERT of the tombstones
        s.commit()
        v = versions(s, Example, 9)[0]
        assert (v.number, v.operation, v.state) == (
            2,
            Operation.DELETE,
            {"id": 9, "data": "d9", "extra": 9},
        )
