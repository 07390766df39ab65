"""History that never lies: the write paths users and attackers found, on SQLite and PostgreSQL.

Each test is one scenario of the issue, done the way a user would do it; after it the live
row must equal its latest version and the numbers must run 1..n.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from engine_models import versioned_sessions
from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError, SAWarning
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from versioned_admin.versioning import (
    Operation,
    StaleVersionError,
    Versioned,
    VersionedRows,
    get_live,
    restore,
    revert,
    set_reason,
    set_user,
    set_user_source,
    versions,
)


class Base(DeclarativeBase):
    pass


class Category(Base):
    __tablename__ = "tr_category"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class Quote(VersionedRows, Base):
    """Rows strategy with an engine-allocated integer key and a many-to-one."""

    __tablename__ = "tr_quote"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("tr_category.id"))
    category: Mapped[Category | None] = relationship()


class Note(Versioned, Base):
    """Shadow strategy with keys the caller chooses (so a key can be deleted and re-added)."""

    __tablename__ = "tr_note"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("tr_category.id"))
    category: Mapped[Category | None] = relationship()
    comments: Mapped[list[Comment]] = relationship(back_populates="note")


class Reading(Versioned, Base):
    """Values a database may keep differently from how they were set."""

    __tablename__ = "tr_reading"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    taken: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    value: Mapped[float | None] = mapped_column(Float)


class Comment(Base):
    """An unversioned child in a recorded one-to-many of a versioned parent."""

    __tablename__ = "tr_comment"
    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int | None] = mapped_column(ForeignKey("tr_note.id"))
    text: Mapped[str] = mapped_column(String(80))
    note: Mapped[Note | None] = relationship(back_populates="comments")


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine, user=lambda: "rita") as mk:
        yield mk


def quote_rows(s: Session, pk: int) -> list[tuple[Any, ...]]:
    """(version_id, is_current, title, category_id, operation) of every row of a quote."""
    return [
        (r.version_id, bool(r.is_current_version), r.title, r.category_id, r.operation)
        for r in s.execute(
            text(
                "SELECT version_id, is_current_version, title, category_id, operation "
                "FROM tr_quote WHERE id = :id ORDER BY version_id"
            ),
            {"id": pk},
        )
    ]


def check_truth(s: Session, model: type, pk: Any) -> None:
    """The live record equals its latest version; numbers run 1..n."""
    found = versions(s, model, pk, limit=10_000)
    numbers = sorted(v.number for v in found)
    assert numbers == list(range(1, len(numbers) + 1))
    latest = max(found, key=lambda v: v.number)
    live = get_live(s, model, pk)
    if latest.operation is Operation.DELETE:
        assert live is None
        return
    assert live is not None
    columns = {c.key for c in model.__table__.columns}  # type: ignore[attr-defined]
    for key, value in latest.state.items():
        if key in columns:
            assert getattr(live, key) == value, key


# -- 1. rows strategy: many-to-one through the relationship ------------------------------


def test_rows_many_to_one_through_relationship_writes_a_new_row(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        news, sport = Category(name="news"), Category(name="sport")
        q = Quote(title="t")
        s.add_all([news, sport, q])
        s.commit()
        q.category = news
        s.commit()
        q.category = sport
        s.commit()
        q.category = sport  # the same target again: no new row
        s.commit()
        q.category = None
        s.commit()
        assert [r[3] for r in quote_rows(s, q.id)] == [None, news.id, sport.id, None]
        assert [r[1] for r in quote_rows(s, q.id)] == [False, False, False, True]
        check_truth(s, Quote, q.id)


def test_rows_many_to_one_to_a_new_pending_target(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q = Quote(title="t")
        s.add(q)
        s.commit()
        q.category = Category(name="fresh")
        s.commit()
        rows = quote_rows(s, q.id)
        assert len(rows) == 2 and rows[0][3] is None and rows[1][3] == q.category_id
        check_truth(s, Quote, q.id)


# -- 2. rows strategy: an edit after a rolled-back flush ---------------------------------


def test_rows_edit_after_rolled_back_flush_is_saved(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q = Quote(title="t")
        s.add(q)
        s.commit()
        q.title = "x"
        s.flush()
        s.rollback()
        assert q.title == "t"  # as a column would: the database's value again
        q.title = "real"
        s.commit()
        assert [r[2] for r in quote_rows(s, q.id)] == ["t", "real"]
        check_truth(s, Quote, q.id)


def test_rows_edit_after_rolled_back_savepoint(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q = Quote(title="t")
        s.add(q)
        s.commit()
        q.title = "kept"
        s.flush()  # outside the savepoint: survives
        nested = s.begin_nested()
        q.title = "undone"
        s.flush()
        nested.rollback()
        assert q.title == "kept"
        q.title = "final"
        s.commit()
        assert [r[2] for r in quote_rows(s, q.id)] == ["t", "kept", "final"]
        check_truth(s, Quote, q.id)


def test_rows_delete_after_rolled_back_delete(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q = Quote(title="t")
        s.add(q)
        s.commit()
        s.delete(q)
        s.flush()
        s.rollback()
        assert q.title == "t"
        s.delete(q)
        s.commit()
        assert [r[4] for r in quote_rows(s, q.id)] == ["insert", "delete"]
        check_truth(s, Quote, q.id)


def test_rows_edit_after_failed_flush(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q = Quote(title="t")
        s.add(q)
        s.commit()
        q.title = "x"
        s.add(Note(id=1, title=None))  # type: ignore[arg-type]  # NOT NULL: the flush fails
        with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
            s.flush()
        s.rollback()
        q.title = "again"
        s.commit()
        assert [r[2] for r in quote_rows(s, q.id)] == ["t", "again"]
        check_truth(s, Quote, q.id)


# -- 3. rows strategy: integer keys allocated ---------------------------------------------


def test_rows_allocates_integer_keys(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        a, b = Quote(title="a"), Quote(title="b")
        s.add_all([a, b])
        s.commit()
        assert {a.id, b.id} == {1, 2}
        s.delete(b)
        s.commit()
        c = Quote(title="c")
        s.add(c)
        s.commit()
        assert c.id == 3  # a deleted record's key is never handed out again
        s.add(Quote(id=10, title="explicit"))
        s.commit()
        d = Quote(title="d")
        s.add(d)
        s.commit()
        # SQLite: max + 1; PostgreSQL: the sequence (which skips keys taken explicitly).
        assert d.id not in (a.id, b.id, c.id, 10) and d.id > c.id
        for pk in (a.id, b.id, c.id, d.id):
            check_truth(s, Quote, pk)


def test_rows_key_allocation_with_concurrent_writers(maker: sessionmaker[Session]) -> None:
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(5):
                with maker() as s:
                    objs = [Quote(title="w") for _ in range(3)]
                    s.add_all(objs)
                    s.commit()
                    with lock:
                        ids.extend(o.id for o in objs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ids) == 60 and len(set(ids)) == 60


# -- 4. delete and re-add the same key in one flush --------------------------------------


def test_shadow_delete_and_readd_in_one_flush(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.add(Note(id=5, title="a"))
        s.commit()
        s.delete(s.get(Note, 5))
        s.add(Note(id=5, title="b"))
        s.commit()
        ops = [(v.number, v.operation) for v in versions(s, Note, 5)]
        assert ops == [(3, Operation.INSERT), (2, Operation.DELETE), (1, Operation.INSERT)]
        check_truth(s, Note, 5)


def test_rows_delete_and_readd_in_one_flush(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q = Quote(title="a")
        s.add(q)
        s.commit()
        pk = q.id
        s.delete(q)
        s.add(Quote(id=pk, title="b"))
        s.commit()
        assert quote_rows(s, pk) == [
            (1, False, "a", None, "insert"),
            (2, False, "a", None, "delete"),
            (3, True, "b", None, "insert"),
        ]
        check_truth(s, Quote, pk)


# -- 10. a stale object in a second session ----------------------------------------------


def test_stale_object_in_second_session_records_the_row(maker: sessionmaker[Session]) -> None:
    with maker() as setup:
        setup.add(Note(id=1, title="old", body="b0"))
        setup.commit()
    b = maker()
    stale = b.get(Note, 1)
    assert stale is not None and stale.title == "old"
    with maker() as a:
        a_note = a.get(Note, 1)
        assert a_note is not None
        a_note.title = "A's title"
        a.commit()
    assert stale is not None
    stale.body = "B's body"  # B never saw A's title
    b.commit()
    with maker() as s:
        live = s.get(Note, 1)
        assert live is not None and (live.title, live.body) == ("A's title", "B's body")
        latest = versions(s, Note, 1)[0]
        assert latest.state["title"] == "A's title" and latest.state["body"] == "B's body"
        assert list(latest.changed or ()) == ["body"]
        check_truth(s, Note, 1)
    b.close()


# -- revert and restore keep telling the truth after these paths -------------------------


def test_rows_revert_and_restore_after_relationship_changes(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        cat = Category(name="c")
        q = Quote(title="t")
        s.add_all([cat, q])
        s.commit()
        q.category = cat
        s.commit()
        live = get_live(s, Quote, q.id)
        revert(s, live, 1)
        s.commit()
        assert get_live(s, Quote, q.id).category_id is None
        s.delete(get_live(s, Quote, q.id))
        s.commit()
        restore(s, Quote, q.id)
        s.commit()
        check_truth(s, Quote, q.id)
        assert [r[4] for r in quote_rows(s, q.id)] == [
            "insert", "update", "update", "delete", "insert"
        ]


def test_shadow_many_to_one_through_relationship(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        cat = Category(name="c")
        s.add_all([cat, Note(id=2, title="n")])
        s.commit()
        note = s.get(Note, 2)
        assert note is not None
        note.category = cat
        s.commit()
        assert list(versions(s, Note, 2)[0].changed or ()) == ["category_id"]
        check_truth(s, Note, 2)
        assert s.scalar(select(Note.category_id).where(Note.id == 2)) == cat.id


# -- 7. the acting user travels with the session, not with the session factory -------------


def test_each_session_records_its_own_user_source(maker: sessionmaker[Session]) -> None:
    staff, ops, plain = maker(), maker(), maker()
    set_user_source(staff, lambda: "staff-ann")
    set_user_source(ops, lambda: "ops-bob")
    staff.add(Note(id=1, title="by staff"))
    ops.add(Note(id=2, title="by ops"))
    staff.commit()
    ops.commit()
    plain.add(Note(id=3, title="by the factory's user"))
    plain.commit()
    staff.get(Note, 1).title = "explicit"  # type: ignore[union-attr]
    set_user(staff, "carol")  # one transaction only
    staff.commit()
    staff.get(Note, 1).title = "source again"  # type: ignore[union-attr]
    staff.commit()
    with maker() as s:
        assert [v.changeset.user for v in versions(s, Note, 1)] == [
            "staff-ann", "carol", "staff-ann"]
        assert versions(s, Note, 2)[0].changeset.user == "ops-bob"
        assert versions(s, Note, 3)[0].changeset.user == "rita"
    for sess in (staff, ops, plain):
        sess.close()


# -- 8. a bulk UPDATE or DELETE while another transaction inserts a matching row ------------


@pytest.mark.parametrize("op", ["update", "delete"])
def test_bulk_statement_under_a_concurrent_insert(
    maker: sessionmaker[Session], engine: Engine, backend: str, op: str
) -> None:
    with maker() as s:
        s.add_all([Note(id=1, title="draft"), Note(id=2, title="draft")])
        s.commit()
    outcome: list[str] = []
    prefix = "UPDATE tr_note SET title" if op == "update" else "DELETE FROM tr_note"

    def insert_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        """Just before the bulk statement runs, another session commits a matching row."""
        if not statement.startswith(prefix) or outcome:
            return
        other = maker()
        if backend == "sqlite":
            other.connection().exec_driver_sql("PRAGMA busy_timeout = 100")
        other.add(Note(id=3, title="draft"))
        try:
            other.commit()
            outcome.append("committed")
        except OperationalError:
            outcome.append("locked out")  # SQLite: the bulk statement holds the write lock
            other.rollback()
        other.close()

    stmt: Any = (update(Note).where(Note.title == "draft").values(title="published")
                 if op == "update" else delete(Note).where(Note.title == "draft"))
    event.listen(engine, "before_cursor_execute", insert_meanwhile)
    try:
        with maker() as s:
            s.execute(stmt)
            s.commit()
    finally:
        event.remove(engine, "before_cursor_execute", insert_meanwhile)
    assert outcome == (["locked out"] if backend == "sqlite" else ["committed"])
    with maker() as s:
        for pk in (1, 2):
            check_truth(s, Note, pk)
            assert versions(s, Note, pk)[0].operation is Operation(op)
        if backend != "sqlite":  # the row committed meanwhile was not read, so not changed
            assert s.get(Note, 3).title == "draft"  # type: ignore[union-attr]
            check_truth(s, Note, 3)


# -- a changeset is written only with something in it ----------------------------------------


def test_child_column_change_leaves_no_empty_changeset(
    maker: sessionmaker[Session], engine: Engine
) -> None:
    from engine_models import changeset_count

    with maker() as s:
        note = Note(id=1, title="n", comments=[Comment(text="first")])
        s.add(note)
        s.commit()
        before = changeset_count(s, Note)
        note.comments[0].text = "edited"  # no collection of a versioned record moves
        s.commit()
        assert changeset_count(s, Note) == before
        note.comments.append(Comment(text="second"))  # this one does
        s.commit()
        assert changeset_count(s, Note) == before + 1
        assert list(versions(s, Note, 1)[0].changed or ()) == ["comments"]


# -- an insert's version says what the row says, even where the database changes a value -----


def test_insert_version_holds_what_the_database_keeps(maker: sessionmaker[Session]) -> None:
    taken = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    with maker() as s:
        s.add(Reading(id=1, taken=taken, value=float("nan")))
        s.commit()
        s.expire_all()
        live = s.get(Reading, 1)
        assert live is not None
        state = versions(s, Reading, 1)[0].state
        # SQLite drops the time zone and keeps NaN as NULL; PostgreSQL keeps both
        assert state["taken"] == live.taken  # a naive and an aware datetime are never equal
        if live.value is None:
            assert state["value"] is None
        else:
            assert math.isnan(live.value) and math.isnan(state["value"])


# -- a delete records the row the database held, once ---------------------------------------


def test_delete_records_the_stored_row_not_the_instance(maker: sessionmaker[Session]) -> None:
    with maker() as setup:
        setup.add_all([Note(id=1, title="old"), Note(id=2, title="kept")])
        setup.commit()
    b = maker()
    stale = b.get(Note, 1)
    with maker() as a:
        a.get(Note, 1).title = "A's title"  # type: ignore[union-attr]
        a.commit()
    b.delete(stale)
    b.commit()
    b.close()
    with maker() as s:
        edited = s.get(Note, 2)
        assert edited is not None
        edited.title = "never saved"
        s.delete(edited)
        s.commit()
        assert versions(s, Note, 1)[0].state["title"] == "A's title"
        assert versions(s, Note, 2)[0].state["title"] == "kept"
        check_truth(s, Note, 1)
        check_truth(s, Note, 2)


def test_deleting_a_row_someone_deleted_first_records_one_delete(
    maker: sessionmaker[Session],
) -> None:
    with maker() as setup:
        setup.add(Note(id=1, title="t"))
        setup.commit()
    b = maker()
    stale = b.get(Note, 1)
    with maker() as a:
        a.delete(a.get(Note, 1))
        a.commit()
    b.delete(stale)
    with pytest.warns(SAWarning, match="expected to delete 1 row"):
        b.commit()
    b.close()
    with maker() as s:
        assert [v.operation for v in versions(s, Note, 1)] == [Operation.DELETE, Operation.INSERT]
        check_truth(s, Note, 1)


def test_rows_edit_of_a_stale_row_is_refused_clearly(maker: sessionmaker[Session]) -> None:
    with maker() as setup:
        q = Quote(title="t")
        setup.add(q)
        setup.commit()
        pk = q.id
    b = maker()
    stale = get_live(b, Quote, pk)
    with maker() as a:
        get_live(a, Quote, pk).title = "A's"
        a.commit()
    stale.title = "B's"
    with pytest.raises(StaleVersionError, match="changed by someone else"):
        b.commit()
    b.rollback()
    fresh = get_live(b, Quote, pk)
    fresh.title = "B's, again"
    b.commit()
    b.close()
    with maker() as s:
        assert [r[2] for r in quote_rows(s, pk)] == ["t", "A's", "B's, again"]
        check_truth(s, Quote, pk)


def test_user_and_reason_set_in_a_rolled_back_savepoint_go_with_it(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        set_user(s, "outer")
        set_reason(s, "outer reason")
        nested = s.begin_nested()  # nothing written yet: no changeset before the savepoint
        set_user(s, "inner")
        set_reason(s, "inner reason")
        s.add(Note(id=2, title="b"))
        s.flush()
        nested.rollback()
        s.add_all([Note(id=1, title="a"), Note(id=3, title="c")])
        s.commit()
        for pk in (1, 3):
            cs = versions(s, Note, pk)[0].changeset
            assert (cs.user, cs.reason) == ("outer", "outer reason")
        assert versions(s, Note, 2) == []
        set_user(s, "released")
        nested = s.begin_nested()
        set_reason(s, "kept")  # a released savepoint keeps what was set in it
        s.add(Note(id=4, title="d"))
        nested.commit()
        s.commit()
        cs = versions(s, Note, 4)[0].changeset
        assert (cs.user, cs.reason) == ("released", "kept")


def test_restore_brings_back_the_collections(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        note = Note(id=1, title="n", comments=[Comment(text="a"), Comment(text="b")])
        s.add(note)
        s.commit()
        ids = sorted(c.id for c in note.comments)
        s.delete(note)
        s.commit()
        assert s.scalars(select(Comment.note_id)).all() == [None, None]  # unlinked by the delete
        back = restore(s, Note, 1)
        s.commit()
        assert sorted(c.id for c in back.comments) == ids
        latest = versions(s, Note, 1)[0]
        assert latest.operation is Operation.INSERT and latest.state["comments"] == ids
        check_truth(s, Note, 1)


def test_a_delete_after_a_revert_is_not_marked_reverted(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        q = Quote(title="a")
        s.add(q)
        s.commit()
        q.title = "b"
        s.commit()
        live = get_live(s, Quote, q.id)
        revert(s, live, 1)
        s.delete(live)
        s.commit()
        latest = versions(s, Quote, q.id)[0]
        assert latest.operation is Operation.DELETE and latest.reverted_from is None
