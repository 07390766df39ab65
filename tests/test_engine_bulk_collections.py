"""Bulk statements changing another record's collection: its parent gets a version or a refusal."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from engine_models import count_statements, versioned_sessions
from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    foreign,
    mapped_column,
    relationship,
    sessionmaker,
)

from versioned_admin.versioning import (
    UnversionedWriteError,
    Versioned,
    VersionedRows,
    latest_version,
    versions,
)


class Base(DeclarativeBase):
    pass


article_tag = Table(
    "bc_article_tag",
    Base.metadata,
    Column("article_id", ForeignKey("bc_article.id"), primary_key=True),
    Column("tag_id", ForeignKey("bc_tag.id"), primary_key=True),
)
post_label = Table(
    "bc_post_label",
    Base.metadata,
    Column("post_id", ForeignKey("bc_post.id"), primary_key=True),
    Column("label_id", ForeignKey("bc_label.id"), primary_key=True),
)
quote_tag = Table(
    "bc_quote_tag",
    Base.metadata,
    Column("quote_id", Integer, primary_key=True),
    Column("tag_id", ForeignKey("bc_tag.id"), primary_key=True),
)


class Article(Versioned, Base):
    __tablename__ = "bc_article"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(50), default="")
    tags: Mapped[list[Tag]] = relationship(secondary=article_tag, back_populates="articles")


class Tag(Versioned, Base):
    __tablename__ = "bc_tag"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    articles: Mapped[list[Article]] = relationship(secondary=article_tag, back_populates="tags")


class Post(Versioned, Base):
    __tablename__ = "bc_post"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    labels: Mapped[list[Label]] = relationship(secondary=post_label)


class Label(Base):
    """Not versioned."""

    __tablename__ = "bc_label"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Order(Versioned, Base):
    __tablename__ = "bc_order"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note: Mapped[str] = mapped_column(String(50), default="")
    lines: Mapped[list[Line]] = relationship(back_populates="order", order_by="Line.position")


class Line(Versioned, Base):
    __tablename__ = "bc_line"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int | None] = mapped_column("order_ref", ForeignKey("bc_order.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(String(50), default="")
    order: Mapped[Order | None] = relationship(back_populates="lines")


class Box(Versioned, Base):
    __tablename__ = "bc_box"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parts: Mapped[list[Part]] = relationship()


class Part(Base):
    """Not versioned: only its box's versions know where it was."""

    __tablename__ = "bc_part"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    box_id: Mapped[int | None] = mapped_column(ForeignKey("bc_box.id"))


class Quote(VersionedRows, Base):
    __tablename__ = "bc_quote"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(50), default="")
    tags: Mapped[list[Tag]] = relationship(
        secondary=quote_tag,
        primaryjoin=lambda: Quote.id == foreign(quote_tag.c.quote_id),
        secondaryjoin=lambda: Tag.id == foreign(quote_tag.c.tag_id),
    )
    lines: Mapped[list[QuoteLine]] = relationship(
        primaryjoin=lambda: Quote.id == foreign(QuoteLine.quote_id)
    )


class QuoteLine(Versioned, Base):
    __tablename__ = "bc_quote_line"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    quote_id: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String(50), default="")


class Node(Versioned, Base):
    """A tree: moving a node changes its own row and two other nodes' children."""

    __tablename__ = "bc_node"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("bc_node.id"))
    children: Mapped[list[Node]] = relationship()


sheet_mark = Table(
    "bc_sheet_mark",
    Base.metadata,
    Column("sheet_id", ForeignKey("bc_sheet.id"), primary_key=True),
    Column("mark_id", ForeignKey("bc_mark.id", ondelete="CASCADE"), primary_key=True),
)


class Sheet(Versioned, Base):
    __tablename__ = "bc_sheet"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marks: Mapped[list[Mark]] = relationship(secondary=sheet_mark)


class Mark(Base):
    """Not versioned; deleting one makes the database drop its links."""

    __tablename__ = "bc_mark"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Crate(Base):
    __tablename__ = "bc_crate"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Slot(Versioned, Base):
    """Versioned rows the database deletes with their crate."""

    __tablename__ = "bc_slot"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crate_id: Mapped[int | None] = mapped_column(ForeignKey("bc_crate.id", ondelete="CASCADE"))


ARTICLE_LINKS = Base.metadata.tables["bc_article_tag_version"]
POST_LINKS = Base.metadata.tables["bc_post_label_version"]


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        with mk() as s:
            tags = [Tag(id=i) for i in (1, 2, 3)]
            labels = [Label(id=i) for i in (1, 2)]
            s.add_all([*tags, *labels])
            s.add(Article(id=1, tags=[tags[0]]))
            s.add(Article(id=2, tags=[tags[0], tags[1]]))
            s.add(Post(id=1, labels=[labels[0]]))
            s.add(Order(id=1, lines=[Line(id=1, position=1), Line(id=2, position=2)]))
            s.add(Order(id=2, lines=[Line(id=3, position=3)]))
            s.add(Order(id=3))
            s.add(Box(id=1, parts=[Part(id=1), Part(id=2)]))
            s.add(Box(id=2))
            s.add(Quote(id=1, tags=[tags[2]], lines=[QuoteLine(id=1)]))
            s.add(QuoteLine(id=2))  # in no quote
            s.commit()
        yield mk


def _list(s: Session, model: type, pk: int, key: str) -> tuple[int, list[object], tuple[str, ...]]:
    v = latest_version(s, model, pk)
    assert v is not None
    changed = tuple(v.changed or ()) if v.operation.value == "update" else ()
    return v.number, list(v.state[key]), changed


def _links(s: Session, table: Table) -> list[tuple[int, int, str, int]]:
    rows = s.execute(select(table).order_by(table.c.history_id)).all()
    return [(r[1], r[2], r.operation, r.changeset_id) for r in rows]


# -- one-to-many: children moved, deleted, inserted by a statement --------------------------


def test_update_moving_children_versions_both_parents(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.execute(update(Line).where(Line.id == 2).values(order_id=2))
        s.commit()
        assert _list(s, Order, 1, "lines") == (2, [1], ("lines",))
        assert _list(s, Order, 2, "lines") == (2, [2, 3], ("lines",))
        assert _list(s, Order, 3, "lines") == (1, [], ())
        line = versions(s, Line, 2)[0]
        assert line.state["order_id"] == 2
        order = versions(s, Order, 1)[0]
        assert order.changeset.id == line.changeset.id
        assert order.state["note"] == ""


def test_update_by_primary_key_parameters_and_core_table(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.execute(update(Line), [{"id": 1, "order_id": 3}, {"id": 3, "text": "kept"}])
        s.commit()
        assert _list(s, Order, 1, "lines") == (2, [2], ("lines",))
        assert _list(s, Order, 3, "lines") == (2, [1], ("lines",))
        assert _list(s, Order, 2, "lines")[0] == 1  # only a column of its line changed
        table = Line.__table__
        s.execute(update(table).where(table.c.id == 1).values(order_ref=table.c.order_ref - 2))
        s.commit()
        assert _list(s, Order, 1, "lines") == (3, [1, 2], ("lines",))
        assert _list(s, Order, 3, "lines") == (3, [], ("lines",))


def test_reordering_children_is_a_change_of_the_ordered_collection(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        s.execute(update(Line).where(Line.id == 1).values(position=9))
        s.commit()
        assert _list(s, Order, 1, "lines") == (2, [2, 1], ("lines",))
        s.execute(update(Line).values(text="x"))  # no collection changes: no parent version
        s.execute(update(Line).where(Line.id == 3).values(position=Line.position))
        s.commit()
        assert [_list(s, Order, pk, "lines")[0] for pk in (1, 2, 3)] == [2, 1, 1]


def test_delete_children_versions_their_parent(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.execute(delete(Line).where(Line.order_id == 1))
        s.commit()
        assert _list(s, Order, 1, "lines") == (2, [], ("lines",))
        assert _list(s, Order, 2, "lines")[0] == 1
        assert versions(s, Line, 1)[0].operation.value == "delete"


def test_unversioned_children_through_core_and_orm(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        parts = Part.__table__
        s.execute(parts.update().where(parts.c.id == 1).values(box_id=2))
        s.commit()
        assert _list(s, Box, 1, "parts") == (2, [2], ("parts",))
        assert _list(s, Box, 2, "parts") == (2, [1], ("parts",))
        s.execute(insert(Part), [{"id": 3, "box_id": 1}, {"id": 4, "box_id": None}])
        s.execute(parts.insert().values(id=5, box_id=2))
        s.commit()
        assert _list(s, Box, 1, "parts") == (3, [2, 3], ("parts",))
        assert _list(s, Box, 2, "parts") == (3, [1, 5], ("parts",))
        s.execute(delete(Part).where(Part.id.in_([1, 2])))
        s.commit()
        assert _list(s, Box, 1, "parts") == (4, [3], ("parts",))
        assert _list(s, Box, 2, "parts") == (4, [5], ("parts",))


def test_insert_children_versions_their_parents(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.execute(insert(Line), [{"id": 7, "order_id": 3, "position": 1},
                                 {"id": 8, "order_id": 2, "position": 0}])
        s.execute(insert(Line), [{"id": 9, "order_id": 3, "position": 2}])
        s.commit()
        assert _list(s, Order, 3, "lines") == (3, [7, 9], ("lines",))  # a version per statement
        assert _list(s, Order, 2, "lines") == (2, [8, 3], ("lines",))


# -- many-to-many: Core statements on the association table ----------------------------------


def test_association_insert_versions_both_sides_and_logs_the_link(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        s.execute(article_tag.insert().values(article_id=1, tag_id=2))
        s.commit()
        assert _list(s, Article, 1, "tags") == (2, [1, 2], ("tags",))
        assert _list(s, Tag, 2, "articles") == (2, [1, 2], ("articles",))
        cs = versions(s, Article, 1)[0].changeset.id
        assert versions(s, Tag, 2)[0].changeset.id == cs
        assert _links(s, ARTICLE_LINKS)[-1] == (1, 2, "insert", cs)
        assert len(_links(s, ARTICLE_LINKS)) == 4  # three from the setup, logged once each


def test_association_delete_and_update(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.execute(delete(article_tag).where(article_tag.c.tag_id == 1))
        s.commit()
        assert _list(s, Article, 1, "tags") == (2, [], ("tags",))
        assert _list(s, Article, 2, "tags") == (2, [2], ("tags",))
        assert _list(s, Tag, 1, "articles") == (2, [], ("articles",))
        cs = versions(s, Tag, 1)[0].changeset.id
        assert sorted(_links(s, ARTICLE_LINKS)[-2:]) == [(1, 1, "delete", cs), (2, 1, "delete", cs)]
        s.execute(update(article_tag).where(article_tag.c.article_id == 2).values(tag_id=3))
        s.commit()
        assert _list(s, Article, 2, "tags") == (3, [3], ("tags",))
        assert _list(s, Tag, 2, "articles") == (2, [], ("articles",))
        assert _list(s, Tag, 3, "articles") == (2, [2], ("articles",))
        cs = versions(s, Article, 2)[0].changeset.id
        assert sorted(_links(s, ARTICLE_LINKS)[-2:]) == [(2, 2, "delete", cs), (2, 3, "insert", cs)]


def test_association_with_one_versioned_side(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.execute(insert(post_label), [{"post_id": 1, "label_id": 2}])
        s.commit()
        assert _list(s, Post, 1, "labels") == (2, [1, 2], ("labels",))
        cs = versions(s, Post, 1)[0].changeset.id
        assert _links(s, POST_LINKS)[-1] == (1, 2, "insert", cs)


def test_bulk_collection_versions_roll_back_with_the_statement(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        s.execute(article_tag.insert().values(article_id=1, tag_id=3))
        s.rollback()
        assert _list(s, Article, 1, "tags") == (1, [1], ())
        assert len(_links(s, ARTICLE_LINKS)) == 3


def test_parent_older_than_versioning_gets_its_first_version(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        # Written below the session: no version, as for rows that predate versioning.
        s.connection().execute(Order.__table__.insert().values(id=9, note="old"))
        s.commit()
        s.execute(insert(Line), [{"id": 9, "order_id": 9}])
        s.commit()
        v = latest_version(s, Order, 9)
        assert v is not None and v.number == 1 and v.state == {"id": 9, "note": "old", "lines": [9]}


def test_self_referencing_collection_is_one_version_per_record(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        s.add_all([Node(id=1), Node(id=2, parent_id=1), Node(id=3, parent_id=2), Node(id=4)])
        s.commit()
        # Node 2 moves under 4 and takes 3 along: its own column and its children change.
        s.execute(update(Node).where(Node.id.in_([2, 3])).values(parent_id=4))
        s.commit()
        assert _list(s, Node, 2, "children") == (2, [], ("parent_id", "children"))
        assert _list(s, Node, 1, "children") == (2, [], ("children",))
        assert _list(s, Node, 4, "children") == (2, [2, 3], ("children",))
        assert _list(s, Node, 3, "children") == (2, [], ("parent_id",))


def test_links_the_database_deletes_version_their_parents(
    maker: sessionmaker[Session], backend: str
) -> None:
    with maker() as s:
        if backend == "sqlite":  # outside a transaction, or SQLite ignores it
            s.connection().exec_driver_sql("PRAGMA foreign_keys=ON")
        s.add_all([Sheet(id=1, marks=[Mark(id=1), Mark(id=2)]), Crate(id=1), Crate(id=2)])
        s.add(Slot(id=1, crate_id=1))
        s.commit()
        s.execute(delete(Mark).where(Mark.id == 1))
        s.commit()
        assert _list(s, Sheet, 1, "marks") == (2, [2], ("marks",))
        log = s.execute(select(Base.metadata.tables["bc_sheet_mark_version"])).all()
        assert [(r.mark_id, r.operation) for r in log][-1] == (1, "delete")
        with pytest.raises(UnversionedWriteError, match=r"Slot records \(ON DELETE CASCADE"):
            s.execute(delete(Crate))
        s.rollback()
        s.execute(delete(Crate).where(Crate.id == 2))  # no slot in it: nothing to lose
        s.commit()
        assert s.scalars(select(Slot.id)).all() == [1]


# -- refusals --------------------------------------------------------------------------------


def test_rows_strategy_parents_are_refused(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        attempts: list[Callable[[], object]] = [
            lambda: s.execute(update(QuoteLine).where(QuoteLine.id == 2).values(quote_id=1)),
            lambda: s.execute(delete(QuoteLine).where(QuoteLine.id == 1)),
            lambda: s.execute(insert(QuoteLine), [{"id": 5, "quote_id": 1}]),
            lambda: s.execute(quote_tag.insert().values(quote_id=1, tag_id=1)),
            lambda: s.execute(delete(quote_tag)),
        ]
        for attempt in attempts:
            with pytest.raises(UnversionedWriteError, match=r"Quote\.(lines|tags).*rows strategy"):
                attempt()
            s.rollback()
        assert s.scalars(select(QuoteLine.quote_id).order_by(QuoteLine.id)).all() == [1, None]
        # Statements that leave every quote's collections alone still run.
        s.execute(update(QuoteLine).values(text="x"))
        s.execute(delete(QuoteLine).where(QuoteLine.quote_id.is_(None)))
        s.commit()
        assert versions(s, QuoteLine, 2)[0].operation.value == "delete"


def test_statements_that_cannot_be_analysed_are_refused(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        table = Line.__table__
        attempts: list[Callable[[], object]] = [
            lambda: s.execute(update(Line).where(func.random() > 0).values(order_id=3)),
            lambda: s.execute(
                update(table).where(table.c.id == bindparam("lid")).values(order_ref=3),
                [{"lid": 1}, {"lid": 2}],
            ),
            lambda: s.execute(insert(post_label).from_select(
                ["post_id", "label_id"], select(Post.id, 2))),
        ]
        for attempt in attempts:
            with pytest.raises(UnversionedWriteError, match="cannot"):
                attempt()
            s.rollback()
        assert _list(s, Order, 3, "lines") == (1, [], ())


def test_own_rows_read_again_must_be_the_same_rows(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        table = Line.__table__
        by_key = update(table).where(table.c.id == bindparam("lid")).values(text=bindparam("t"))
        attempts: list[Callable[[], object]] = [
            lambda: s.execute(update(Line).where(func.random() < 2).values(text="x")),
            lambda: s.execute(by_key, [{"lid": 1, "t": "a"}, {"lid": 2, "t": "b"}]),
        ]
        for attempt in attempts:
            with pytest.raises(UnversionedWriteError, match="cannot"):
                attempt()
            s.rollback()
        s.execute(by_key, {"lid": 1, "t": "one"})  # one set: its WHERE is read with it
        s.commit()
        assert versions(s, Line, 1)[0].state["text"] == "one"


# -- batching ----------------------------------------------------------------------------------


def _statements_to_move(maker: sessionmaker[Session], first: int, n: int) -> list[str]:
    ids = range(first, first + n)
    with maker() as s:
        s.add_all([Order(id=i, lines=[Line(id=i)]) for i in ids])
        s.add_all([Article(id=i) for i in ids])
        s.commit()
        with count_statements(s.get_bind()) as seen:  # type: ignore[arg-type]
            s.execute(update(Line).where(Line.id.in_(ids)).values(order_id=3))
            s.execute(insert(article_tag), [{"article_id": i, "tag_id": 3} for i in ids])
        s.commit()
        assert set(ids) <= set(_list(s, Order, 3, "lines")[1])
        assert [_list(s, Order, i, "lines") for i in ids] == [(2, [], ("lines",))] * n
        assert [_list(s, Article, i, "tags") for i in ids] == [(2, [3], ("tags",))] * n
        assert _list(s, Tag, 3, "articles")[1][-n:] == list(ids)
        return seen


def test_statement_count_does_not_grow_with_parents(maker: sessionmaker[Session]) -> None:
    # Reads before and after and one write per table: 3 parents or 40, the same statements
    # (and, on SQLite, one that takes the write lock before the rows are read).
    small = _statements_to_move(maker, 100, 3)
    large = _statements_to_move(maker, 200, 40)
    assert len(small) == len(large) <= 21
