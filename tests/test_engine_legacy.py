"""The legacy bulk methods write without session events: refused on versioned models."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

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
