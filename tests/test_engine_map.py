"""Map strategy: shared values, old versions readable, per-key history, typed values."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_models import row_count, versioned_sessions
from sqlalchemy import Engine, String
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
