"""Transactions and sessions: one changeset per transaction, rollback, savepoints, reason and
user, autoflush, and hooking versioning onto Session classes, sessionmakers and scoped sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_models import changeset_count, row_count, version_table, versioned_sessions
from sqlalchemy import Engine, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    scoped_session,
    sessionmaker,
)

from versioned_admin.versioning import (
    Versioned,
    changesets,
    disable_versioning,
    enable_versioning,
    set_reason,
    set_user,
    versioning_enabled,
    versions,
)


class Base(DeclarativeBase):
    pass


class Article(Versioned, Base):
    __tablename__ = "ss_article"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)


class Pair(Versioned, Base):
    __tablename__ = "ss_pair"
    a: Mapped[str] = mapped_column(String(10), primary_key=True)
    b: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str | None] = mapped_column(String(50))


class Plain(Base):
    """Not versioned."""

    __tablename__ = "ss_plain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(50))


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine, user=lambda: "alice") as mk:
        yield mk


def test_flush_with_nothing_versioned_makes_no_changeset(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.add(Plain(name="x"))
        s.commit()
        s.flush()
        s.commit()
        assert changeset_count(s, Article) == 0


def test_one_changeset_per_transaction(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a = Article(title="a")
        s.add(a)
        s.flush()
        a.title = "b"
        s.flush()
        s.add(Pair(a="k", b=1, value="v"))
        s.flush()
        s.commit()
        cs = {v.changeset.id for v in versions(s, Article, a.id)}
        cs |= {v.changeset.id for v in versions(s, Pair, ("k", 1))}
        assert len(cs) == 1
        assert changeset_count(s, Article) == 1
        assert [v.number for v in versions(s, Article, a.id)] == [2, 1]


def test_rollback_leaves_nothing(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a = Article(title="keep")
        s.add(a)
        s.commit()
        pk = a.id
        a.title = "lost"
        s.add(Article(title="lost too"))
        s.flush()
        s.rollback()
        assert row_count(s, version_table(Article)) == 1
        assert changeset_count(s, Article) == 1
        # and a later transaction numbers on from the last kept version
        a.title = "kept"
        s.commit()
        assert [v.number for v in versions(s, Article, pk)] == [2, 1]
        assert changeset_count(s, Article) == 2


def test_savepoint_rollback(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a = Article(title="outer")
        s.add(a)
        s.flush()
        nested = s.begin_nested()
        a.title = "inner"
        s.add(Article(title="gone"))
        s.flush()
        nested.rollback()
        a.title = "outer 2"
        s.commit()
        assert row_count(s, version_table(Article)) == 2
        assert [v.state["title"] for v in versions(s, Article, a.id)] == ["outer 2", "outer"]
        assert changeset_count(s, Article) == 1


def test_changeset_first_written_in_rolled_back_savepoint(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.add(Plain(name="p"))
        s.flush()
        nested = s.begin_nested()
        s.add(Article(title="gone"))
        s.flush()
        nested.rollback()
        a = Article(title="kept")
        s.add(a)
        s.commit()  # must not reuse the rolled-back changeset id
        assert changeset_count(s, Article) == 1
        assert [v.number for v in versions(s, Article, a.id)] == [1]


def test_released_savepoint_keeps_one_changeset(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        with s.begin_nested():
            a = Article(title="in savepoint")
            s.add(a)
            s.flush()
        a.title = "after savepoint"
        s.flush()
        with s.begin_nested():
            a.title = "second savepoint"
        s.commit()
        got = versions(s, Article, a.id)
        assert [v.number for v in got] == [3, 2, 1]
        assert len({v.changeset.id for v in got}) == 1
        assert changeset_count(s, Article) == 1


def test_failed_flush_in_savepoint_leaves_no_stale_versions(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        a = Article(title="a")
        s.add(a)
        s.commit()
        pk = a.id
        nested = s.begin_nested()
        s.add(Article(title=None))  # NOT NULL violation
        with pytest.raises(IntegrityError):
            s.flush()
        nested.rollback()
        s.add(Plain(name="unversioned"))
        s.commit()
        assert [v.number for v in versions(s, Article, pk)] == [1]
        assert row_count(s, version_table(Article)) == 1


def test_set_reason_and_user_after_flush(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a = Article(title="x")
        s.add(a)
        s.flush()
        set_reason(s, "  late reason ")
        set_user(s, "bob")
        a.title = "y"
        s.commit()
        cs = versions(s, Article, a.id)[0].changeset
        assert (cs.reason, cs.user) == ("late reason", "bob")
        a.title = "z"
        s.commit()
        cs2 = versions(s, Article, a.id)[0].changeset
        assert (cs2.reason, cs2.user) == (None, "alice")


def test_user_callable_outside_a_request(engine: Engine) -> None:
    def no_request() -> str | None:
        raise RuntimeError("working outside of request context")

    Base.metadata.create_all(engine)
    with versioned_sessions(engine, user=no_request) as mk, mk() as s:
        a = Article(title="x")
        s.add(a)
        s.commit()
        assert versions(s, Article, a.id)[0].changeset.user is None


def test_autoflush_is_versioned_once(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a = Article(title="a")
        s.add(a)
        # the query autoflushes the pending insert
        assert s.scalars(select(Article.title)).all() == ["a"]
        a.title = "b"
        assert s.scalars(select(Article.title)).all() == ["b"]
        s.commit()
        got = versions(s, Article, a.id)
        assert [(v.number, v.state["title"]) for v in got] == [(2, "b"), (1, "a")]
        assert len({v.changeset.id for v in got}) == 1


def test_disable_versioning_stops_it(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    enable_versioning(maker)
    assert versioning_enabled(maker)
    with maker() as s:
        s.add(Article(id=1, title="v"))
        s.commit()
    disable_versioning(maker)
    assert not versioning_enabled(maker)
    with maker() as s:
        a = s.get(Article, 1)
        assert a is not None
        a.title = "unversioned"
        s.add(Article(id=2, title="unversioned"))
        s.commit()
        assert row_count(s, version_table(Article)) == 1
        assert changeset_count(s, Article) == 1
    disable_versioning(maker)  # a second call is harmless


class SubSession(Session):
    pass


def test_enable_on_session_subclass_sessionmaker_and_scoped(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    enable_versioning(SubSession)
    try:
        with SubSession(engine) as s:
            s.add(Article(id=1, title="subclass"))
            s.commit()
        with Session(engine) as s:  # the base class is untouched
            s.add(Article(id=2, title="plain"))
            s.commit()
    finally:
        disable_versioning(SubSession)
    maker = sessionmaker(engine)
    enable_versioning(maker)
    try:
        with maker() as s:
            s.add(Article(id=3, title="maker"))
            s.commit()
    finally:
        disable_versioning(maker)
    scoped = scoped_session(sessionmaker(engine))
    enable_versioning(scoped)
    try:
        assert versioning_enabled(scoped)
        scoped.add(Article(id=4, title="scoped"))
        scoped.commit()
        found = {pk: len(versions(scoped(), Article, pk)) for pk in (1, 2, 3, 4)}
    finally:
        scoped.remove()
        disable_versioning(scoped)
    assert found == {1: 1, 2: 0, 3: 1, 4: 1}
    with pytest.raises(TypeError):
        enable_versioning(object())


def test_changesets_of_mixed_flush(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.add_all([Article(id=1, title="a"), Pair(a="p", b=1, value="v")])
        s.commit()
        [(cs, vs)] = changesets(s, [Article, Pair])
        assert cs.user == "alice"
        assert sorted((v.model.__name__, v.pk) for v in vs) == [
            ("Article", (1,)),
            ("Pair", ("p", 1)),
        ]
