"""Bulk ORM statements on versioned models: versioned (shadow) or refused (rows, no keys)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from engine_models import changeset_count, row_count, version_table, versioned_sessions
from sqlalchemy import Engine, Integer, String, delete, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from versioned_admin.versioning import (
    Operation,
    UnversionedWriteError,
    Versioned,
    VersionedRows,
    get_live,
    versions,
)


class Base(DeclarativeBase):
    pass


class Item(Versioned, Base):
    __tablename__ = "bk_item"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    qty: Mapped[int] = mapped_column(Integer, default=0)


class Line(VersionedRows, Base):
    __tablename__ = "bk_line"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(50))


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        s.add_all([Item(id=i, name=f"item{i}", qty=i) for i in range(1, 6)])
        s.add_all([Line(id=i, name=f"line{i}") for i in range(1, 3)])
        s.commit()
        yield s


def _numbers(s: Session, pk: int) -> list[tuple[int, str]]:
    return [(v.number, v.operation.value) for v in versions(s, Item, pk)]


def test_update_statement(session: Session) -> None:
    s = session
    s.execute(update(Item).where(Item.id <= 3).values(qty=Item.qty + 10))
    s.commit()
    for pk in (1, 2, 3):
        v = versions(s, Item, pk)[0]
        assert (v.number, v.operation, v.changed) == (2, Operation.UPDATE, ("qty",))
        assert v.state == {"id": pk, "name": f"item{pk}", "qty": pk + 10}
    assert _numbers(s, 4) == [(1, "insert")]
    assert get_live(s, Item, 2).qty == 12
    for number, sync in enumerate(["auto", "fetch", False], start=3):
        s.execute(
            update(Item).where(Item.id == 1).values(qty=Item.qty + 1),
            execution_options={"synchronize_session": sync},
        )
        s.commit()
        assert versions(s, Item, 1)[0].state["qty"] == 11 + number - 2
        assert _numbers(s, 1)[0] == (number, "update")


def test_update_matching_nothing_or_noop(session: Session) -> None:
    s = session
    n = changeset_count(s, Item)
    s.execute(update(Item).where(Item.id > 100).values(name="x"))
    s.execute(update(Item).where(Item.id == 1).values(name="item1"))  # same value
    s.commit()
    assert _numbers(s, 1) == [(1, "insert")]
    assert changeset_count(s, Item) == n


def test_delete_statement(session: Session) -> None:
    s = session
    s.execute(delete(Item).where(Item.qty >= 4))
    s.commit()
    for pk in (4, 5):
        v = versions(s, Item, pk)[0]
        assert (v.number, v.operation, v.state["name"]) == (2, Operation.DELETE, f"item{pk}")
    assert s.scalars(select(Item.id).order_by(Item.id)).all() == [1, 2, 3]
    s.execute(delete(Item))
    s.commit()
    assert row_count(s, version_table(Item)) == 10


def test_query_update_and_delete(session: Session) -> None:
    s = session
    s.query(Item).filter(Item.id == 1).update({"name": "renamed"})
    s.query(Item).filter(Item.id == 2).update({Item.qty: 0}, synchronize_session="fetch")
    s.query(Item).filter(Item.id == 3).delete()
    s.commit()
    assert versions(s, Item, 1)[0].state["name"] == "renamed"
    assert versions(s, Item, 2)[0].changed == ("qty",)
    assert _numbers(s, 3) == [(2, "delete"), (1, "insert")]


def test_update_by_primary_key_parameters(session: Session) -> None:
    s = session
    s.execute(update(Item), [{"id": 1, "name": "one"}, {"id": 2, "qty": 20}, {"id": 3, "qty": 3}])
    s.commit()
    assert versions(s, Item, 1)[0].changed == ("name",)
    assert versions(s, Item, 2)[0].state == {"id": 2, "name": "item2", "qty": 20}
    assert _numbers(s, 3) == [(1, "insert")]  # unchanged: no version


def test_insert_statement(session: Session) -> None:
    s = session
    s.execute(insert(Item), [{"id": 10, "name": "ten"}, {"id": 11, "name": "eleven", "qty": 2}])
    s.commit()
    v = versions(s, Item, 10)[0]
    assert (v.number, v.operation) == (1, Operation.INSERT)
    assert v.state == {"id": 10, "name": "ten", "qty": 0}
    assert versions(s, Item, 11)[0].state["qty"] == 2


def test_insert_without_keys_is_refused(session: Session) -> None:
    s = session
    with pytest.raises(UnversionedWriteError, match="primary key"):
        s.execute(insert(Item), [{"name": "a"}, {"name": "b"}])
    s.rollback()
    with pytest.raises(UnversionedWriteError, match="primary key"):
        s.execute(insert(Item).values(name="c"))
    s.rollback()
    assert row_count(s, Item.__table__) == 5


def test_core_statement_on_the_table_is_versioned(session: Session) -> None:
    s = session
    table = Item.__table__
    s.execute(update(table).where(table.c.id == 1).values(name="core"))
    s.execute(delete(table).where(table.c.id == 2))
    s.commit()
    assert versions(s, Item, 1)[0].state["name"] == "core"
    assert _numbers(s, 2) == [(2, "delete"), (1, "insert")]


def test_bulk_and_flush_share_a_changeset(session: Session) -> None:
    s = session
    get_live(s, Item, 4).name = "flushed"
    s.execute(update(Item).where(Item.id == 5).values(name="bulk"))  # autoflushes first
    s.commit()
    assert versions(s, Item, 4)[0].changeset.id == versions(s, Item, 5)[0].changeset.id


def test_bulk_rollback_leaves_nothing(session: Session) -> None:
    s = session
    n = changeset_count(s, Item)
    s.execute(update(Item).values(name="x"))
    s.execute(delete(Item).where(Item.id == 1))
    s.rollback()
    assert row_count(s, version_table(Item)) == 5
    assert changeset_count(s, Item) == n


def test_bulk_on_rows_strategy_is_refused(session: Session) -> None:
    s = session
    attempts: list[Callable[[], object]] = [
        lambda: s.execute(update(Line).values(name="x")),
        lambda: s.execute(delete(Line).where(Line.id == 1)),
        lambda: s.execute(insert(Line), [{"id": 5, "version_id": 1, "name": "n"}]),
        lambda: s.query(Line).delete(),
        lambda: s.query(Line).update({"name": "q"}),
        lambda: s.execute(update(Line), [{"id": 1, "version_id": 1, "name": "n"}]),
        lambda: s.execute(update(Line.__table__).values(name="x")),
    ]
    for attempt in attempts:
        with pytest.raises(UnversionedWriteError, match="rows strategy"):
            attempt()
        s.rollback()
    assert sorted(s.scalars(select(Line.name)).all()) == ["line1", "line2"]

