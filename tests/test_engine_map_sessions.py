"""A VersionedMap in long-lived sessions: loaded, expired, rolled back and merged like a column.

Two sessions of one sessionmaker. A flush writes only the keys its session changed, on top of
the latest stored version read under the record's row lock: another session's change is never
written back stale. Concurrent writers on PostgreSQL run in a thread that waits for the lock;
SQLite's single writer waits the same way (its busy timeout).
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from engine_models import versioned_sessions
from sqlalchemy import Engine, String, create_engine, select, text
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    attributes,
    mapped_column,
    sessionmaker,
)
from sqlalchemy.orm.exc import DetachedInstanceError

from versioned_admin.versioning import (
    StaleVersionError,
    Versioned,
    VersionedMap,
    VersioningError,
    expect_version,
    key_history,
    map_at,
    restore,
    versions,
)
from versioned_admin.versioning.changesets import set_user_source


class Base(DeclarativeBase):
    pass


class Conf(Versioned, Base):
    __tablename__ = "ms_conf"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), default="main")
    data = VersionedMap()


Maker = sessionmaker[Session]


@pytest.fixture
def threaded(db_url: str) -> Iterator[Engine]:
    """An engine whose connections may move between threads (SQLite's are pinned otherwise)."""
    args = {"check_same_thread": False} if db_url.startswith("sqlite") else {}
    eng = create_engine(db_url, connect_args=args)
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def maker(threaded: Engine) -> Iterator[Maker]:
    with versioned_sessions(threaded) as mk:
        yield mk


def session_of(maker: Maker, user: str) -> Session:
    """A session whose changesets are recorded as ``user``'s."""
    s = maker()
    set_user_source(s, lambda: user)
    return s


def create(maker: Maker, data: dict[str, Any]) -> int:
    with session_of(maker, "setup") as s:
        c = Conf(data=data)
        s.add(c)
        s.commit()
        return c.id


def stored(maker: Maker, pk: int) -> dict[str, Any]:
    """The map of the record's latest version, read by a fresh session."""
    with maker() as s:
        return map_at(s, Conf, pk, versions(s, Conf, pk)[0].number)


def commit_elsewhere(maker: Maker, pk: int, change: Callable[[dict[str, Any]], None],
                     user: str = "bob") -> None:
    with session_of(maker, user) as s:
        c = s.get(Conf, pk)
        assert c is not None
        change(c.data)
        s.commit()


def set_key(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data[key] = value

    return change


# -------------------------------------------------------------- the scenario


@pytest.mark.parametrize("how", ["commit", "expire_all", "refresh", "expire", "expire_name",
                                 "refresh_name", "populate_existing", "rollback"])
def test_long_lived_session_sees_the_other_commit(maker: Maker, how: str) -> None:
    pk = create(maker, {"k": 1})
    a = session_of(maker, "alice")
    try:
        c = a.get(Conf, pk)
        assert c is not None and c.data["k"] == 1  # A reads and keeps its session
        commit_elsewhere(maker, pk, set_key("k", 2))  # B
        if how == "commit":
            a.commit()
        elif how == "expire_all":
            a.expire_all()
        elif how == "refresh":
            a.refresh(c)
        elif how == "expire":
            a.expire(c)
        elif how == "expire_name":
            a.expire(c, ["data"])
        elif how == "refresh_name":
            a.refresh(c, ["data"])
        elif how == "populate_existing":
            a.execute(select(Conf).execution_options(populate_existing=True)).all()
        else:
            a.rollback()
        assert c.data == {"k": 2}
        c.data["j"] = "mine"
        a.commit()
        assert c.data == {"k": 2, "j": "mine"}
        hist = versions(a, Conf, pk)
        assert [v.number for v in hist] == [3, 2, 1]
        assert [v.changeset.user for v in hist] == ["alice", "bob", "setup"]
        assert [v.changed for v in hist[:2]] == [("data",), ("data",)]
        assert map_at(a, Conf, pk, 2) == {"k": 2}
        assert map_at(a, Conf, pk, 3) == {"j": "mine", "k": 2}
        assert [(h.value, h.version) for h in key_history(a, Conf, pk, "k")] == [(1, 1), (2, 2)]
    finally:
        a.close()
    assert stored(maker, pk) == {"k": 2, "j": "mine"}


def test_a_stale_map_writes_only_its_own_keys(maker: Maker) -> None:
    """No expiry at all: A's view of k is stale, yet its write keeps B's k."""
    pk = create(maker, {"k": 1, "gone": 0})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None and c.data == {"k": 1, "gone": 0}
        commit_elsewhere(maker, pk, set_key("k", 2))
        commit_elsewhere(maker, pk, set_key("new", True), user="carol")
        c.data["j"] = 3
        del c.data["gone"]
        a.flush()
        assert c.data == {"k": 1, "j": 3}  # like columns: what A had, until it expires
        a.commit()
        assert c.data == {"k": 2, "new": True, "j": 3}
    assert stored(maker, pk) == {"k": 2, "new": True, "j": 3}
    with maker() as s:
        assert [h.deleted for h in key_history(s, Conf, pk, "gone")] == [False, True]
        assert len(key_history(s, Conf, pk, "k")) == 2  # k was not written again


def test_a_change_back_to_what_was_read_writes_nothing(maker: Maker) -> None:
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        c.data["k"] = 5
        c.data["k"] = 1
        assert not a.is_modified(c)
        a.commit()
        assert len(versions(a, Conf, pk)) == 1


# ---------------------------------------------------------------- concurrent writers


def _waiting(maker: Maker, backend: str, started: threading.Event) -> None:
    """Wait until the other thread is blocked on a lock (PostgreSQL), or a moment (SQLite)."""
    assert started.wait(10)
    if backend != "postgresql":
        time.sleep(0.3)
        return
    with maker() as s:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = s.execute(text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()")).scalar_one()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the second writer never waited for the first one's lock")


def _in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _race(maker: Maker, backend: str, pk: int, mine: Callable[[Conf], None],
          theirs: Callable[[Conf, Session], None]) -> list[BaseException]:
    """A flushes ``mine`` and holds its lock; B (a thread) loads and flushes ``theirs``, waits;
    A commits, then B finishes. Returns B's errors."""
    started = threading.Event()
    a = session_of(maker, "alice")
    b = session_of(maker, "bob")
    try:
        c = a.get(Conf, pk)
        assert c is not None
        mine(c)
        a.flush()  # A holds the row (PostgreSQL) or the database (SQLite)

        def second() -> None:
            cb = b.get(Conf, pk)
            assert cb is not None
            theirs(cb, b)
            started.set()
            b.commit()

        thread, errors = _in_thread(second)
        _waiting(maker, backend, started)
        a.commit()
        thread.join(20)
        assert not thread.is_alive()
        return errors
    finally:
        a.close()
        b.close()


def test_concurrent_writers_of_different_keys_both_survive(maker: Maker, backend: str) -> None:
    pk = create(maker, {"k": 1})

    def mine(c: Conf) -> None:
        c.data["a"] = "A"

    def theirs(c: Conf, s: Session) -> None:
        assert c.data == {"k": 1}  # B read before A committed
        c.data["b"] = "B"

    assert _race(maker, backend, pk, mine, theirs) == []
    assert stored(maker, pk) == {"k": 1, "a": "A", "b": "B"}
    with maker() as s:
        hist = versions(s, Conf, pk)
        assert [(v.number, v.changeset.user) for v in hist] == [(3, "bob"), (2, "alice"),
                                                                 (1, "setup")]
        assert map_at(s, Conf, pk, 2) == {"k": 1, "a": "A"}


def test_concurrent_writers_of_one_key_last_wins_history_keeps_both(
    maker: Maker, backend: str
) -> None:
    pk = create(maker, {"k": 1})

    def mine(c: Conf) -> None:
        c.data["k"] = 2

    def theirs(c: Conf, s: Session) -> None:
        c.data["k"] = 3

    assert _race(maker, backend, pk, mine, theirs) == []
    assert stored(maker, pk) == {"k": 3}
    with maker() as s:
        got = [(h.value, h.version, h.changeset.user) for h in key_history(s, Conf, pk, "k")]
        assert got == [(1, 1, "setup"), (2, 2, "alice"), (3, 3, "bob")]


def test_concurrent_map_only_edit_with_expect_version_is_refused(
    maker: Maker, backend: str
) -> None:
    """The row lock is taken before the guard runs, so both racers cannot pass it."""
    pk = create(maker, {"k": 1})

    def mine(c: Conf) -> None:
        c.data["k"] = 2

    def theirs(c: Conf, s: Session) -> None:
        expect_version(s, c, 1)
        c.data["j"] = 3

    errors = _race(maker, backend, pk, mine, theirs)
    assert len(errors) == 1 and isinstance(errors[0], StaleVersionError)
    assert stored(maker, pk) == {"k": 2}


def test_map_and_column_writers_interleave(maker: Maker, backend: str) -> None:
    pk = create(maker, {"k": 1})

    def mine(c: Conf) -> None:
        c.name = "renamed"

    def theirs(c: Conf, s: Session) -> None:
        c.data["k"] = 2

    assert _race(maker, backend, pk, mine, theirs) == []
    with maker() as s:
        hist = versions(s, Conf, pk)
        assert [v.changed for v in hist[:2]] == [("data",), ("name",)]
        assert hist[0].state["name"] == "renamed" and map_at(s, Conf, pk, 3) == {"k": 2}


# --------------------------------------------------------------------------- rollback


def test_rollback_shows_the_database_again(maker: Maker) -> None:
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        c.data["k"] = 9
        c.data["x"] = 1
        a.rollback()
        assert c.data == {"k": 1}
        c.data["k"] = 8
        a.flush()
        a.rollback()
        assert c.data == {"k": 1}
    assert stored(maker, pk) == {"k": 1}


def test_an_edit_after_a_rolled_back_flush_is_saved(maker: Maker) -> None:
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        c.data["k"] = 5
        a.flush()  # written, then undone
        a.rollback()
        c.data["k"] = 5  # the same edit again: a change from what the database has
        a.commit()
        assert [v.number for v in versions(a, Conf, pk)] == [2, 1]
    assert stored(maker, pk) == {"k": 5}


def test_a_rolled_back_savepoint_restores_the_map(maker: Maker) -> None:
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        c.data["j"] = 1
        a.flush()
        nested = a.begin_nested()
        c.data["k"] = 5
        a.flush()
        nested.rollback()
        assert c.data == {"k": 1, "j": 1}  # as the outer transaction has it
        c.data["k"] = 5
        a.commit()
    assert stored(maker, pk) == {"k": 5, "j": 1}


def test_a_new_record_rolled_back_and_added_again_keeps_its_map(maker: Maker) -> None:
    with session_of(maker, "alice") as a:
        c = Conf(data={"k": 1})
        a.add(c)
        a.flush()
        a.rollback()
        a.add(c)
        a.commit()
        assert stored(maker, c.id) == {"k": 1}


# ------------------------------------------------------------- expire, refresh, history


def test_expiring_another_attribute_keeps_pending_map_changes(maker: Maker) -> None:
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        with a.no_autoflush:  # refresh() would flush the change first
            c.data["k"] = 2
            a.expire(c, ["name"])
            a.refresh(c, ["name"])
            assert c.data == {"k": 2} and c.name == "main"
            a.expire(c, ["data"])  # like a column: the pending change goes with it
            assert c.data == {"k": 1}
        c.data["k"] = 3
        a.commit()
    assert stored(maker, pk) == {"k": 3}


def test_a_map_held_past_its_expiry_refuses_changes(maker: Maker) -> None:
    """Its record reads a fresh map now: a change to the old one would vanish silently."""
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        held = c.data
        a.commit()
        with pytest.raises(VersioningError, match="expired"):
            held["k"] = 2
        with pytest.raises(VersioningError):
            held.pop("k")
        assert held == {"k": 1}  # still readable, as an old column value would be
        c.data["k"] = 2
        a.commit()
    assert stored(maker, pk) == {"k": 2}


def test_the_map_is_a_mapper_attribute_with_history(maker: Maker) -> None:
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        assert attributes.get_history(c, "data").unchanged == ()  # not loaded yet
        assert c.data == {"k": 1}
        assert attributes.get_history(c, "data").unchanged == [{"k": 1}]
        c.data["k"] = 2
        hist = attributes.get_history(c, "data")
        assert (hist.added, hist.deleted) == ([{"k": 2}], [{"k": 1}])
        assert a.is_modified(c) and "data" in Conf.__mapper__.attrs


def test_a_detached_record_refuses_to_load_its_map(maker: Maker) -> None:
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        a.commit()  # expired
    with pytest.raises(DetachedInstanceError):
        c.data  # noqa: B018 - the read is the test


# ----------------------------------------------------------- merge, pickle, restore


@pytest.mark.parametrize("copy", ["detached", "pickled"])
def test_merge_of_a_detached_copy_writes_only_its_changes(maker: Maker, copy: str) -> None:
    pk = create(maker, {"k": 1, "gone": 0})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None and c.data == {"k": 1, "gone": 0}
    # The session is closed, not committed: c keeps its loaded map, detached.
    c.data["j"] = "mine"
    del c.data["gone"]
    if copy == "pickled":
        c = pickle.loads(pickle.dumps(c))
    commit_elsewhere(maker, pk, set_key("k", 2))
    with session_of(maker, "alice") as s:
        merged = s.merge(c)
        assert merged.data == {"k": 2, "j": "mine"}
        s.commit()
    assert stored(maker, pk) == {"k": 2, "j": "mine"}


def test_merge_without_load_and_of_a_new_record(maker: Maker) -> None:
    pk = create(maker, {"k": 1})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None and c.data == {"k": 1}
    with session_of(maker, "alice") as s:
        quiet = s.merge(c, load=False)
        assert quiet.data == {"k": 1} and not s.is_modified(quiet)
        fresh = s.merge(Conf(data={"n": 1}))
        s.commit()
        assert stored(maker, fresh.id) == {"n": 1}


def test_delete_and_restore_keep_the_map(maker: Maker) -> None:
    pk = create(maker, {"k": 1, "j": [1, 2]})
    with session_of(maker, "alice") as a:
        c = a.get(Conf, pk)
        assert c is not None
        a.delete(c)
        a.commit()
        back = restore(a, Conf, pk)
        assert back.data == {"k": 1, "j": [1, 2]}  # pending, yet it shows what it will keep
        a.commit()
        assert back.data == {"k": 1, "j": [1, 2]}
        back.data["x"] = 1
        a.commit()
        hist = versions(a, Conf, pk)
        assert [v.operation.value for v in hist] == ["update", "insert", "delete", "insert"]
        assert map_at(a, Conf, pk, 3) == {"k": 1, "j": [1, 2]}
    assert stored(maker, pk) == {"k": 1, "j": [1, 2], "x": 1}
    with maker() as s:  # restoring wrote no value rows: the old ones are shared
        assert len(key_history(s, Conf, pk, "k")) == 1
