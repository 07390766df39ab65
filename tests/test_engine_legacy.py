"""The legacy bulk methods write without session events: refused on versioned models."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, ForeignKey, String, func, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from versioned_admin.versioning import (
    UnversionedWriteError,
    Versioned,
    disable_versioning,
    enable_versioning,
)


class Base(DeclarativeBase):
    pass


class Item(Versioned, Base):
    __tablename__ = "legacy_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class Basket(Versioned, Base):
    """A versioned parent whose lines are plain rows."""

    __tablename__ = "legacy_basket"
    id: Mapped[int] = mapped_column(primary_key=True)
    lines: Mapped[list[BasketLine]] = relationship()


class BasketLine(Base):
    """Unversioned, but its rows are a versioned record's collection."""

    __tablename__ = "legacy_basket_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    basket_id: Mapped[int] = mapped_column(ForeignKey("legacy_basket.id"))


class Plain(Base):
    __tablename__ = "legacy_plain"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


def _count(s: Session, model: type) -> int:
    return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_legacy_bulk_methods_are_refused_on_versioned_models(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    enable_versioning(maker)
    try:
        with maker() as s:
            with pytest.raises(UnversionedWriteError, match="bulk_save_objects"):
                s.bulk_save_objects([Item(id=1, name="a")])
            with pytest.raises(UnversionedWriteError, match="bulk_insert_mappings"):
                s.bulk_insert_mappings(Item, [{"id": 2, "name": "b"}])
            with pytest.raises(UnversionedWriteError, match="bulk_update_mappings"):
                s.bulk_update_mappings(Item.__mapper__, [{"id": 2, "name": "c"}])
            assert _count(s, Item) == 0
            # unversioned models keep the fast path
            s.bulk_insert_mappings(Plain, [{"id": 1, "name": "p"}])
            s.bulk_save_objects([Plain(id=2, name="q")])
            s.commit()
            assert _count(s, Plain) == 2
    finally:
        disable_versioning(maker)
    with maker() as s:  # unhooked: the methods are SQLAlchemy's own again
        s.bulk_insert_mappings(Item, [{"id": 9, "name": "z"}])
        s.commit()
        assert _count(s, Item) == 1


def test_legacy_bulk_methods_are_refused_on_rows_of_a_versioned_collection(
    engine: Engine,
) -> None:
    """An unversioned child written without events would change its parent's collection."""
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    enable_versioning(maker)
    try:
        with maker() as s:
            s.add(Basket(id=1))
            s.commit()
            with pytest.raises(UnversionedWriteError, match=r"collection Basket\.lines"):
                s.bulk_insert_mappings(BasketLine, [{"id": 1, "basket_id": 1}])
            with pytest.raises(UnversionedWriteError, match=r"collection Basket\.lines"):
                s.bulk_save_objects([BasketLine(id=2, basket_id=1)])
            with pytest.raises(UnversionedWriteError, match="bulk_update_mappings"):
                s.bulk_update_mappings(BasketLine, [{"id": 1, "basket_id": 1}])
            assert _count(s, BasketLine) == 0
    finally:
        disable_versioning(maker)
