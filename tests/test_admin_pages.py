"""The admin's read-only pages: index, list (sort, search, filters, pagination), errors, headers."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from tests.admin_fixtures import Article, Author, Quote, db, drop, make_app, seed, standard_app
from versioned_admin.admin.listing import ListPage, parse_list_args


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The standard admin test app on each database."""
    yield from standard_app(db_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the standard app."""
    return app.test_client()


def text(response: object) -> str:
    """The body of a test response as text."""
    return response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


# -- index ------------------------------------------------------------------------------------


def test_index_lists_models_with_counts_and_recent_changes(app: Flask, client: FlaskClient) -> None:
    seed(app)
    response = client.get("/admin/", headers={"X-User": "carol"})
    body = text(response)
    assert response.status_code == 200
    assert 'href="/admin/article/"' in body and "Articles" in body
    assert "<strong>3</strong> records" in body  # three articles
    assert "Recent changes" in body
    assert "insert" in body and "Alpha" in body


def test_index_count_is_capped(db_url: str) -> None:
    application = make_app(db_url)
    application.config["VERSIONED_ADMIN_COUNT_LIMIT"] = 2
    try:
        seed(application)
        body = text(application.test_client().get("/admin/"))
        assert "<strong>2+</strong> records" in body
    finally:
        drop(application)


def test_index_recent_changes_show_user_and_reason(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    with app.test_request_context(headers={"X-User": "dora"}):
        from versioned_admin import set_reason

        art = db.session.get(Article, ids["articles"][0])
        art.title = "Alpha 2"
        set_reason(db.session, "typo fix")
        db.session.commit()
    body = text(client.get("/admin/"))
    assert "dora" in body and "typo fix" in body and "Alpha 2" in body


# -- list -------------------------------------------------------------------------------------


def test_list_shows_rows_relation_labels_and_truncates(app: Flask, client: FlaskClient) -> None:
    seed(app)
    response = client.get("/admin/article/")
    body = text(response)
    assert response.status_code == 200
    assert "Alpha" in body and "Gamma_under" in body
    assert ">Ann<" in body and ">Bob<" in body  # author shown by its label, not its id
    assert "x" * 300 not in body and "x" * 60 + "…" in body
    assert 'class="va-badge va-badge-yes">Yes<' in body
    assert "3 records" in body


def test_list_default_sort_and_explicit_sort(app: Flask, client: FlaskClient) -> None:
    seed(app)
    body = text(client.get("/admin/article/"))  # default_sort="-id"
    assert body.index("Gamma_under") < body.index("Beta 100%") < body.index("Alpha")
    body = text(client.get("/admin/article/?sort=title"))
    assert body.index("Alpha") < body.index("Beta 100%") < body.index("Gamma_under")
    body = text(client.get("/admin/article/?sort=-rating"))
    assert 'aria-sort="descending"' in body
    body = text(client.get("/admin/article/?sort=author"))
    assert body.index("Alpha") < body.index("Beta 100%")  # by author_id: Ann then Bob


@pytest.mark.parametrize("sort", ["nope", "-id;drop table t_article", "price", "__class__", ""])
def test_list_unknown_sort_is_ignored_with_notice(
    app: Flask, client: FlaskClient, sort: str
) -> None:
    seed(app)
    response = client.get("/admin/article/", query_string={"sort": sort})
    assert response.status_code == 200
    body = text(response)
    if sort:
        assert "Cannot sort by" in body
    assert body.index("Gamma_under") < body.index("Alpha")  # the default order still applies


def test_list_search_escapes_like_wildcards(app: Flask, client: FlaskClient) -> None:
    seed(app)
    body = text(client.get("/admin/article/?q=alpha"))
    assert "Alpha" in body and "Beta 100%" not in body  # case-insensitive
    body = text(client.get("/admin/article/?q=100%25"))
    assert "Beta 100%" in body and "Alpha" not in body
    body = text(client.get("/admin/article/?q=%25"))  # a lone % matches only a literal %
    assert "Beta 100%" in body and "Alpha" not in body and "Gamma_under" not in body
    body = text(client.get("/admin/article/?q=_"))
    assert "Gamma_under" in body and "Alpha" not in body
    body = text(client.get("/admin/article/?q=first+body"))  # body is searched too
    assert "Alpha" in body and "Gamma_under" not in body
    body = text(client.get("/admin/article/?q=nothing-like-this"))
    assert "No articles match this search." in body


def test_list_search_strips_nul_and_caps_length(app: Flask, client: FlaskClient) -> None:
    seed(app)
    response = client.get("/admin/article/", query_string={"q": "Al\x00pha"})
    assert response.status_code == 200 and "Alpha" in text(response)
    response = client.get("/admin/article/", query_string={"q": "a" * 5000})
    assert response.status_code == 200
    assert "The search was cut" in text(response)


def test_list_filters_typed_values(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    body = text(client.get("/admin/article/?f_status=PUBLISHED"))
    assert "Beta 100%" in body and "Alpha" not in body
    body = text(client.get("/admin/article/?f_status=published"))  # by value too
    assert "Beta 100%" in body and "Alpha" not in body
    body = text(client.get("/admin/article/?f_is_featured=yes"))
    assert "Alpha" in body and "Beta 100%" not in body
    body = text(client.get(f"/admin/article/?f_author={ids['bob']}"))
    assert "Beta 100%" in body and "Alpha" not in body
    body = text(client.get("/admin/article/?f_views=30"))
    assert "Gamma_under" in body and "Alpha" not in body
    body = text(client.get("/admin/article/?f_published_on=2024-01-02"))
    assert "Alpha" in body and "Gamma_under" not in body
    body = text(client.get("/admin/article/?f_views=20&f_status=DRAFT"))
    assert "No articles match" in body
    # the filter bar keeps the chosen values
    body = text(client.get("/admin/article/?f_status=PUBLISHED"))
    assert '<option value="PUBLISHED" selected>' in body


@pytest.mark.parametrize(
    "query,notice",
    [
        ("f_views=abc", "is not a valid value for Views"),
        ("f_views=99999999999999999999999", "is not a valid value for Views"),
        ("f_status=weird", "is not a valid value for Status"),
        ("f_is_featured=maybe", "is not a valid value for Featured"),
        ("f_published_on=2024-13-45", "is not a valid value for Published on"),
        ("f_updated_at=yesterday", "is not a valid value for Updated at"),
        ("f_author=x", "is not a valid value for Author"),
        ("f_title=Alpha", "There is no filter 'title'"),
        ("f_nope=1", "There is no filter 'nope'"),
        ("page=abc", "Page 'abc' does not exist"),
        ("page=0", "Page '0' does not exist"),
        ("page=-3", "Page '-3' does not exist"),
        ("page=99999999999999999999", "does not exist"),
    ],
)
def test_list_bad_parameters_are_ignored_with_a_notice(
    app: Flask, client: FlaskClient, query: str, notice: str
) -> None:
    seed(app)
    response = client.get(f"/admin/article/?{query}")
    assert response.status_code == 200
    body = html.unescape(text(response))
    assert notice in body
    assert "Alpha" in body and "Beta 100%" in body  # the bad filter was not applied


def test_list_filter_on_datetime_by_day(app: Flask, client: FlaskClient) -> None:
    import datetime as dt

    ids = seed(app)
    with app.app_context():
        art = db.session.get(Article, ids["articles"][1])
        art.updated_at = dt.datetime(2024, 5, 6, 13, 30, tzinfo=dt.UTC)
        db.session.commit()
    body = text(client.get("/admin/article/?f_updated_at=2024-05-06"))
    assert "Beta 100%" in body and "Alpha" not in body
    body = text(client.get("/admin/article/?f_updated_at=2024-05-07"))
    assert "No articles match" in body


def test_list_pagination_with_capped_count(db_url: str) -> None:
    application = make_app(db_url)
    application.config.update(VERSIONED_ADMIN_PAGE_SIZE=5, VERSIONED_ADMIN_COUNT_LIMIT=12)
    try:
        seed(application)
        with application.app_context():
            author = db.session.scalars(sa.select(Author)).first()
            db.session.add_all(Article(title=f"Item {i:02d}", author=author) for i in range(20))
            db.session.commit()
        client = application.test_client()
        body = text(client.get("/admin/article/?sort=title"))
        assert "12+ records" in body and "counted up to 12" in body
        assert "Alpha" in body and "Item 01" in body and "Item 02" not in body
        assert 'rel="next"' in body and 'href="/admin/article/?sort=title&amp;page=2"' in body
        body = text(client.get("/admin/article/?sort=title&page=2"))
        assert "Item 02" in body and "Item 06" in body and "Item 07" not in body
        assert "Alpha" not in body and 'rel="prev"' in body
        body = text(client.get("/admin/article/?sort=title&page=5"))  # beyond the cap
        assert "Item 19" in body and "Next →</span>" in body  # the last page: no next link
        body = text(client.get("/admin/article/?page=40"))
        assert "Page 40 is past the end" in body and "Go to the first page" in body
    finally:
        drop(application)


def test_list_exact_count_when_limit_is_none(db_url: str) -> None:
    application = make_app(db_url)
    application.config["VERSIONED_ADMIN_COUNT_LIMIT"] = None
    try:
        seed(application)
        assert "3 records" in text(application.test_client().get("/admin/article/"))
    finally:
        drop(application)


def test_capped_count_uses_a_limited_subquery(app: Flask, client: FlaskClient) -> None:
    seed(app)
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement.lower())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        client.get("/admin/article/")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    counts = [s for s in statements if "count(" in s]
    assert counts and all("limit" in s for s in counts)


def test_rows_strategy_list_shows_only_live_rows(app: Flask, client: FlaskClient) -> None:
    seed(app)
    with app.app_context():
        quote = db.session.scalars(sa.select(Quote).where(Quote.is_current_version)).one()
        quote.price = Decimal("12.50")
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Quote)) == 2
    body = text(client.get("/admin/quote/"))
    assert "1 record" in body and "12.50" in body and "9.99" not in body
    assert body.count("SKU-1</a>") == 1
    assert "version_id" not in body.lower().replace(" ", "_")


def test_list_of_unversioned_model(app: Flask, client: FlaskClient) -> None:
    seed(app)
    response = client.get("/admin/note/")
    assert response.status_code == 200 and "plain note" in text(response)


def test_parse_list_args_units(app: Flask) -> None:
    view = app.extensions["test_admin"].views["article"]
    with app.app_context():
        req = parse_list_args(view, {"sort": "-title", "q": "  hi ", "f_status": "DRAFT"})
    assert (req.sort, req.descending, req.q) == ("title", True, "hi")
    assert req.args(page=2) == {"q": "hi", "sort": "-title", "f_status": "DRAFT", "page": 2}
    page = ListPage(rows=[], page=7, page_size=10, total=200, total_capped=False, has_next=True)
    assert page.page_numbers() == [1, None, 5, 6, 7, 8, 9, None, 20]


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,status,message",
    [
        ("/admin/nothing/", 404, "There is no model called"),
        ("/admin/nothing/new", 404, "There is no model called"),
        ("/admin/article/999999/edit", 404, "There is no article with id"),
        ("/admin/article/999999/delete", 404, "There is no article with id"),
        ("/admin/article/abc/edit", 400, "is not a valid article id"),
        ("/admin/article/1,2/edit", 400, "is not a valid article id"),
        ("/admin/article/99999999999999999999999/edit", 400, "is not a valid article id"),
        ("/admin/quote/NOPE/edit", 404, "There is no quote with id"),
        ("/admin/some/deep/unknown/path", 404, "There is no such page"),
    ],
)
def test_friendly_error_pages(
    app: Flask, client: FlaskClient, url: str, status: int, message: str
) -> None:
    seed(app)
    response = client.get(url)
    assert response.status_code == status
    body = text(response)
    assert message in body
    assert 'class="va-error-page"' in body and "/admin/static/admin.css" in body
    assert "Traceback" not in body


def test_unexpected_error_is_a_500_page_without_traceback(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    view = app.extensions["test_admin"].views["article"]
    seed(app)

    def broken(obj: object) -> str:
        raise ZeroDivisionError("boom")

    view._record_label = broken
    with caplog.at_level(logging.ERROR, logger="versioned_admin"):
        response = client.get("/admin/article/1/edit")
    assert response.status_code == 500
    assert "An unexpected error occurred" in text(response) and "boom" not in text(response)
    assert any("unexpected error" in r.message for r in caplog.records)


def test_database_down_is_a_503_page(app: Flask, client: FlaskClient) -> None:
    admin = app.extensions["test_admin"]
    real = admin.session

    def broken_session() -> object:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    admin.session = broken_session
    try:
        response = client.get("/admin/article/")
    finally:
        admin.session = real
    assert response.status_code == 503
    assert "The database is not available" in text(response)


def test_unreachable_database_gives_503(tmp_path: Path) -> None:
    application = make_app(f"sqlite:///{tmp_path / 'ok.db'}")
    with application.app_context():
        engine = db.engines[None]
        db.engines[None] = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        response = application.test_client().get("/admin/article/")
        assert response.status_code == 503
        assert "Database unavailable" in text(response)
    finally:
        with application.app_context():
            db.engines[None].dispose()
            db.engines[None] = engine
        drop(application)


def test_wrong_method_is_a_friendly_405(app: Flask, client: FlaskClient) -> None:
    response = client.post("/admin/article/")
    assert response.status_code == 405
    assert "va-error-page" in text(response) and "GET" in response.headers["Allow"]


# -- headers and static -----------------------------------------------------------------------


def test_security_headers_on_pages_and_errors(app: Flask, client: FlaskClient) -> None:
    for url in ["/admin/", "/admin/article/", "/admin/nothing/", "/admin/static/admin.css"]:
        response = client.get(url)
        response.close()
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "frame-ancestors 'self'" in csp
    assert client.get("/admin/").headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_style(app: Flask, client: FlaskClient) -> None:
    seed(app)
    for url in [
        "/admin/",
        "/admin/article/",
        "/admin/article/new",
        "/admin/article/1/edit",
        "/admin/article/1/delete",
        "/admin/nothing/",
    ]:
        body = text(client.get(url))
        assert "<script>" not in body and "style=" not in body and "<style" not in body
        assert "http://" not in body and "https://" not in body  # no CDN


def test_static_assets_are_served(app: Flask, client: FlaskClient) -> None:
    css = client.get("/admin/static/admin.css")
    assert css.status_code == 200 and "--va-accent" in text(css)
    js = client.get("/admin/static/admin.js")
    assert js.status_code == 200
    css.close()
    js.close()


def test_stored_markup_is_escaped_in_list_and_forms(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    evil = '<script>alert(1)</script>" onmouseover="x'
    with app.app_context():
        art = db.session.get(Article, ids["articles"][0])
        art.title = evil
        art.body = evil
        db.session.get(Author, ids["ann"]).name = "<b>Ann</b>"
        db.session.commit()
    for url in [
        "/admin/article/",
        f"/admin/article/{ids['articles'][0]}/edit",
        f"/admin/article/{ids['articles'][0]}/delete",
        "/admin/",
    ]:
        body = text(client.get(url))
        assert "<script>alert(1)" not in body and "<b>Ann</b>" not in body
        assert "&lt;script&gt;" in body or "&lt;b&gt;" in body


# -- extension points -------------------------------------------------------------------------


def test_more_pages_plug_into_the_blueprint_and_get_linked(db_url: str) -> None:
    from flask import Blueprint

    from versioned_admin import VersionedAdmin
    from versioned_admin.admin.views import add_crud_routes

    def add_history(bp: Blueprint) -> None:
        bp.add_url_rule("/<model>/<pk>/history", "history_view", lambda model, pk: f"h {pk}")
        bp.add_url_rule("/<model>/deleted", "deleted_view", lambda model: "deleted")
        bp.add_url_rule("/activity", "activity_view", lambda: "activity")

    class AdminWithHistory(VersionedAdmin):
        route_sets = (add_crud_routes, add_history)  # CRUD only, plus these stand-ins

    application = Flask(__name__)
    application.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=db_url,
                              VERSIONED_ADMIN_OPEN=True)
    db.init_app(application)
    admin = AdminWithHistory(db=db)
    admin.init_app(application)
    admin.register(Article, list_columns=["title"])  # after init_app: still works
    admin.register(Author)
    with application.app_context():
        db.create_all()
    try:
        seed(application)
        client = application.test_client()
        body = text(client.get("/admin/article/"))
        assert 'href="/admin/article/1/history"' in body
        assert 'href="/admin/article/deleted"' in body and 'href="/admin/activity"' in body
        assert 'href="/admin/article/1/history"' in text(client.get("/admin/article/1/edit"))
        assert text(client.get("/admin/article/1/history")) == "h 1"
        plain = text(client.get("/admin/author/"))
        assert "/history" not in plain or "/admin/author/1/history" in plain
    finally:
        drop(application)


def test_without_history_pages_there_are_no_history_links(db_url: str) -> None:
    from versioned_admin import VersionedAdmin
    from versioned_admin.admin.views import add_crud_routes

    class CrudOnly(VersionedAdmin):
        route_sets = (add_crud_routes,)

    application = Flask(__name__)
    application.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=db_url,
                              VERSIONED_ADMIN_OPEN=True)
    db.init_app(application)
    admin = CrudOnly(db=db)
    admin.init_app(application)
    admin.register(Article)
    admin.register(Author)
    with application.app_context():
        db.create_all()
    try:
        seed(application)
        client = application.test_client()
        for url in ["/admin/", "/admin/article/", "/admin/article/1/edit"]:
            body = text(client.get(url))
            assert "/history" not in body and "/deleted" not in body and "/activity" not in body
    finally:
        drop(application)


def test_get_requests_never_change_data(app: Flask, client: FlaskClient) -> None:
    seed(app)

    def changesets() -> int:
        with app.app_context():
            query = sa.text("SELECT count(*) FROM versioned_admin_changeset")
            return int(db.session.execute(query).scalar_one())

    before = changesets()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("versioned_admin.") and "GET" in (rule.methods or ()):
            url = rule.rule.replace("<model>", "article").replace("<pk>", "1")
            url = url.replace("<path:filename>", "admin.css").replace("<path:rest>", "x/y")
            response = client.get(url + "?title=changed&csrf_token=x")
            response.close()
            assert response.status_code < 500, url
    assert changesets() == before
    with app.app_context():
        assert db.session.get(Article, 1).title == "Alpha"


def test_list_column_may_be_a_plain_property(db_url: str) -> None:
    application = make_app(db_url, register=False)
    Author.shout = property(lambda self: self.name.upper())  # type: ignore[attr-defined]
    try:
        application.extensions["test_admin"].register(Author, list_columns=["name", "shout"])
        seed(application)
        client = application.test_client()
        body = text(client.get("/admin/author/"))
        assert ">ANN<" in body and "?sort=shout" not in body
        assert "Cannot sort by" in html.unescape(text(client.get("/admin/author/?sort=shout")))
    finally:
        del Author.shout  # type: ignore[attr-defined]
        drop(application)
