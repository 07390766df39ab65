"""Rows strategy: collection changes land in the record's next row, as for the shadow strategy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from engine_models import count_statements, versioned_sessions
from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Table,
    and_,
    select,
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
    Versioned,
    VersionedRows,
    get_live,
    latest_version,
    related_as_of,
    restore,
    revert,
    versions,
)


class Base(DeclarativeBase):
    pass


# Links hold the quote's id, which every row (version) of the quote shares: no foreign key,
# since that id is not unique in the quote's table.
quote_tag = Table(
    "rq_quote_tag",
    Base.metadata,
    Column("quote_id", Integer, primary_key=True),
    Column("tag_id", ForeignKey("rq_tag.id"), primary_key=True),
)


class Tag(Versioned, Base):
    __tablename__ = "rq_tag"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    quotes: Mapped[list[Quote]] = relationship(
        secondary=quote_tag,
        primaryjoin=lambda: Tag.id == foreign(quote_tag.c.tag_id),
        secondaryjoin=lambda: and_(
            Quote.id == foreign(quote_tag.c.quote_id), Quote.is_current_version.is_(True)
        ),
        back_populates="tags",
    )


class Line(Versioned, Base):
    __tablename__ = "rq_line"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    quote_id: Mapped[int | None] = mapped_column(Integer, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str | None] = mapped_column(String(50))


class Quote(VersionedRows, Base):
    __tablename__ = "rq_quote"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(50))
    tags: Mapped[list[Tag]] = relationship(
        secondary=quote_tag,
        primaryjoin=lambda: Quote.id == foreign(quote_tag.c.quote_id),
        secondaryjoin=lambda: Tag.id == foreign(quote_tag.c.tag_id),
        back_populates="quotes",
    )
    lines: Mapped[list[Line]] = relationship(
        primaryjoin=lambda: Quote.id == foreign(Line.quote_id), order_by=lambda: Line.position
    )


class Order(VersionedRows, Base):
    """Its items point at its row (id, version_id) and follow it to each new row."""

    __tablename__ = "rq_order"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    note: Mapped[str | None] = mapped_column(String(50))
    items: Mapped[list[Item]] = relationship(back_populates="order")


class Item(Base):
    __tablename__ = "rq_item"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(Integer)
    order_version_id: Mapped[int | None] = mapped_column(Integer)
    order: Mapped[Order | None] = relationship(back_populates="items")
    __table_args__ = (
        ForeignKeyConstraint(
            ["order_id", "order_version_id"], ["rq_order.id", "rq_order.version_id"]
        ),
    )


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def _links(s: Session) -> list[tuple[int, int, str, int]]:
    t = Base.metadata.tables["rq_quote_tag_version"]
    rows = s.execute(select(t).order_by(t.c.history_id)).all()
    return [(r.quote_id, r.tag_id, r.operation, r.changeset_id) for r in rows]


def _rows(s: Session) -> list[tuple[int, int, bool]]:
    stmt = select(Quote.id, Quote.version_id, Quote.is_current_version).order_by(
        Quote.id, Quote.version_id
    )
    return [(a, b, c) for a, b, c in s.execute(stmt)]


def _setup(s: Session) -> tuple[Quote, list[Tag]]:
    tags = [Tag(id=i, name=f"t{i}") for i in (1, 2, 3)]
    q = Quote(id=1, title="a", tags=[tags[0]], lines=[Line(id=1, position=1)])
    s.add_all([q, *tags])
    s.commit()
    return q, tags


def test_first_row_lists_the_collections(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        _setup(s)
        (v,) = versions(s, Quote, 1)
        assert v.state["tags"] == [1] and v.state["lines"] == [1]
        assert {"title", "tags", "lines"} <= set(v.changed)
        assert _links(s) == [(1, 1, "insert", v.changeset.id)]


def test_adding_a_tag_alone_makes_the_next_row(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q, tags = _setup(s)
        q.tags.append(tags[1])
        s.commit()
        assert _rows(s) == [(1, 1, False), (1, 2, True)]
        v2, v1 = versions(s, Quote, 1)
        assert v2.state["tags"] == [1, 2] and v2.changed == ("tags",)
        assert v1.state["tags"] == [1]  # the old row's version still lists what it had
        assert _links(s)[-1] == (1, 2, "insert", v2.changeset.id)
        # the other side's version lists the quote, in the same changeset
        t2 = latest_version(s, Tag, 2)
        assert t2 is not None and t2.state["quotes"] == [1]
        assert t2.changeset.id == v2.changeset.id
        q.title = "b"  # and the new row keeps versioning as usual
        s.commit()
        v3 = latest_version(s, Quote, 1)
        assert v3 is not None and v3.changed == ("title",) and v3.state["tags"] == [1, 2]


def test_remove_add_and_column_change_make_one_row(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q, tags = _setup(s)
        q.tags.remove(tags[0])
        q.tags.append(tags[2])
        q.title = "b"
        s.commit()
        got = versions(s, Quote, 1)
        assert [v.number for v in got] == [2, 1]
        assert got[0].state["tags"] == [3] and set(got[0].changed) == {"title", "tags"}
        assert [(t, op) for _q, t, op, _c in _links(s)[-2:]] == [(1, "delete"), (3, "insert")]


def test_change_from_the_other_side(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        _setup(s)
        s.add(Quote(id=2, title="other"))
        s.commit()
        s.expunge_all()
        tag = s.get(Tag, 3)
        assert tag is not None
        tag.quotes.append(get_live(s, Quote, 2))
        tag.quotes.append(get_live(s, Quote, 1))
        s.commit()
        assert latest_version(s, Quote, 1).state["tags"] == [1, 3]  # type: ignore[union-attr]
        assert [v.state["tags"] for v in versions(s, Quote, 2)] == [[3], []]
        tag.quotes.clear()
        s.commit()
        assert latest_version(s, Quote, 2).state["tags"] == []  # type: ignore[union-attr]
        assert latest_version(s, Quote, 1).number == 3  # type: ignore[union-attr]


def test_one_to_many_from_the_child_side_and_order(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        _setup(s)
        line = Line(id=2, quote_id=1, position=2)
        s.add(line)  # the quote is not touched: the child's key alone adds it
        s.commit()
        assert latest_version(s, Quote, 1).state["lines"] == [1, 2]  # type: ignore[union-attr]
        line.text = "no effect on the quote"
        s.commit()
        assert latest_version(s, Quote, 1).number == 2  # type: ignore[union-attr]
        q = get_live(s, Quote, 1)
        assert [x.id for x in q.lines] == [1, 2]
        line.position = 5  # still last: the quote's list is unchanged
        s.commit()
        assert latest_version(s, Quote, 1).number == 2  # type: ignore[union-attr]
        line.position = 0  # now first: a reorder is a change of the list
        s.commit()
        v = latest_version(s, Quote, 1)
        assert v is not None and v.number == 3 and v.state["lines"] == [2, 1]
        assert v.changed == ("lines",)
        line.quote_id = None
        s.commit()
        assert latest_version(s, Quote, 1).state["lines"] == [1]  # type: ignore[union-attr]
        s.delete(s.get(Line, 1))
        s.commit()
        v = latest_version(s, Quote, 1)
        assert v is not None and v.number == 5 and v.state["lines"] == []


def test_children_that_follow_the_row(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        o = Order(id=1, note="a", items=[Item(id=1)])
        s.add(o)
        s.commit()
        o.items.append(Item(id=2))
        s.commit()
        v2, v1 = versions(s, Order, 1)
        assert v1.state["items"] == [1] and v2.state["items"] == [1, 2]
        assert v2.changed == ("items",)
        got = s.execute(select(Item.id, Item.order_version_id).order_by(Item.id)).all()
        assert [tuple(r) for r in got] == [(1, 2), (2, 2)]  # both point at the new row
        o.note = "b"
        s.commit()
        v3 = latest_version(s, Order, 1)
        assert v3 is not None and v3.changed == ("note",) and v3.state["items"] == [1, 2]


def test_noop_collection_save_makes_no_row(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q, _tags = _setup(s)
        q.tags = list(q.tags)
        s.commit()
        assert _rows(s) == [(1, 1, True)]


def test_relations_only_revert_is_marked(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q, tags = _setup(s)
        q.tags.append(tags[1])
        s.commit()
        q = get_live(s, Quote, 1)
        revert(s, q, 1, relations=("tags",))
        s.commit()
        v = latest_version(s, Quote, 1)
        assert v is not None and v.number == 3 and v.reverted_from == 1
        assert v.state["tags"] == [1] and v.changed == ("tags",)


def test_delete_restore_and_related_as_of(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q, tags = _setup(s)
        tags[0].name = "renamed"
        q.tags.append(tags[1])
        s.commit()
        v1 = versions(s, Quote, 1)[-1]
        assert [r.state["name"] for r in related_as_of(s, v1, "tags")] == ["t1"]
        s.delete(get_live(s, Quote, 1))
        s.commit()
        last = latest_version(s, Quote, 1)
        assert last is not None and last.is_delete and last.state["tags"] == [1, 2]
        restore(s, Quote, 1)
        s.commit()
        back = latest_version(s, Quote, 1)
        assert back is not None and back.number == 4 and back.state["tags"] == [1, 2]


def test_rows_strategy_records_related_as_of_and_reverted(maker: sessionmaker[Session]) -> None:
    """From a shadow tag's side: its quotes as they were, and a revert that brings one back."""
    with maker() as s:
        _q, tags = _setup(s)
        q = get_live(s, Quote, 1)
        q.title = "b"
        s.commit()
        tag = s.get(Tag, 1)
        assert tag is not None
        v1 = versions(s, Tag, 1)[-1]
        (rel,) = related_as_of(s, v1, "quotes")
        assert (rel.current, rel.state["title"], rel.version.number) == (False, "a", 1)  # type: ignore[index, union-attr]
        tag.quotes.clear()
        s.commit()
        assert latest_version(s, Quote, 1).state["tags"] == []  # type: ignore[union-attr]
        revert(s, tag, v1.number, relations=("quotes",))
        s.commit()
        assert latest_version(s, Tag, 1).state["quotes"] == [1]  # type: ignore[union-attr]
        back = latest_version(s, Quote, 1)
        assert back is not None and back.state["tags"] == [1] and back.state["title"] == "b"


def test_updates_of_many_records_stay_batched(
    maker: sessionmaker[Session], engine: Engine
) -> None:
    with maker() as s:
        s.add_all([Quote(id=i, title="t") for i in range(1, 51)])
        s.commit()
        quotes = s.scalars(select(Quote)).all()
        with count_statements(engine) as seen:
            for q in quotes:
                q.title = "u"
            s.flush()
        assert len(seen) <= 8, seen  # no per-record statement
        s.commit()
        assert latest_version(s, Quote, 50).state["tags"] == []  # type: ignore[union-attr]


def test_deleting_expired_children_reads_their_keys_at_once(
    maker: sessionmaker[Session], engine: Engine
) -> None:
    with maker() as s:
        s.add(Order(id=1, items=[Item(id=i) for i in range(1, 31)]))
        s.commit()
        items = s.scalars(select(Item)).all()
        s.commit()  # every attribute expired
        with count_statements(engine) as seen:
            for item in items:
                s.delete(item)
            s.flush()
        assert len(seen) <= 10, seen  # not one SELECT per child
        s.commit()
        v = latest_version(s, Order, 1)
        assert v is not None and v.number == 2 and v.state["items"] == []


def test_unrecordable_collection_is_refused_at_configuration() -> None:
    """Links keyed by (id, version_id) would be lost with every new row: refused, loudly."""
    code = textwrap.dedent(
        """
        from sqlalchemy import Column, ForeignKeyConstraint, Integer, Table
        from sqlalchemy.orm import DeclarativeBase, configure_mappers, relationship
        from versioned_admin.versioning import VersionedRows, VersioningError

        class Base(DeclarativeBase):
            pass

        link = Table("link", Base.metadata, Column("doc_id", Integer, primary_key=True),
                     Column("doc_version_id", Integer, primary_key=True),
                     Column("other_id", Integer, primary_key=True),
                     ForeignKeyConstraint(["doc_id", "doc_version_id"],
                                          ["doc.id", "doc.version_id"]))

        class Other(Base):
            __tablename__ = "other"
            id = Column(Integer, primary_key=True)

        Table("link", Base.metadata).append_constraint(
            ForeignKeyConstraint(["other_id"], ["other.id"]))

        class Doc(VersionedRows, Base):
            __tablename__ = "doc"
            id = Column(Integer, primary_key=True, autoincrement=False)
            others = relationship(Other, secondary=link)

        try:
            configure_mappers()
        except VersioningError as exc:
            print("refused:", exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "refused: Doc.others: the rows strategy records" in out.stdout, out.stdout + out.stderr
    assert "viewonly=True" in out.stdout
