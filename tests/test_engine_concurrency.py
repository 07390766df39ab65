"""PostgreSQL: sessions writing the same record at once never duplicate or skip a version."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from engine_models import versioned_sessions
from sqlalchemy import Engine, Integer, String, create_engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from versioned_admin.versioning import (
    StaleVersionError,
    Versioned,
    VersionedRows,
    get_live,
    versions,
)


class Base(DeclarativeBase):
    pass


class Doc(Versioned, Base):
    __tablename__ = "cc_doc"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(String(50), default="")


class Row(VersionedRows, Base):
    __tablename__ = "cc_row"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(String(50), default="")


MODELS = {"shadow": Doc, "rows": Row}


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    eng = create_engine(pg_url, pool_size=10)
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def maker(pg_engine: Engine) -> Iterator[sessionmaker[Session]]:
    with versioned_sessions(pg_engine) as mk:
        with mk() as s:
            s.add_all([Doc(id=1, title="start"), Row(id=1, title="start")])
            s.commit()
        yield mk


class Writer(threading.Thread):
    """Runs ``work`` in a thread and keeps its exception."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc


def _wait_until_blocked(engine: Engine, writer: Writer) -> None:
    """Poll until some backend waits on a lock (readiness only, nothing is timed)."""
    with engine.connect() as conn:
        for _ in range(600):
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.rollback()  # pg_stat_activity is a snapshot per transaction
            if waiting or not writer.is_alive():
                return
            time.sleep(0.05)
    raise AssertionError("the second writer never waited for the first one's row lock")


def _race(maker: sessionmaker[Session], model: type, a_title: str, b_title: str) -> Writer:
    """A holds the row (flushed, not committed) while B writes; then A commits."""
    a = maker()
    obj = get_live(a, model, 1)
    obj.title = a_title
    a.flush()

    def b_work() -> None:
        with maker() as b:
            other = get_live(b, model, 1)
            other.title = b_title
            b.commit()

    writer = Writer(b_work)
    writer.start()
    _wait_until_blocked(a.get_bind(), writer)  # type: ignore[arg-type]
    a.commit()
    a.close()
    writer.join()
    return writer


def test_shadow_row_lock_serializes_writers(maker: sessionmaker[Session]) -> None:
    writer = _race(maker, Doc, "A", "B")
    assert writer.error is None
    with maker() as s:
        got = versions(s, Doc, 1)
        assert [(v.number, v.state["title"]) for v in got] == [(3, "B"), (2, "A"), (1, "start")]
        assert len({v.changeset.id for v in got}) == 3
        assert get_live(s, Doc, 1).title == "B"


def test_rows_loser_gets_stale_version_error_then_retries(maker: sessionmaker[Session]) -> None:
    writer = _race(maker, Row, "A", "B")
    # its UPDATE waited for A's lock, then found its row no longer current: a clear refusal
    assert isinstance(writer.error, StaleVersionError)
    with maker() as s:  # the retry sees A's row and follows it
        get_live(s, Row, 1).title = "B"
        s.commit()
        got = versions(s, Row, 1)
        assert [(v.number, v.state["title"]) for v in got] == [(3, "B"), (2, "A"), (1, "start")]
        current = s.scalars(select(Row.version_id).where(Row.is_current_version)).all()
        assert current == [3]


RETRYABLE = (IntegrityError, OperationalError, StaleDataError, StaleVersionError)


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_many_writers_no_gaps_no_duplicates(maker: sessionmaker[Session], strategy: str) -> None:
    model = MODELS[strategy]
    threads, edits = 4, 8
    done: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(edits):
                value = f"w{n}-{i}"
                while True:
                    with maker() as s:
                        try:
                            get_live(s, model, 1).title = value
                            s.commit()
                        except RETRYABLE:
                            s.rollback()
                            continue
                    with lock:
                        done.append(value)
                    break

        return run

    writers = [Writer(work(n)) for n in range(threads)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert [w.error for w in writers] == [None] * threads
    with maker() as s:
        got = versions(s, model, 1, limit=1000)
        assert [v.number for v in got] == list(range(threads * edits + 1, 0, -1))
        titles = [v.state["title"] for v in reversed(got)]
        assert titles[0] == "start" and sorted(titles[1:]) == sorted(done)
        assert len(set(titles[1:])) == threads * edits  # every write kept, none twice
        live = get_live(s, model, 1)
        assert {"title": live.title, "body": live.body} == {
            k: got[0].state[k] for k in ("title", "body")
        }


def _final_state(maker: sessionmaker[Session]) -> tuple[dict[str, Any], dict[str, Any]]:
    with maker() as s:
        live = get_live(s, Doc, 1)
        return {"title": live.title, "body": live.body}, versions(s, Doc, 1)[0].state


def test_concurrent_writers_of_different_columns(maker: sessionmaker[Session]) -> None:
    a = maker()
    b = maker()
    doc_b = get_live(b, Doc, 1)  # B reads before A commits
    get_live(a, Doc, 1).title = "A"
    a.commit()
    a.close()
    doc_b.body = "B"
    b.commit()
    b.close()
    live, latest = _final_state(maker)
    assert live == {"title": "A", "body": "B"}
    assert {k: latest[k] for k in live} == live
