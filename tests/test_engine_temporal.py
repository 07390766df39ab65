"""Temporal relations and revert with relations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_models import versioned_sessions
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from test_engine_collections import Article, Base, Label, Line, Order, Post, Tag

from versioned_admin.versioning import (
    get_version,
    latest_version,
    related_as_of,
    revert,
    versions,
)


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def test_related_as_of_versioned_targets(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        t1, t2 = Tag(id=1, name="python"), Tag(id=2, name="flask")
        a = Article(id=1, title="a", tags=[t1])
        s.add_all([a, t1, t2])
        s.commit()
        t1.name = "Python 3"  # a later rename must not show at version 1
        a.tags.append(t2)
        s.commit()
        v1 = get_version(s, Article, 1, 1)
        rel = related_as_of(s, v1, "tags")
        assert [(r.pk, r.state["name"] if r.state else None, r.current) for r in rel] == [
            ((1,), "python", False)
        ]
        assert rel[0].version is not None and rel[0].version.number == 1
        v2 = latest_version(s, Article, 1)
        assert v2 is not None
        names = [r.state["name"] for r in related_as_of(s, v2, "tags") if r.state]
        assert names == ["Python 3", "flask"]


def test_related_as_of_unversioned_target_is_marked_current(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        p = Post(id=1, labels=[Label(id=5)])
        s.add(p)
        s.commit()
        rel = related_as_of(s, versions(s, Post, 1)[0], "labels")
        assert [(r.pk, r.current, r.state is not None) for r in rel] == [((5,), True, True)]


def test_related_as_of_many_to_one(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        o = Order(id=1, note="first", lines=[Line(id=1)])
        s.add(o)
        s.commit()
        o.note = "second"
        s.commit()
        rel = related_as_of(s, versions(s, Line, 1)[-1], "order")
        assert [r.state["note"] for r in rel if r.state] == ["first"]


def test_revert_with_relations_in_one_changeset(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        tags = [Tag(id=i, name=f"t{i}") for i in (1, 2, 3)]
        a = Article(id=1, title="one", tags=tags[:2])
        s.add_all([a, *tags])
        s.commit()
        a.tags = [tags[2]]  # loading the old list autoflushes: set it before the title
        a.title = "two"
        s.commit()
        assert latest_version(s, Article, 1).number == 2  # type: ignore[union-attr]
        revert(s, a, 1)  # without relations: only the columns
        s.commit()
        v3 = latest_version(s, Article, 1)
        assert v3 is not None and v3.state["title"] == "one" and v3.state["tags"] == [3]
        revert(s, a, 2)
        s.commit()
        revert(s, a, 1, relations=("tags",))
        s.commit()
        last = latest_version(s, Article, 1)
        assert last is not None and last.number == 5 and last.reverted_from == 1
        assert last.state["title"] == "one" and last.state["tags"] == [1, 2]
        assert set(last.changed) == {"title", "tags"}
        # the tags' own versions are in the same changeset
        assert latest_version(s, Tag, 1).changeset.id == last.changeset.id  # type: ignore[union-attr]


def test_revert_one_to_many_restores_deleted_children(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        o = Order(id=1, lines=[Line(id=1, position=1), Line(id=2, position=2)])
        s.add(o)
        s.commit()
        o.lines.remove(o.lines[1])  # delete-orphan deletes line 2
        s.commit()
        assert s.get(Line, 2) is None
        revert(s, o, 1, relations=["lines"])
        s.commit()
        assert sorted(x.id for x in o.lines) == [1, 2]
        last = latest_version(s, Order, 1)
        assert last is not None and last.state["lines"] == [1, 2] and last.number == 3
