"""expect_version: a write based on version N fails cleanly if the record moved past N."""

from __future__ import annotations

import threading

import pytest
from engine_models import versioned_sessions
from sqlalchemy import Engine, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from versioned_admin.versioning import (
    CHANGESET_TABLE,
    StaleVersionError,
    Versioned,
    VersionedRows,
    expect_version,
    get_live,
    latest_version,
    versions,
)


class Base(DeclarativeBase):
    pass


class Doc(Versioned, Base):
    __tablename__ = "guard_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(String(50), default="")


class Quote(VersionedRows, Base):
    __tablename__ = "guard_quote"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    price: Mapped[str] = mapped_column(String(20))


def _changesets(engine: Engine) -> int:
    table = Base.metadata.tables[CHANGESET_TABLE]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.mark.parametrize("model", [Doc, Quote], ids=["shadow", "rows"])
def test_stale_expectation_refuses_the_flush(engine: Engine, model: type) -> None:
    Base.metadata.create_all(engine)
    field = "title" if model is Doc else "price"
    with versioned_sessions(engine) as mk:
        with mk() as s:
            s.add(model(id=1, **{field: "a"}))
            s.commit()
            obj = get_live(s, model, 1)
            setattr(obj, field, "b")
            s.commit()  # version 2
        before = _changesets(engine)
        with mk() as s:
            obj = get_live(s, model, 1)
            setattr(obj, field, "c")
            expect_version(s, obj, 1)  # the writer read version 1: stale
            with pytest.raises(StaleVersionError) as err:
                s.commit()
            assert err.value.records == [(model, (1,), 1, 2)]
            s.rollback()
        assert _changesets(engine) == before
        with mk() as s:
            assert [v.number for v in versions(s, model, 1)] == [2, 1]
            obj = get_live(s, model, 1)
            assert getattr(obj, field) == "b"
            setattr(obj, field, "c")
            expect_version(s, obj, 2)  # up to date: goes through
            s.commit()
            latest = latest_version(s, model, 1)
            assert latest is not None and latest.number == 3


def test_expectation_is_forgotten_after_the_flush(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        s.add(Doc(id=1, title="a"))
        s.commit()
        doc = s.get(Doc, 1)
        assert doc is not None
        doc.title = "b"
        expect_version(s, doc, 1)
        s.commit()
        doc.title = "c"  # no expectation any more
        s.commit()
        assert [v.number for v in versions(s, Doc, 1)] == [3, 2, 1]


def test_racing_writers_on_postgresql(pg_url: str) -> None:
    """Two writers read version 1 and save different columns: exactly one wins."""
    engine = create_engine(pg_url)
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        with mk() as s:
            s.add(Doc(id=1, title="a", body="x"))
            s.commit()
        first, second = mk(), mk()
        d1, d2 = first.get(Doc, 1), second.get(Doc, 1)
        assert d1 is not None and d2 is not None
        d1.title, d2.body = "A", "Y"
        expect_version(first, d1, 1)
        expect_version(second, d2, 1)
        first.flush()  # holds the row lock until it commits
        outcome: list[BaseException | None] = []

        def run_second() -> None:
            try:
                second.commit()
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - the assertion below inspects it
                outcome.append(exc)

        t = threading.Thread(target=run_second)
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the second writer should wait for the first one's row lock"
        first.commit()
        t.join(10)
        assert isinstance(outcome[0], StaleVersionError)
        second.rollback()
        first.close()
        second.close()
        with mk() as s:
            live = s.get(Doc, 1)
            latest = latest_version(s, Doc, 1)
            assert live is not None and latest is not None
            assert (latest.number, live.title, live.body) == (2, "A", "x")
            assert latest.state == {"id": 1, "title": "A", "body": "x"}
    engine.dispose()


def test_live_row_equals_latest_version_when_columns_merge(pg_url: str) -> None:
    """Without expectations, concurrent writers of different columns merge; the version too."""
    engine = create_engine(pg_url)
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        with mk() as s:
            s.add(Doc(id=1, title="a", body="x"))
            s.commit()
        first, second = mk(), mk()
        d1, d2 = first.get(Doc, 1), second.get(Doc, 1)
        assert d1 is not None and d2 is not None
        d1.title, d2.body = "A", "Y"
        first.commit()
        second.commit()
        first.close()
        second.close()
        with mk() as s:
            live = s.get(Doc, 1)
            latest = latest_version(s, Doc, 1)
            assert live is not None and latest is not None
            assert (live.title, live.body) == ("A", "Y")
            assert latest.state == {"id": 1, "title": "A", "body": "Y"}
    engine.dispose()
