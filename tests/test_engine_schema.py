"""History tables live in the model's MetaData: create_all, Alembic, options, schema changes."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from engine_models import changeset_count, version_table, versioned_sessions
from sqlalchemy import Engine, Integer, String, insert, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from versioned_admin.versioning import (
    CHANGESET_TABLE,
    Versioned,
    VersionedRows,
    get_live,
    is_versioned,
    model_info,
    revert,
    versions,
)


class Base(DeclarativeBase):
    pass


class Book(Versioned, Base):
    __tablename__ = "sc_book"
    __versioned__ = {"exclude": ["hits"]}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    hits: Mapped[int] = mapped_column(Integer, default=0)
    old: Mapped[str | None] = mapped_column(String(50))


class Page(VersionedRows, Base):
    __tablename__ = "sc_page"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[str | None] = mapped_column(String(50))


class Unversioned(Base):
    __tablename__ = "sc_plain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class LaterBase(DeclarativeBase):
    pass


class BookLater(Versioned, LaterBase):
    """The same table after the ``old`` column was dropped from the model."""

    __tablename__ = "sc_book"
    __versioned__ = {"exclude": ["hits"]}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    hits: Mapped[int] = mapped_column(Integer, default=0)


def _diffs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_alembic_autogenerate_sees_history_tables(engine: Engine) -> None:
    added = {d[1].name for d in _diffs(engine) if d[0] == "add_table"}
    assert {"sc_book", "sc_book_version", CHANGESET_TABLE, "sc_page"} <= added
    assert "sc_page_version" not in added  # rows strategy keeps history in its own table
    Base.metadata.create_all(engine)
    assert _diffs(engine) == []  # nothing left for a migration once the tables exist


def test_history_table_shape(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    insp = inspect(engine)
    vt = "sc_book_version"
    assert insp.get_pk_constraint(vt)["constrained_columns"] == ["id", "version"]
    cols = {c["name"] for c in insp.get_columns(vt)}
    assert cols == {"id", "version", "operation", "changeset_id", "reverted_from"} | {
        "state",
        "changed",
    }
    assert [fk["referred_table"] for fk in insp.get_foreign_keys(vt)] == [CHANGESET_TABLE]
    assert insp.get_pk_constraint("sc_page")["constrained_columns"] == ["id", "version_id"]
    assert is_versioned(Book) and is_versioned(Book(title="x")) and not is_versioned(Unversioned)
    info = model_info(Book)
    assert info is not None and info.strategy == "shadow" and info.pk_keys == ("id",)
    assert [k for k, _c in info.fields] == ["id", "title", "old"]
    page_info = model_info(Page)
    assert page_info is not None and page_info.strategy == "rows"
    assert [k for k, _c in page_info.fields] == ["id", "body"]


def test_version_numbers_are_unique(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        s.add(Book(id=1, title="t"))
        s.commit()
        v1 = versions(s, Book, 1)[0]
        row = {
            "id": 1,
            "version": 1,
            "operation": "update",
            "changeset_id": v1.changeset.id,
            "state": {},
        }
        with pytest.raises(IntegrityError):
            s.execute(insert(version_table(Book)).values(**row))
        s.rollback()


def test_excluded_columns(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        b = Book(id=1, title="t", hits=1)
        s.add(b)
        s.commit()
        b.hits = 2  # excluded: no version, no changeset
        s.commit()
        b.title = "u"
        s.commit()
        got = versions(s, Book, 1)
        assert [v.number for v in got] == [2, 1]
        assert "hits" not in got[0].state and got[0].changed == ("title",)
        assert changeset_count(s, Book) == 2
        revert(s, b, 1)
        s.commit()
        assert (b.title, b.hits) == ("t", 2)


def test_removed_column_shows_in_old_versions(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        s.add(Book(id=1, title="t", old="legacy"))
        s.commit()
    # the model loses ``old``; its history keeps it
    with versioned_sessions(engine) as mk, mk() as s:
        b = get_live(s, BookLater, 1)
        b.title = "new"
        s.commit()
        v2, v1 = versions(s, BookLater, 1)
        assert v1.state == {"id": 1, "title": "t", "old": "legacy"}
        assert v1.removed_fields == ("old",)
        assert v2.state == {"id": 1, "title": "new"} and v2.removed_fields == ()
        revert(s, b, 1)
        s.commit()
        v3 = versions(s, BookLater, 1)[0]
        assert (v3.number, v3.state) == (3, {"id": 1, "title": "t"})
