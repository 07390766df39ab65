"""Collections: one-to-many and many-to-many changes land in the parent's version of that flush."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_models import count_statements, versioned_sessions
from sqlalchemy import Column, Engine, ForeignKey, Integer, String, Table, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from versioned_admin.versioning import latest_version, versions


class Base(DeclarativeBase):
    pass


from versioned_admin.versioning import Versioned  # noqa: E402

article_tag = Table(
    "co_article_tag",
    Base.metadata,
    Column("article_id", ForeignKey("co_article.id"), primary_key=True),
    Column("tag_id", ForeignKey("co_tag.id"), primary_key=True),
)
post_label = Table(
    "co_post_label",
    Base.metadata,
    Column("post_id", ForeignKey("co_post.id"), primary_key=True),
    Column("label_id", ForeignKey("co_label.id"), primary_key=True),
)


class Article(Versioned, Base):
    __tablename__ = "co_article"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    tags: Mapped[list[Tag]] = relationship(secondary=article_tag, back_populates="articles")


class Tag(Versioned, Base):
    __tablename__ = "co_tag"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    articles: Mapped[list[Article]] = relationship(secondary=article_tag, back_populates="tags")


class Post(Versioned, Base):
    """Its labels are changed from either side, with no back_populates between the two."""

    __tablename__ = "co_post"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    labels: Mapped[list[Label]] = relationship(secondary=post_label)


class Label(Base):
    """Not versioned."""

    __tablename__ = "co_label"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    posts: Mapped[list[Post]] = relationship(secondary=post_label, overlaps="labels")


class Order(Versioned, Base):
    __tablename__ = "co_order"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note: Mapped[str | None] = mapped_column(String(50))
    lines: Mapped[list[Line]] = relationship(
        back_populates="order", order_by="Line.position", cascade="all, delete-orphan"
    )


class Line(Versioned, Base):
    __tablename__ = "co_line"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("co_order.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    order: Mapped[Order | None] = relationship(back_populates="lines")


LINKS = Base.metadata.tables["co_article_tag_version"]


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def _tags(s: Session, article_id: int) -> list[int]:
    v = latest_version(s, Article, article_id)
    assert v is not None
    return list(v.state["tags"])


def _setup(s: Session) -> tuple[Article, list[Tag]]:
    tags = [Tag(id=i, name=f"t{i}") for i in (1, 2, 3)]
    a = Article(id=1, title="a", tags=[tags[0]])
    s.add_all([a, *tags])
    s.commit()
    return a, tags


def test_insert_lists_the_collection(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        _setup(s)
        v = versions(s, Article, 1)
        assert len(v) == 1 and v[0].state["tags"] == [1]
        assert versions(s, Tag, 1)[0].state["articles"] == [1]


def test_add_makes_a_new_parent_version(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a, tags = _setup(s)
        a.tags.append(tags[2])
        s.commit()
        v = latest_version(s, Article, 1)
        assert v is not None and v.number == 2 and v.state["tags"] == [1, 3]
        assert v.changed == ("tags",)
        # the tag's own version lists the article, in the same changeset
        t3 = latest_version(s, Tag, 3)
        assert t3 is not None and t3.state["articles"] == [1]
        assert t3.changeset.id == v.changeset.id
        rows = s.execute(select(LINKS).order_by(LINKS.c.history_id)).all()
        assert [(r.article_id, r.tag_id, r.operation) for r in rows][-1] == (1, 3, "insert")
        assert rows[-1].changeset_id == v.changeset.id


def test_remove(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a, tags = _setup(s)
        a.tags.remove(tags[0])
        s.commit()
        v = latest_version(s, Article, 1)
        assert v is not None and v.number == 2 and v.state["tags"] == []
        rows = s.execute(select(LINKS.c.tag_id, LINKS.c.operation)).all()
        assert (1, "delete") in [tuple(r) for r in rows]


def test_add_and_remove_and_column_change_in_one_flush(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a, tags = _setup(s)
        a.tags.remove(tags[0])
        a.tags.append(tags[1])
        a.title = "b"
        s.commit()
        v = versions(s, Article, 1)
        assert [x.number for x in v] == [2, 1]  # one version, not one per change
        assert v[0].state["tags"] == [2] and set(v[0].changed) == {"title", "tags"}
        assert v[0].state["title"] == "b"


def test_change_from_the_other_side(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        _a, tags = _setup(s)
        s.expunge_all()
        tag = s.get(Tag, 2)
        assert tag is not None
        tag.articles.append(s.get(Article, 1))  # type: ignore[arg-type]
        s.commit()
        assert _tags(s, 1) == [1, 2]
        assert latest_version(s, Article, 1).number == 2  # type: ignore[union-attr]


def test_other_side_without_back_populates(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        p = Post(id=1)
        labels = [Label(id=1), Label(id=2)]
        s.add_all([p, *labels])
        s.commit()
        labels[1].posts.append(p)  # Label is not versioned, Post.labels knows nothing of it
        s.commit()
        v = latest_version(s, Post, 1)
        assert v is not None and v.number == 2 and v.state["labels"] == [2]
        p.labels.append(labels[0])
        s.commit()
        assert latest_version(s, Post, 1).state["labels"] == [1, 2]  # type: ignore[union-attr]
        labels[1].posts.remove(p)
        s.commit()
        assert [x.state["labels"] for x in versions(s, Post, 1)] == [[1], [1, 2], [2], []]


def test_one_to_many_ordered(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        o = Order(id=1, lines=[Line(id=1, position=1), Line(id=2, position=2)])
        s.add(o)
        s.commit()
        assert versions(s, Order, 1)[0].state["lines"] == [1, 2]
        o.lines[0].position, o.lines[1].position = 2, 1  # reorder
        s.commit()
        assert latest_version(s, Order, 1).state["lines"] == [2, 1]  # type: ignore[union-attr]
        o.lines.append(Line(id=3, position=3))
        del o.lines[0]  # delete-orphan: line 2 goes
        s.commit()
        v = versions(s, Order, 1)
        assert [x.state["lines"] for x in v] == [[1, 3], [2, 1], [1, 2]]
        assert v[0].changed == ("lines",)
        line = s.get(Line, 1)
        assert line is not None
        line.order = None  # from the child's side
        s.commit()
        assert latest_version(s, Order, 1).state["lines"] == [3]  # type: ignore[union-attr]


def test_parent_without_collection_change_keeps_its_list(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a, _tags = _setup(s)
        a.title = "renamed"
        s.commit()
        v = latest_version(s, Article, 1)
        assert v is not None and v.changed == ("title",) and v.state["tags"] == [1]
        s.delete(a)
        s.commit()
        last = latest_version(s, Article, 1)
        assert last is not None and last.is_delete and last.state["tags"] == [1]


def test_batched_updates_of_parents_with_collections(
    maker: sessionmaker[Session], engine: Engine
) -> None:
    with maker() as s:
        s.add_all([Article(id=i, title="t") for i in range(1, 51)])
        s.commit()
        arts = s.scalars(select(Article)).all()
        with count_statements(engine) as seen:
            for a in arts:
                a.title = "u"
            s.flush()
        # no per-parent queries: a constant number, whatever the row count
        assert len(seen) <= 8, seen



def test_a_record_older_than_versioning_gets_a_version_for_a_collection_change(
    engine: Engine,
) -> None:
    """Rows written before versioning was enabled have no version; a tag change still counts."""
    Base.metadata.create_all(engine)
    with sessionmaker(engine)() as s:  # not versioned yet
        s.add_all([Article(id=1, title="old", tags=[Tag(id=1, name="a")]), Tag(id=2, name="b")])
        s.commit()
    with versioned_sessions(engine) as mk, mk() as s:
        article = s.get(Article, 1)
        assert article is not None and versions(s, Article, 1) == []
        article.tags.append(s.get(Tag, 2))
        s.commit()
        (first,) = versions(s, Article, 1)
        assert first.changed == ("tags",) and first.state["tags"] == [1, 2]
