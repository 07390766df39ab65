"""Relations and maps: any form of ``secondary=``, bulk statements, relations-only reverts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from engine_models import row_count, versioned_sessions
from sqlalchemy import Column, Engine, ForeignKey, Integer, String, Table, delete, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.orm import sessionmaker as SessionMaker

from versioned_admin.versioning import (
    Versioned,
    VersionedMap,
    get_live,
    latest_version,
    map_at,
    restore,
    revert,
    versions,
)


class Base(DeclarativeBase):
    pass


class Doc(Versioned, Base):
    __tablename__ = "rm_doc"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(50), default="")
    # Both tables are defined after the class: only mapper configuration can resolve them.
    topics: Mapped[list[Topic]] = relationship(secondary=lambda: doc_topic)
    labels: Mapped[list[Topic]] = relationship(secondary="rm_doc_label")


class Topic(Base):
    __tablename__ = "rm_topic"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


doc_topic = Table(
    "rm_doc_topic",
    Base.metadata,
    Column("doc_id", ForeignKey("rm_doc.id"), primary_key=True),
    Column("topic_id", ForeignKey("rm_topic.id"), primary_key=True),
)
doc_label = Table(
    "rm_doc_label",
    Base.metadata,
    Column("doc_id", ForeignKey("rm_doc.id"), primary_key=True),
    Column("topic_id", ForeignKey("rm_topic.id"), primary_key=True),
)


class Setting(Versioned, Base):
    __tablename__ = "rm_setting"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), default="main")
    data = VersionedMap()


VALUES = Base.metadata.tables["rm_setting_data_value"]
ENTRIES = Base.metadata.tables["rm_setting_data_entry"]


@pytest.fixture
def maker(engine: Engine) -> Iterator[SessionMaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def _link_log(s: Session, name: str) -> list[tuple[int, int, str]]:
    t = Base.metadata.tables[name + "_version"]
    rows = s.execute(select(t).order_by(t.c.history_id)).all()
    return [(r.doc_id, r.topic_id, r.operation) for r in rows]


def _entry_ids(s: Session, pk: int, number: int) -> set[int]:
    rows = s.execute(
        select(ENTRIES.c.value_id).where(ENTRIES.c.parent_id == pk, ENTRIES.c.version == number)
    )
    return set(rows.scalars())


# -- secondary= given as a callable or a table name ----------------------------------------


def test_secondary_given_as_lambda_or_name_is_versioned(maker: SessionMaker[Session]) -> None:
    with maker() as s:
        topics = [Topic(id=i) for i in (1, 2, 3)]
        d = Doc(id=1, topics=topics[:1], labels=topics[1:2])
        s.add_all([d, *topics])
        s.commit()
        assert d.labels and d.topics  # loaded first: a lazy load would autoflush in between
        d.topics.append(topics[2])
        d.labels.clear()
        s.commit()
        v2, v1 = versions(s, Doc, 1)
        assert (v1.state["topics"], v1.state["labels"]) == ([1], [2])
        assert (v2.state["topics"], v2.state["labels"]) == ([1, 3], [])
        assert set(v2.changed) == {"topics", "labels"}
        assert _link_log(s, "rm_doc_topic") == [(1, 1, "insert"), (1, 3, "insert")]
        assert _link_log(s, "rm_doc_label") == [(1, 2, "insert"), (1, 2, "delete")]


def test_create_all_before_configuration_creates_late_history_tables(db_url: str) -> None:
    """create_all() right after the model definitions: nothing has configured the mappers."""
    code = textwrap.dedent(
        """
        import sys
        from sqlalchemy import (Column, ForeignKey, Integer, Table, create_engine, inspect,
                                select)
        from sqlalchemy.orm import DeclarativeBase, Session, foreign, relationship
        from versioned_admin.versioning import (Versioned, VersionedRows, enable_versioning,
                                                latest_version)

        class Base(DeclarativeBase):
            pass

        class Doc(Versioned, Base):
            __tablename__ = "lt_doc"
            id = Column(Integer, primary_key=True)
            topics = relationship("Topic", secondary=lambda: link)

        class Note(VersionedRows, Base):
            __tablename__ = "lt_note"
            id = Column(Integer, primary_key=True, autoincrement=False)
            topics = relationship("Topic", primaryjoin=lambda: Note.id == foreign(Topic.note_id))

        class Topic(Base):
            __tablename__ = "lt_topic"
            id = Column(Integer, primary_key=True)
            note_id = Column(Integer)

        link = Table("lt_link", Base.metadata,
                     Column("doc_id", ForeignKey("lt_doc.id"), primary_key=True),
                     Column("topic_id", ForeignKey("lt_topic.id"), primary_key=True))

        assert not inspect(Doc).configured
        assert "lt_link_version" not in Base.metadata.tables
        engine = create_engine(sys.argv[1])
        Base.metadata.create_all(engine)
        names = set(inspect(engine).get_table_names())
        assert {"lt_link_version", "lt_note_collections"} <= names, names
        Base.metadata.create_all(engine)  # again: nothing to do, no error
        enable_versioning(Session)
        with Session(engine) as s:
            t = Topic(id=1, note_id=1)
            s.add_all([Doc(id=1, topics=[t]), Note(id=1), t])
            s.commit()
            assert latest_version(s, Doc, 1).state["topics"] == [1]
            assert latest_version(s, Note, 1).state["topics"] == [1]
            log = Base.metadata.tables["lt_link_version"]
            assert s.execute(select(log.c.topic_id, log.c.operation)).all() == [(1, "insert")]
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, db_url], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "ok", out.stdout + out.stderr


# -- bulk statements on a model with a versioned map ---------------------------------------


def test_bulk_update_versions_share_the_map(maker: SessionMaker[Session]) -> None:
    with maker() as s:
        s.add_all([Setting(id=1, data={"a": 1, "b": "x"}), Setting(id=2, data={"c": True})])
        s.commit()
        s.execute(update(Setting).values(name="renamed"))
        s.commit()
        for pk, data in ((1, {"a": 1, "b": "x"}), (2, {"c": True})):
            v = latest_version(s, Setting, pk)
            assert v is not None and v.number == 2 and v.changed == ("name",)
            assert map_at(s, Setting, pk, 2) == data
            assert _entry_ids(s, pk, 2) == _entry_ids(s, pk, 1)  # shared, not copied
        assert row_count(s, VALUES) == 3
        s.expire_all()
        live = get_live(s, Setting, 1)
        assert live.data == {"a": 1, "b": "x"}
        live.data["a"] = 2  # the next version builds on the bulk version's map
        s.commit()
        assert row_count(s, VALUES) == 4  # one new value: "b" is still shared
        assert map_at(s, Setting, 1, 3) == {"a": 2, "b": "x"}


def test_bulk_delete_version_keeps_the_map_and_restore_brings_it_back(
    maker: SessionMaker[Session],
) -> None:
    with maker() as s:
        s.add(Setting(id=1, data={"a": 1}))
        s.commit()
        s.execute(delete(Setting).where(Setting.id == 1))
        s.commit()
        last = latest_version(s, Setting, 1)
        assert last is not None and last.is_delete and last.number == 2
        assert map_at(s, Setting, 1, 2) == {"a": 1}
        restore(s, Setting, 1)
        s.commit()
        assert map_at(s, Setting, 1, 3) == {"a": 1}
        assert get_live(s, Setting, 1).data == {"a": 1}
        assert row_count(s, VALUES) == 1


def test_bulk_update_versions_list_the_collections(maker: SessionMaker[Session]) -> None:
    with maker() as s:
        topic = Topic(id=1)
        s.add_all([Doc(id=1, topics=[topic]), topic])
        s.commit()
        s.execute(update(Doc).values(title="bulk"))
        s.commit()
        v = latest_version(s, Doc, 1)
        assert v is not None and v.number == 2 and v.changed == ("title",)
        assert v.state["topics"] == [1] and v.state["labels"] == []


# -- a revert that changes only relations ---------------------------------------------------


@pytest.mark.parametrize("by_key", [False, True])
def test_relations_only_revert_says_reverted_from(
    maker: SessionMaker[Session], by_key: bool
) -> None:
    with maker() as s:
        topics = [Topic(id=i) for i in (1, 2)]
        d = Doc(id=1, topics=topics[:1])
        s.add_all([d, *topics])
        s.commit()
        d.topics.append(topics[1])
        s.commit()
        if by_key:  # as the admin does it: model and primary key, nothing loaded
            s.expunge_all()
            revert(s, Doc, 1, pk=1, relations=("topics",))
        else:
            revert(s, d, 1, relations=["topics"])
        s.commit()
        v = latest_version(s, Doc, 1)
        assert v is not None and v.number == 3 and v.reverted_from == 1
        assert v.changed == ("topics",) and v.state["topics"] == [1]


def test_map_only_revert_says_reverted_from(maker: SessionMaker[Session]) -> None:
    with maker() as s:
        c = Setting(id=1, data={"a": 1})
        s.add(c)
        s.commit()
        c.data["a"] = 2
        s.commit()
        revert(s, c, 1)
        s.commit()
        v = latest_version(s, Setting, 1)
        assert v is not None and v.number == 3 and v.reverted_from == 1
        assert v.changed == ("data",) and map_at(s, Setting, 1, 3) == {"a": 1}
