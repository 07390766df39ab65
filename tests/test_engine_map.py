"""Map strategy: shared values, old versions readable, per-key history, typed values."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from engine_models import row_count, versioned_sessions
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from versioned_admin.versioning import (
    Versioned,
    VersionedMap,
    key_history,
    latest_version,
    map_at,
    revert,
    versions,
)
from versioned_admin.versioning.maps import tracked, typed


class Base(DeclarativeBase):
    pass


class Config(Versioned, Base):
    __tablename__ = "mp_config"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), default="main")
    data = VersionedMap()


VALUES = Base.metadata.tables["mp_config_data_value"]
ENTRIES = Base.metadata.tables["mp_config_data_entry"]


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine, user=lambda: "alice") as mk:
        yield mk


def test_one_changed_key_of_fifty_inserts_one_value_row(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        c = Config(data={f"k{i}": i for i in range(50)})
        s.add(c)
        s.commit()
        assert row_count(s, VALUES) == 50
        c.data["k7"] = 700
        s.commit()
        assert row_count(s, VALUES) == 51  # not 100: 49 values are shared
        assert row_count(s, ENTRIES) == 100  # each version lists its 50 values
        assert [v.number for v in versions(s, Config, c.id)] == [2, 1]
        assert map_at(s, Config, c.id, 1)["k7"] == 7
        assert map_at(s, Config, c.id, 2)["k7"] == 700


def test_old_versions_stay_readable_and_columns_only_changes_keep_the_map(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        c = Config(data={"a": "x", "b": 2})
        s.add(c)
        s.commit()
        c.data = {"a": "y", "b": 2}
        s.commit()
        c.name = "renamed"  # a version without a map change still lists the map
        s.commit()
        assert map_at(s, Config, c.id, 1) == {"a": "x", "b": 2}
        assert map_at(s, Config, c.id, 2) == {"a": "y", "b": 2}
        assert map_at(s, Config, c.id, 3) == {"a": "y", "b": 2}
        assert latest_version(s, Config, c.id).changed == ("name",)  # type: ignore[union-attr]
        assert row_count(s, VALUES) == 3
    with maker() as s:  # a fresh session reads the stored map
        fresh = s.get(Config, c.id)
        assert fresh is not None and fresh.data == {"a": "y", "b": 2}


def test_key_history_with_changesets(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        c = Config(data={"user_name": "twitter", "x": 1})
        s.add(c)
        s.commit()
        c.data["user_name"] = "yahoo"
        s.commit()
        c.data["x"] = 2  # does not touch user_name's history
        s.commit()
        hist = key_history(s, Config, c.id, "user_name")
        assert [(h.value, h.version) for h in hist] == [("twitter", 1), ("yahoo", 2)]
        assert all(h.changeset.user == "alice" for h in hist)
        assert hist[0].changeset.issued_at <= hist[1].changeset.issued_at
        assert [h.value for h in key_history(s, Config, c.id, "x")] == [1, 2]


def test_delete_key_and_no_op(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        c = Config(data={"a": 1, "b": 2})
        s.add(c)
        s.commit()
        del c.data["b"]
        s.commit()
        assert map_at(s, Config, c.id, 2) == {"a": 1}
        assert map_at(s, Config, c.id, 1) == {"a": 1, "b": 2}
        hist = key_history(s, Config, c.id, "b")
        assert [(h.value, h.version, h.deleted) for h in hist] == [(2, 1, False), (None, 2, True)]
        c.data["a"] = 1  # same value: no version
        s.commit()
        assert len(versions(s, Config, c.id)) == 2


def test_typed_values_round_trip(maker: sessionmaker[Session]) -> None:
    data = {"s": "text", "i": 2**40, "f": 1.5, "t": True, "n": None, "j": {"a": [1, "b"]}}
    with maker() as s:
        c = Config(data=data)
        s.add(c)
        s.commit()
        c.data["t"] = 1  # a bool becoming an int is a change
        s.commit()
        got = map_at(s, Config, c.id, 1)
        assert got == data
        assert type(got["t"]) is bool and type(got["i"]) is int and type(got["f"]) is float
        assert type(map_at(s, Config, c.id, 2)["t"]) is int
        with pytest.raises(TypeError):
            c.data["bad"] = object()


def test_revert_and_delete_keep_the_map(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        c = Config(data={"a": 1})
        s.add(c)
        s.commit()
        c.data["a"] = 2
        s.commit()
        revert(s, c, 1)
        s.commit()
        assert map_at(s, Config, c.id, 3) == {"a": 1}
        assert row_count(s, VALUES) == 3  # reverting writes a new value row for "a"
        s.delete(c)
        s.commit()
        assert map_at(s, Config, c.id, 4) == {"a": 1}


def test_revert_of_a_deleted_record_takes_that_versions_map(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        c = Config(data={"a": 1, "b": "two"})
        s.add(c)
        s.commit()
        pk = c.id
        c.data = {"a": 2, "c": [1, 2]}
        s.commit()
        s.delete(c)
        s.commit()
        back = revert(s, Config, 1, pk=pk)
        s.commit()
        assert back.data == {"a": 1, "b": "two"}
        assert map_at(s, Config, pk, 4) == {"a": 1, "b": "two"}


# ----------------------------------------------- two sessions against a model (Hypothesis)

EXAMPLES = int(os.environ.get("VERSIONED_ADMIN_HYPOTHESIS_EXAMPLES", "25"))
KEYS = st.sampled_from(("k1", "k2", "k3"))
VALUES_ = (st.none() | st.booleans() | st.integers(0, 2) | st.sampled_from((0.5, 1.0))
           | st.text("xy", max_size=1) | st.lists(st.integers(0, 1), max_size=2))
SESSIONS = st.integers(0, 1)
Typed = dict[str, Any]


def _typed(data: dict[str, Any]) -> Typed:
    """A map as stored: 1, 1.0 and True differ (typed() keeps the kind)."""
    return {k: typed(v) for k, v in data.items()}


class _Sess:
    """One session, its instance of the record and what the model says of them."""

    def __init__(self, s: Session, obj: Config) -> None:
        self.s, self.obj = s, obj
        self.shown: dict[str, Any] | None = None  # what obj.data holds; None: reloads
        self.base: dict[str, Any] = {}  # what the session last read or wrote
        self.written: list[dict[str, Any]] = []  # versions of its open transaction

    def changed(self) -> bool:
        return self.shown is not None and _typed(self.shown) != _typed(self.base)


class TwoSessions(RuleBasedStateMachine):
    """Two sessions edit one record's map; commit, roll back, expire and refresh at will."""

    maker: sessionmaker[Session]
    runs: list[int]

    def __init__(self) -> None:
        super().__init__()
        self.committed: list[dict[str, Any]] = []  # the map of each committed version
        self.sessions: list[_Sess] = []
        self.steps = 0

    @initialize(data=st.dictionaries(KEYS, VALUES_, max_size=3))
    def create(self, data: dict[str, Any]) -> None:
        with self.maker.kw["bind"].begin() as conn:  # not through a versioned session
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        with self.maker() as s:
            c = Config(id=1, data=data)
            s.add(c)
            s.commit()
        self.committed = [dict(data)]
        for _ in range(2):
            s = self.maker()
            obj = s.get(Config, 1)
            assert obj is not None
            self.sessions.append(_Sess(s, obj))

    def teardown(self) -> None:
        for x in self.sessions:
            x.s.close()
        self.runs.append(self.steps)

    def visible(self, x: _Sess) -> dict[str, Any]:
        return x.written[-1] if x.written else self.committed[-1]

    def load(self, x: _Sess) -> dict[str, Any]:
        if x.shown is None:
            x.shown, x.base = dict(self.visible(x)), dict(self.visible(x))
        return x.shown

    def blocked(self, i: int) -> bool:
        """A write by session i would wait for the other one's lock (never asked for)."""
        return self.sessions[i].changed() and bool(self.sessions[1 - i].written)

    def write(self, x: _Sess) -> None:
        """Model of a flush: the keys changed since the last read, on top of the latest."""
        if not x.changed():
            return
        assert x.shown is not None
        shown, base = _typed(x.shown), _typed(x.base)
        new = {k: v for k, v in self.visible(x).items() if k not in base.keys() - shown.keys()}
        new.update({k: x.shown[k] for k in shown if base.get(k) != shown[k]})
        x.written.append(new)
        x.base = dict(x.shown)

    @rule(i=SESSIONS, key=KEYS, value=VALUES_)
    def set_key(self, i: int, key: str, value: Any) -> None:
        x = self.sessions[i]
        self.load(x)[key] = value
        x.obj.data[key] = value

    @rule(i=SESSIONS, key=KEYS)
    def delete_key(self, i: int, key: str) -> None:
        x = self.sessions[i]
        self.load(x).pop(key, None)
        x.obj.data.pop(key, None)

    @rule(i=SESSIONS)
    def flush(self, i: int) -> None:
        if not self.blocked(i):
            x = self.sessions[i]
            x.s.flush()
            self.write(x)

    @rule(i=SESSIONS)
    def commit(self, i: int) -> None:
        if not self.blocked(i):
            x = self.sessions[i]
            x.s.commit()
            self.write(x)
            self.committed += x.written
            x.written, x.shown = [], None

    @rule(i=SESSIONS)
    def rollback(self, i: int) -> None:
        x = self.sessions[i]
        x.s.rollback()
        x.written, x.shown = [], None

    @rule(i=SESSIONS, how=st.sampled_from(("expire_all", "refresh", "expire", "expire_data")))
    def expire(self, i: int, how: str) -> None:
        x = self.sessions[i]
        if how == "expire_all":
            x.s.expire_all()
        elif how == "refresh":
            x.s.refresh(x.obj)
        else:
            x.s.expire(x.obj, ["data"] if how == "expire_data" else None)
        x.shown = None

    @rule(i=SESSIONS)
    def read(self, i: int) -> None:
        x = self.sessions[i]
        assert _typed(dict(x.obj.data)) == _typed(self.load(x))

    @invariant()
    def stored_history_is_the_model(self) -> None:
        if not self.sessions:
            return
        self.steps += 1
        with Session(self.maker.kw["bind"]) as s:  # outside both sessions' transactions
            numbers = [v.number for v in versions(s, Config, 1)]
            assert numbers == list(range(len(self.committed), 0, -1))
            for n, want in enumerate(self.committed, 1):
                assert _typed(map_at(s, Config, 1, n)) == _typed(want), f"version {n}"
        for x in self.sessions:
            found = tracked(x.obj, "data")
            assert (found is None) == (x.shown is None) or x.shown is None
            if found is not None and x.shown is not None:
                assert _typed(dict(found)) == _typed(x.shown)


def test_two_sessions_against_a_model(db_url: str) -> None:
    args: dict[str, Any] = ({"connect_args": {"timeout": 2}} if db_url.startswith("sqlite")
                            else {"connect_args": {"options": "-c lock_timeout=5000"}})
    eng = create_engine(db_url, **args)  # a write that would wait fails instead of hanging
    Base.metadata.create_all(eng)
    runs: list[int] = []
    try:
        with versioned_sessions(eng, user=lambda: "alice", autoflush=False) as mk:
            TwoSessions.maker, TwoSessions.runs = mk, runs
            run_state_machine_as_test(TwoSessions, settings=settings(
                max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow]))
    finally:
        eng.dispose()
    print(f"{len(runs)} examples, {sum(runs)} steps")
    assert len(runs) >= min(EXAMPLES, 10)


def test_delete_and_add_again_in_one_flush_keeps_each_versions_map(
    maker: sessionmaker[Session],
) -> None:
    with maker() as s:
        s.add(Config(id=7, data={"a": 1}))
        s.commit()
        s.delete(s.get(Config, 7))
        s.add(Config(id=7, data={"b": 2}))
        s.commit()
        assert [v.operation.value for v in versions(s, Config, 7)] == ["insert", "delete", "insert"]
        assert map_at(s, Config, 7, 2) == {"a": 1}  # the delete keeps the map it had
        assert map_at(s, Config, 7, 3) == {"b": 2}
