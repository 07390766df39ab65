"""Revert and restore: history is never rewritten, each is a new version."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_models import versioned_sessions
from sqlalchemy import Engine, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from versioned_admin.versioning import (
    NotDeleted,
    Operation,
    Versioned,
    VersionedRows,
    VersioningError,
    VersionNotFound,
    get_live,
    get_version,
    restore,
    revert,
    versions,
)


class Base(DeclarativeBase):
    pass


class Doc(Versioned, Base):
    __tablename__ = "rv_doc"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(50))
    n: Mapped[int | None] = mapped_column(Integer)


class Row(VersionedRows, Base):
    __tablename__ = "rv_row"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(50))
    n: Mapped[int | None] = mapped_column(Integer)


MODELS = {"shadow": Doc, "rows": Row}


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def _three_versions(s: Session, model: type) -> None:
    s.add(model(id=1, title="first", n=1))
    s.commit()
    for title, n in (("second", 2), ("third", None)):
        obj = get_live(s, model, 1)
        obj.title, obj.n = title, n
        s.commit()


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_revert_writes_a_new_version(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    with maker() as s:
        _three_versions(s, model)
        obj = revert(s, get_live(s, model, 1), 1)
        s.commit()
        v4 = versions(s, model, 1)[0]
        assert (v4.number, v4.operation, v4.reverted_from) == (4, Operation.UPDATE, 1)
        assert v4.state == get_version(s, model, 1, 1).state
        assert set(v4.changed) == {"title", "n"}
        assert (obj.title, obj.n) == ("first", 1)
        # the class form, and the older versions are untouched
        revert(s, model, 2, pk=1)
        s.commit()
        v5 = versions(s, model, 1)[0]
        assert (v5.number, v5.reverted_from, v5.state["title"]) == (5, 2, "second")
        assert [v.state["title"] for v in versions(s, model, 1)] == [
            "second",
            "first",
            "third",
            "second",
            "first",
        ]
        assert get_live(s, model, 1).title == "second"


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_revert_to_current_state_is_a_noop(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    with maker() as s:
        _three_versions(s, model)
        revert(s, get_live(s, model, 1), 3)
        s.commit()
        assert [v.number for v in versions(s, model, 1)] == [3, 2, 1]
        # the revert mark does not leak into a later, ordinary edit
        get_live(s, model, 1).title = "plain edit"
        s.commit()
        assert versions(s, model, 1)[0].reverted_from is None


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_revert_errors(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    with maker() as s:
        _three_versions(s, model)
        with pytest.raises(VersionNotFound):
            revert(s, get_live(s, model, 1), 9)
        with pytest.raises(VersionNotFound):
            revert(s, model, 1, pk=42)
        s.delete(get_live(s, model, 1))
        s.commit()
        with pytest.raises(VersioningError, match="deletion"):
            revert(s, model, 4, pk=1)
        assert [v.number for v in versions(s, model, 1)] == [4, 3, 2, 1]


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_revert_a_deleted_record_brings_it_back(
    maker: sessionmaker[Session], strategy: str
) -> None:
    model = MODELS[strategy]
    with maker() as s:
        _three_versions(s, model)
        s.delete(get_live(s, model, 1))
        s.commit()
        revert(s, model, 2, pk=1)
        s.commit()
        v5 = versions(s, model, 1)[0]
        assert (v5.number, v5.operation, v5.reverted_from) == (5, Operation.INSERT, 2)
        assert get_live(s, model, 1).title == "second"


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_restore(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    with maker() as s:
        _three_versions(s, model)
        with pytest.raises(NotDeleted):
            restore(s, model, 1)
        with pytest.raises(VersionNotFound):
            restore(s, model, 77)
        s.delete(get_live(s, model, 1))
        s.commit()
        back = restore(s, model, 1)
        s.commit()
        assert back.id == 1
        live = get_live(s, model, 1)
        assert (live.title, live.n) == ("third", None)
        v5 = versions(s, model, 1)[0]
        assert (v5.number, v5.operation, v5.reverted_from) == (5, Operation.INSERT, 3)
        assert v5.state == get_version(s, model, 1, 3).state
        with pytest.raises(NotDeleted):
            restore(s, model, 1)
        # deleted again, restored again: numbering goes on
        s.delete(live)
        s.commit()
        restore(s, model, 1)
        s.commit()
        assert [v.number for v in versions(s, model, 1)][:2] == [7, 6]


def test_restore_in_the_same_transaction_as_the_delete(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.add(Doc(id=1, title="x", n=1))
        s.commit()
        s.delete(get_live(s, Doc, 1))
        s.flush()
        restore(s, Doc, 1)
        s.commit()
        got = versions(s, Doc, 1)
        assert [(v.number, v.operation) for v in got] == [
            (3, Operation.INSERT),
            (2, Operation.DELETE),
            (1, Operation.INSERT),
        ]
        assert len({v.changeset.id for v in got[:2]}) == 1
