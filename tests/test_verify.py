"""verify: a clean history passes; each invariant broken by hand is reported, record by record."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from click.testing import Result
from engine_models import count_statements, version_table, versioned_sessions
from flask import Flask
from inheritance_models import HIERARCHIES
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    select,
    text,
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

from tests.admin_fixtures import Author, db, seed, standard_app
from versioned_admin import VersionedAdmin
from versioned_admin.versioning import (
    CHANGESET_TABLE,
    Invariant,
    Versioned,
    VersionedMap,
    VersionedRows,
    iter_problems,
    last_verification,
    restore,
    revert,
    verify_history,
)
from versioned_admin.versioning.verify_scan import numbering


class Base(DeclarativeBase):
    pass


article_tag = Table(
    "vf_article_tag",
    Base.metadata,
    Column("article_id", ForeignKey("vf_article.id"), primary_key=True),
    Column("tag_id", ForeignKey("vf_tag.id"), primary_key=True),
)


class Tag(Base):
    __tablename__ = "vf_tag"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class Article(Versioned, Base):
    __tablename__ = "vf_article"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    rating: Mapped[float | None] = mapped_column(Float)
    stamp: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    tags: Mapped[list[Tag]] = relationship(secondary=article_tag)


class Pair(Versioned, Base):
    __tablename__ = "vf_pair"
    a: Mapped[str] = mapped_column(String(10), primary_key=True)
    b: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str | None] = mapped_column(String(50))


class Quote(VersionedRows, Base):
    __tablename__ = "vf_quote"
    sku: Mapped[str] = mapped_column(String(20), primary_key=True)
    price: Mapped[int] = mapped_column(Integer)


class Line(Base):
    """Unversioned lines of an offer, recorded in the offer's rows."""

    __tablename__ = "vf_line"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int | None] = mapped_column(Integer, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Offer(VersionedRows, Base):
    """Rows strategy with a collection: its lists live in vf_offer_collections."""

    __tablename__ = "vf_offer"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(50))
    lines: Mapped[list[Line]] = relationship(
        primaryjoin=lambda: Offer.id == foreign(Line.offer_id), order_by=lambda: Line.position)


class Settings(Versioned, Base):
    __tablename__ = "vf_settings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20), default="main")
    data = VersionedMap()


MODELS = [Article, Offer, Pair, Quote, Settings]


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine, user=lambda: "alice") as mk:
        yield mk
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS versioned_admin_verification"))


def build(maker: sessionmaker[Session]) -> dict[str, Any]:
    """A history with every kind of change: edits, deletes, restore, revert, lists, maps."""
    with maker() as s:
        red, blue = Tag(name="red"), Tag(name="blue")
        plus_two = dt.timezone(dt.timedelta(hours=2))
        arts = [Article(title=f"A{i}", body="b" * i, price=Decimal("1.5"), rating=0.1,
                        stamp=dt.datetime(2024, 1, 1, 12, tzinfo=plus_two))
                for i in range(5)]
        arts[0].tags = [red, blue]
        s.add_all([*arts, Pair(a="x", b=1, value="one"), Quote(sku="Q1", price=10),
                   Quote(sku="Q2", price=20), Settings(data={"a": 1, "b": "two"}),
                   Offer(id=1, title="offer", lines=[Line(position=1), Line(position=2)])])
        s.commit()
        arts[0].title = "A0 edited"
        arts[0].tags = [red]
        arts[1].title = "A1 edited"
        s.commit()
        arts[1].body = "third"
        s.delete(arts[2])
        s.commit()
        restore(s, Article, arts[2].id)
        s.commit()
        s.delete(arts[3])
        q1 = s.get(Quote, ("Q1", 1))
        assert q1 is not None
        q1.price = 11
        settings = s.scalars(select(Settings)).one()
        settings.data["a"] = 2
        del settings.data["b"]
        s.commit()
        revert(s, arts[1], 1)
        settings.data["c"] = [1, 2]
        q2 = s.get(Quote, ("Q2", 1))
        assert q2 is not None
        s.delete(q2)
        offer = s.scalars(select(Offer).where(Offer.is_current_version.is_(True))).one()
        offer.lines.append(Line(position=3))
        s.commit()
        return {"ids": [a.id for a in arts], "settings": settings.id}


def invariants(report: Any) -> set[tuple[str, tuple[Any, ...], Invariant]]:
    return {(p.model, p.pk, p.invariant) for p in report.problems}


def run(maker: sessionmaker[Session], **kw: Any) -> Any:
    with maker() as s:
        report = verify_history(s, MODELS, **kw)
        s.commit()
        return report


def sql(maker: sessionmaker[Session], statement: str, **params: Any) -> None:
    with maker() as s:
        s.connection().execute(text(statement), params)
        s.commit()


def test_a_clean_history_verifies_ok_and_the_run_is_recorded(
    maker: sessionmaker[Session],
) -> None:
    build(maker)
    with maker() as s:
        assert last_verification(s) is None  # no table yet
    report = run(maker, changesets=True)
    assert report.problems == [] and report.ok
    assert report.records == 5 + 1 + 1 + 2 + 1
    assert report.versions > report.records
    assert report.models == ("Article", "Offer", "Pair", "Quote", "Settings")
    with maker() as s:
        last = last_verification(s)
    assert last is not None and last.id == report.run_id and last.ok
    assert (last.records, last.versions, last.problems) == (report.records, report.versions, 0)
    assert last.finished_at >= last.started_at


def test_a_live_row_edited_behind_the_engine(maker: sessionmaker[Session]) -> None:
    ids = build(maker)["ids"]
    sql(maker, "UPDATE vf_article SET title = 'sneaky', price = 1.5 WHERE id = :id", id=ids[4])
    report = run(maker)
    assert invariants(report) == {("Article", (ids[4],), Invariant.LIVE_DIFFERS)}
    (problem,) = report.problems
    assert "title: live 'sneaky', version 1 'A4'" in problem.detail
    assert "price" not in problem.detail  # 1.50 is the 1.5 stored: same value
    assert not report.ok and report.failures == 1
    with maker() as s:
        last = last_verification(s)
    assert last is not None and not last.ok and last.problems == 1


def test_a_gap_and_a_renumbered_version(maker: sessionmaker[Session]) -> None:
    ids = build(maker)["ids"]
    sql(maker, "DELETE FROM vf_article_version WHERE id = :id AND version = 2", id=ids[1])
    sql(maker, "UPDATE vf_article_version SET version = 7 WHERE id = :id AND version = 3",
        id=ids[2])
    sql(maker, "UPDATE vf_pair_version SET version = 0")
    problems = {(p.pk, p.detail) for p in run(maker).problems
                if p.invariant is Invariant.NUMBERING}
    assert problems == {
        ((ids[1],), "version 3 follows version 1: 2 missing"),
        ((ids[2],), "version 7 follows version 2: 3 to 6 missing"),
        (("x", 1), "the first version is 0, not 1"),
    }


def test_numbering_reports_a_version_stored_twice() -> None:
    problem = numbering("Article", (1,), 3, 3)
    assert problem is not None and problem.detail == "version 3 is stored twice"
    assert numbering("Article", (1,), None, 1) is None
    assert numbering("Article", (1,), 1, 2) is None


def test_live_rows_missing_or_back_from_the_dead(maker: sessionmaker[Session]) -> None:
    ids = build(maker)["ids"]
    sql(maker, "DELETE FROM vf_article WHERE id = :id", id=ids[4])
    sql(maker, "INSERT INTO vf_article (id, title) VALUES (:id, 'zombie')", id=ids[3])
    sql(maker, "DELETE FROM vf_pair")
    assert invariants(run(maker)) == {
        ("Article", (ids[4],), Invariant.MISSING_LIVE),
        ("Article", (ids[3],), Invariant.DELETED_BUT_LIVE),
        ("Pair", ("x", 1), Invariant.MISSING_LIVE),
    }


def test_a_version_pointing_at_a_missing_changeset(
    maker: sessionmaker[Session], backend: str
) -> None:
    ids = build(maker)["ids"]
    if backend == "postgresql":
        sql(maker, "ALTER TABLE vf_article_version "
                   "DROP CONSTRAINT fk_vf_article_version_changeset")
    # SQLite: SQLAlchemy leaves foreign keys off, so the row takes any number.
    sql(maker, "UPDATE vf_article_version SET changeset_id = 99999 "
               "WHERE id = :id AND version = 1", id=ids[4])
    report = run(maker)
    assert invariants(report) == {("Article", (ids[4],), Invariant.MISSING_CHANGESET)}
    assert "version 1 points at changeset 99999" in report.problems[0].detail


def test_an_orphan_changeset(maker: sessionmaker[Session]) -> None:
    build(maker)
    with maker() as s:
        cs = Base.metadata.tables[CHANGESET_TABLE]
        cs_id = s.connection().execute(
            cs.insert().values(issued_at=dt.datetime.now(dt.UTC))).inserted_primary_key[0]
        s.commit()
    report = run(maker, changesets=True)
    assert invariants(report) == {("changeset", (cs_id,), Invariant.ORPHAN_CHANGESET)}
    assert run(maker).ok  # naming models checks them, not the changesets
    with maker() as s:
        everything = list(iter_problems(s, metadata=Base.metadata))
    assert [p.invariant for p in everything] == [Invariant.ORPHAN_CHANGESET]


def test_rows_strategy_current_rows(maker: sessionmaker[Session]) -> None:
    build(maker)
    with maker() as s:
        s.add(Quote(sku="Q3", price=1))
        s.commit()
        q3 = s.get(Quote, ("Q3", 1))
        assert q3 is not None
        q3.price = 2
        s.commit()
    sql(maker, "UPDATE vf_quote SET is_current_version = true WHERE sku = 'Q1'")
    sql(maker, "UPDATE vf_quote SET is_current_version = true WHERE sku = 'Q2' AND version_id = 1")
    sql(maker, "UPDATE vf_quote SET is_current_version = (version_id = 1) WHERE sku = 'Q3'")
    details = {p.pk: p.detail for p in run(maker).problems}
    assert details == {p.pk: p.detail for p in run(maker, batch_size=1).problems}
    assert details == {
        ("Q1",): "versions 1, 2 are all current",
        ("Q2",): "version 2 is a delete, yet version 1 is current",
        ("Q3",): "version 1 is current, not the latest, 2",
    }
    sql(maker, "UPDATE vf_quote SET is_current_version = false")
    report = run(maker)
    assert {(p.pk, p.detail) for p in report.problems} == {
        (("Q1",), "no row is current (the latest is version 2)"),
        (("Q3",), "no row is current (the latest is version 2)"),
    }
    assert {p.invariant for p in report.problems} == {Invariant.CURRENT_ROW}


def test_rows_strategy_gap_and_missing_changeset(
    maker: sessionmaker[Session], backend: str
) -> None:
    build(maker)
    if backend == "postgresql":
        sql(maker, "ALTER TABLE vf_quote DROP CONSTRAINT vf_quote_changeset_id_fkey")
    sql(maker, "UPDATE vf_quote SET version_id = 5 WHERE sku = 'Q1' AND version_id = 2")
    sql(maker, "UPDATE vf_quote SET changeset_id = 99999 WHERE sku = 'Q2' AND version_id = 1")
    assert invariants(run(maker)) == {
        ("Quote", ("Q1",), Invariant.NUMBERING),
        ("Quote", ("Q2",), Invariant.MISSING_CHANGESET),
    }


def test_unversioned_rows_are_a_warning_unless_strict(maker: sessionmaker[Session]) -> None:
    build(maker)
    sql(maker, "INSERT INTO vf_article (id, title) VALUES (1000, 'legacy')")
    sql(maker, "INSERT INTO vf_quote (sku, price, version_id, is_current_version, operation) "
               "VALUES ('OLD', 1, 1, true, 'insert')")
    report = run(maker)
    assert invariants(report) == {("Article", (1000,), Invariant.UNVERSIONED),
                                  ("Quote", ("OLD",), Invariant.UNVERSIONED)}
    assert report.ok and report.warnings == 2 and report.failures == 0
    strict = run(maker, strict=True)
    assert not strict.ok and strict.failures == 2
    with maker() as s:
        last = last_verification(s)
    assert last is not None and not last.ok and last.strict and last.problems == 2


def test_schema_drift_is_a_warning(maker: sessionmaker[Session]) -> None:
    ids = build(maker)["ids"]
    vt = version_table(Article)
    with maker() as s:  # a version written before 'rating' existed and with a column since gone
        state = s.execute(select(vt.c.state).where(vt.c.id == ids[4])).scalar_one()
        state = {k: v for k, v in state.items() if k != "rating"} | {"old": 1}
        s.execute(update(vt).where(vt.c.id == ids[4]).values(state=state))
        s.commit()
    report = run(maker)
    assert invariants(report) == {("Article", (ids[4],), Invariant.SCHEMA_DRIFT)}
    assert report.problems[0].detail == (
        "version 1 has no rating; version 1 has old, which the table no longer has")
    assert report.ok


def test_a_collection_changed_behind_the_engine(maker: sessionmaker[Session]) -> None:
    ids = build(maker)["ids"]
    sql(maker, "DELETE FROM vf_article_tag")
    report = run(maker)
    assert invariants(report) == {("Article", (ids[0],), Invariant.LIVE_DIFFERS)}
    assert report.problems[0].detail == "tags: live [], version 3 [1]"


def test_rows_strategy_collections(maker: sessionmaker[Session]) -> None:
    build(maker)
    assert run(maker).ok
    sql(maker, "DELETE FROM vf_offer_collections WHERE version_id = 1")
    sql(maker, "UPDATE vf_line SET position = 0 WHERE position = 3")
    report = run(maker, batch_size=1)
    assert {(p.invariant, p.detail) for p in report.problems} == {
        (Invariant.COLLECTIONS_ROW, "version 1 has no row in vf_offer_collections"),
        (Invariant.LIVE_DIFFERS, "lines: live [3, 1, 2], version 2 [1, 2, 3]"),
    }
    assert {p.pk for p in report.problems} == {(1,)}


def test_map_entries_lost_or_added(maker: sessionmaker[Session]) -> None:
    settings = build(maker)["settings"]
    with maker() as s:
        assert run(maker).ok
        entries = Base.metadata.tables["vf_settings_data_entry"]
        values = Base.metadata.tables["vf_settings_data_value"]
        stray = s.execute(select(values.c.value_id).where(
            values.c.key == "b", values.c.kind == "str")).scalar_one()
        s.execute(entries.delete().where(entries.c.version == 1, entries.c.value_id == stray))
        s.execute(entries.insert().values(parent_id=settings, version=3, value_id=stray))
        s.commit()
    details = [p.detail for p in run(maker, batch_size=1).problems
               if p.invariant is Invariant.MAP_ENTRIES]
    assert details == [
        "map 'data', version 1: missing keys: 'b'",
        "map 'data', version 3: keys it never set: 'b'",
    ]


def test_batches_of_two_see_the_same_as_one_batch(
    maker: sessionmaker[Session], engine: Engine
) -> None:
    ids = build(maker)["ids"]
    with maker() as s:
        articles = [Article(title=f"more {i}") for i in range(7)]
        s.add_all(articles)
        s.commit()
        for a in articles[::2]:
            a.title += " again"
        s.commit()
        more = [a.id for a in articles]
    sql(maker, "UPDATE vf_article SET title = 'x' WHERE id IN (:a, :b)", a=ids[0], b=more[-1])
    sql(maker, "DELETE FROM vf_article_version WHERE id = :id AND version = 1", id=more[2])
    with count_statements(engine) as seen:
        small = run(maker, batch_size=2)
    large = run(maker)
    assert sorted(small.problems, key=str) == sorted(large.problems, key=str)
    assert (small.records, small.versions) == (large.records, large.versions)
    assert invariants(small) == {
        ("Article", (ids[0],), Invariant.LIVE_DIFFERS),
        ("Article", (more[-1],), Invariant.LIVE_DIFFERS),
        ("Article", (more[2],), Invariant.NUMBERING),
    }
    scans = [q for q in seen if "FROM vf_article_version" in q and "ORDER BY" in q]
    assert len(scans) >= large.versions // 2
    assert all("LIMIT" in q for q in scans)


def test_keep_and_on_problem(maker: sessionmaker[Session]) -> None:
    build(maker)
    sql(maker, "UPDATE vf_article SET title = 'x'")
    seen: list[Any] = []
    report = run(maker, keep=2, on_problem=seen.append, record=False)
    assert len(report.problems) == 2 and len(seen) == report.counts[Invariant.LIVE_DIFFERS] == 4
    with maker() as s:
        assert last_verification(s) is None


def test_bad_arguments(maker: sessionmaker[Session]) -> None:
    with maker() as s, pytest.raises(ValueError):
        verify_history(s, MODELS, batch_size=0)
    with maker() as s, pytest.raises(Exception, match="not versioned"):
        verify_history(s, [Tag])


# ------------------------------------------------------------------ the CLI and the index page


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    yield from standard_app(db_url)


def verify_cli(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["versioned-admin", "verify", *args])


def admin_sql(app: Flask, statement: str) -> None:
    with app.app_context():
        db.session.execute(text(statement))
        db.session.commit()


def test_cli_verifies_ok_then_reports_a_corrupted_record(app: Flask) -> None:
    ids = seed(app)
    result = verify_cli(app)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Verified 7 records (7 versions) of 4 models in ")
    assert result.output.rstrip().endswith(": OK.")
    admin_sql(app, f"UPDATE t_article SET title = 'x' WHERE id = {ids['articles'][1]}")
    admin_sql(app, "UPDATE t_quote SET is_current_version = false")
    result = verify_cli(app, "--batch-size", "1")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:2] == [
        f"Article {ids['articles'][1]}: live_differs: title: live 'x', version 1 'Beta 100%'",
        "Quote 'SKU-1': current_row: no row is current (the latest is version 1)",
    ]
    assert lines[2].endswith(": 2 problems (current_row 1, live_differs 1).")


def test_cli_names_models_by_slug_or_class_name(app: Flask) -> None:
    seed(app)
    admin_sql(app, "UPDATE t_quote SET is_current_version = false")
    assert verify_cli(app, "article", "Author").exit_code == 0
    result = verify_cli(app, "QUOTE")
    assert result.exit_code == 1 and "of 1 model in" in result.output
    result = verify_cli(app, "article", "nope", "note")
    assert result.exit_code == 2
    assert "no versioned model called nope, note" in result.output


def test_cli_warnings_fail_only_with_strict(app: Flask) -> None:
    seed(app)
    admin_sql(app, "INSERT INTO t_category (id, name) VALUES (99, 'legacy')")
    result = verify_cli(app)
    assert result.exit_code == 0
    assert "OK; 1 warning (unversioned 1); --show-warnings lists them." in result.output
    assert "Category 99" not in result.output
    shown = verify_cli(app, "--show-warnings")
    assert shown.exit_code == 0
    assert "Category 99: warning unversioned: no version in t_category_version" in shown.output
    strict = verify_cli(app, "--strict")
    assert strict.exit_code == 1
    assert "Category 99: warning unversioned" in strict.output
    assert "1 problem (unversioned 1)." in strict.output


def test_index_page_shows_the_last_verification(app: Flask) -> None:
    seed(app)
    client = app.test_client()
    html = client.get("/admin/").get_data(as_text=True)
    assert "History never verified — run <code>flask versioned-admin verify</code>" in html
    assert verify_cli(app).exit_code == 0
    html = client.get("/admin/").get_data(as_text=True)
    assert re.search(r"History last verified <time datetime=\"[^\"]+\">[\d: -]+ UTC</time> "
                     r"\(7 records, OK\)", html)
    admin_sql(app, "UPDATE t_author SET name = '<b>x</b>'")
    assert verify_cli(app).exit_code == 1
    html = client.get("/admin/").get_data(as_text=True)
    assert "(7 records, 2 problems)" in html


def test_a_second_admin_adds_no_second_command_group(app: Flask) -> None:
    seed(app)
    second = VersionedAdmin(db=db, endpoint="second", url_prefix="/second")
    second.register(Author)
    second.init_app(app)
    assert list(app.cli.commands).count("versioned-admin") == 1
    result = verify_cli(app)
    assert result.exit_code == 0
    assert "[versioned_admin] Verified 7 records" in result.output
    assert "[second]" not in result.output  # its one model was verified already


# ------------------------------------------------------------------------------ inheritance


@pytest.mark.parametrize("kind", ["single", "joined"])
def test_a_hierarchy_is_verified_through_its_base(engine: Engine, kind: str) -> None:
    h = HIERARCHIES[kind]
    h.metadata.create_all(engine)
    try:
        with versioned_sessions(engine) as mk:
            with mk() as s:
                people = [h.Employee(name="E"), h.Engineer(name="G", primary_language="py"),
                          h.Manager(name="M", level=2)]
                s.add_all(people)
                s.commit()
                people[1].primary_language = "rust"
                people[2].name = "M2"
                s.commit()
                ids = [p.id for p in people]
            with mk() as s:
                report = verify_history(s, [h.Engineer], record=False)
                assert report.ok and report.problems == []
                assert report.models == (h.Employee.__name__,) and report.records == 3
                conn = s.connection()  # behind the engine's back: no ORM execute events
                conn.execute(update(h.engineer_table).where(h.engineer_table.c.id == ids[1])
                             .values(primary_language="cobol"))
                conn.execute(update(h.base_table).where(h.base_table.c.id == ids[2])
                             .values(name="boss"))
                found = {(p.pk, p.detail) for p in
                         iter_problems(s, metadata=h.metadata, changesets=True)}
            assert found == {
                ((ids[1],), "primary_language: live 'cobol', version 2 'rust'"),
                ((ids[2],), "name: live 'boss', version 2 'M2'"),
            }
    finally:
        h.metadata.drop_all(engine)
