"""Hypothesis: hostile form posts and query strings against the demo admin.

Never a 5xx; invalid input is a 4xx or a form error that keeps the input; a refused request
leaves every live, version and changeset table as it was; fields that are not on the form
(primary key, version numbers, bookkeeping) never change anything. Bounded: EXAMPLES per
endpoint, SQLite file, Flask test client (CSRF is covered in test_security.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from load_support import check_invariants
from markupsafe import escape

EXAMPLES = int(os.environ.get("VERSIONED_ADMIN_FUZZ_EXAMPLES", "60"))
TRIED: dict[str, int] = {}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
TABLES = (
    "article",
    "article_version",
    "author",
    "author_version",
    "price_quote",
    "versioned_admin_changeset",
    "category",
    "category_version",
)

# -- value strategies ----------------------------------------------------------------------

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)
special = st.sampled_from(
    [
        "",
        " ",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e309",
        "-0",
        "0x10",
        "1_000",
        "٣",
        "１２",
        "0000-01-01",
        "9999-12-31",
        "10000-01-01",
        "2024-02-30",
        "-1",
        "2147483648",
        "99999999999999999999",
        "true",
        "false",
        "y",
        "None",
        "null",
        "[]",
        "{}",
        '{"a": NaN}',
        "\x00",
        "\r\n",
        "\u202e",
        "😀" * 50,
        "'; DROP TABLE article; --",
        "<b>x</b>",
        "x" * 70_000,
        "draft",
        "published",
        "archived",
        "1",
        "2",
        "3",
        "12",
    ]
)
value = st.one_of(special, text, st.integers().map(str), st.floats().map(str), st.dates().map(str))
EXTRA_FIELDS = [
    "id",
    "version",
    "version_id",
    "is_current_version",
    "changeset_id",
    "operation",
    "reverted_from",
    "author_id",
    "category_id",
    "sku",
    "metadata",
    "meta",
    "seen_version",
    "_method",
    "password_hash",
]


def form_values(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """Some of ``names`` (fields may be missing) with hostile values, plus extra fields."""
    return st.fixed_dictionaries(
        {},
        optional={n: value for n in names} | {n: value for n in EXTRA_FIELDS},
    )


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The seeded demo app on a SQLite file, CSRF off."""
    from app import create_app, db

    path = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.db"
    application = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "f",
        }
    )
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    """Logged in as the demo admin."""
    c = app.test_client()
    assert c.post("/login", data={"username": "admin", "password": "admin"}).status_code == 302
    return c


def counts(app: Flask) -> dict[str, int]:
    """Row counts of the live, version and changeset tables."""
    from app import db

    with app.app_context():
        try:
            return {
                t: db.session.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in TABLES
            }
        finally:
            db.session.remove()


def _tried(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


def _base_version(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="base_version" type="hidden" value="([^"]*)"', page)
    assert match, path
    return match.group(1)


def _kept(page: str, data: dict[str, str], names: list[str]) -> None:
    """A re-shown form keeps what was typed (for plain single-line values)."""
    for name in names:
        v = data.get(name)
        if v and v.isprintable() and v == v.strip() and len(v) < 200:
            assert str(escape(v)) in page, f"{name}={v!r} not kept in the re-shown form"


def _post(
    app: Flask,
    client: FlaskClient,
    endpoint: str,
    path: str,
    data: dict[str, str],
    names: list[str],
    ok_delta: dict[str, int] | None,
) -> int:
    """POST, then check the outcome against the tables."""
    before = counts(app)
    r = client.post(path, data=data)
    _tried(endpoint)
    after = counts(app)
    body = r.get_data(as_text=True)
    assert r.status_code < 500, (endpoint, r.status_code, body[:500])
    if r.status_code in (301, 302, 303):
        if ok_delta is not None:
            changed = {t: after[t] - before[t] for t in TABLES if after[t] != before[t]}
            assert changed in ({}, ok_delta), (endpoint, changed)
        return r.status_code
    assert 400 <= r.status_code < 500, (endpoint, r.status_code)
    assert after == before, f"{endpoint}: a refused request ({r.status_code}) changed the tables"
    if r.status_code == 422:
        _kept(body, data, [n for n in names if n in TYPED])
    return r.status_code


# free-text inputs, whose typed value must come back (selects and checkboxes cannot)
TYPED = {
    "title",
    "slug",
    "body",
    "col_meta",
    "change_reason",
    "sku",
    "product",
    "price",
    "currency",
    "notes",
    "name",
    "email",
    "bio",
    "rating",
    "published_on",
    "valid_until",
}
ARTICLE = [
    "title",
    "slug",
    "author",
    "category",
    "status",
    "published_on",
    "rating",
    "is_featured",
    "body",
    "col_meta",
    "change_reason",
    "base_version",
    "save",
]
QUOTE = ["sku", "product", "price", "currency", "valid_until", "notes", "change_reason"]
AUTHOR = ["name", "email", "bio", "change_reason", "base_version"]


@FUZZ
@given(data=form_values(ARTICLE))
def test_fuzz_create_article(app: Flask, client: FlaskClient, data: dict[str, str]) -> None:
    """Create with hostile values: saved exactly once, or refused with nothing written."""
    delta = {"article": 1, "article_version": 1, "versioned_admin_changeset": 1}
    _post(app, client, "create article", "/admin/article/new", data, ARTICLE, delta)


@FUZZ
@given(data=form_values(ARTICLE), fresh=st.booleans())
def test_fuzz_edit_article(
    app: Flask, client: FlaskClient, data: dict[str, str], fresh: bool
) -> None:
    """Edit with hostile values (and stale or forged base versions)."""
    path = "/admin/article/5/edit"
    if fresh:
        data = {**data, "base_version": _base_version(client, path)}
    delta = {"article_version": 1, "versioned_admin_changeset": 1}
    _post(app, client, "edit article", path, data, ARTICLE, delta)
    assert client.get(path).status_code == 200, "article 5 must still be there under its id"


@FUZZ
@given(data=form_values(QUOTE))
def test_fuzz_create_quote(app: Flask, client: FlaskClient, data: dict[str, str]) -> None:
    """The rows strategy's create: one new row (the version itself) and a changeset."""
    delta = {"price_quote": 1, "versioned_admin_changeset": 1}
    _post(app, client, "create pricequote", "/admin/pricequote/new", data, QUOTE, delta)


@FUZZ
@given(data=form_values(AUTHOR), fresh=st.booleans())
def test_fuzz_edit_author(
    app: Flask, client: FlaskClient, data: dict[str, str], fresh: bool
) -> None:
    """Edit an author; posting id/version fields never moves the record."""
    path = "/admin/author/3/edit"
    if fresh:
        data = {**data, "base_version": _base_version(client, path)}
    delta = {"author_version": 1, "versioned_admin_changeset": 1}
    _post(app, client, "edit author", path, data, AUTHOR, delta)
    assert client.get(path).status_code == 200


@FUZZ
@given(number=value, data=form_values(["seen_version", "change_reason"]))
def test_fuzz_revert(app: Flask, client: FlaskClient, number: str, data: dict[str, str]) -> None:
    """Revert to a hostile version number with hostile form fields."""
    from urllib.parse import quote

    path = (
        f"/admin/article/2/revert/{quote(number, safe='')}"
        if number
        else "/admin/article/2/revert/x"
    )
    delta = {"article_version": 1, "versioned_admin_changeset": 1}
    _post(app, client, "revert", path, data, [], delta)


@FUZZ
@given(pk=value, data=form_values(["change_reason"]))
def test_fuzz_restore(app: Flask, client: FlaskClient, pk: str, data: dict[str, str]) -> None:
    """Restore a hostile primary key: 4xx, or the one deleted article restored once."""
    from urllib.parse import quote

    path = f"/admin/article/{quote(pk, safe='') or 'x'}/restore"
    delta = {"article": 1, "article_version": 1, "versioned_admin_changeset": 1}
    _post(app, client, "restore", path, data, [], delta)


# -- query strings -------------------------------------------------------------------------

PARAMS = [
    "page",
    "sort",
    "q",
    "f_status",
    "f_is_featured",
    "f_author",
    "f_category",
    "f_currency",
    "from",
    "to",
    "model",
    "user",
    "date_from",
    "date_to",
    "before",
    "after",
    "since",
    "until",
    "per_page",
    "size",
]
query = st.dictionaries(st.sampled_from(PARAMS), value, max_size=6)
GETS = {
    "list": "/admin/article/",
    "search": "/admin/author/",
    "filter": "/admin/pricequote/",
    "timeline": "/admin/article/2/history",
    "diff": "/admin/article/2/diff",
    "activity": "/admin/activity",
    "deleted": "/admin/article/deleted",
}


@pytest.mark.parametrize("endpoint", list(GETS))
def test_fuzz_query_strings(app: Flask, client: FlaskClient, endpoint: str) -> None:
    """Hostile query strings: 200 or 4xx, never 5xx, never a change."""
    before = counts(app)

    @FUZZ
    @given(params=query)
    def run(params: dict[str, Any]) -> None:
        r = client.get(GETS[endpoint], query_string=params)
        _tried(endpoint)
        assert r.status_code < 500, (endpoint, params, r.get_data(as_text=True)[:300])
        assert r.status_code in (200, 400, 404, 422), (endpoint, params, r.status_code)

    run()
    assert counts(app) == before


extras = st.dictionaries(st.sampled_from(EXTRA_FIELDS), value, min_size=1, max_size=6)


@pytest.mark.parametrize(
    ("model", "pk", "field"), [("article", "6", "title"), ("pricequote", "ARCHIVE", "product")]
)
def test_fuzz_fields_not_on_the_form(
    app: Flask, client: FlaskClient, model: str, pk: str, field: str
) -> None:
    """A valid save with extra fields (pk, version numbers, bookkeeping): only the form's
    fields change; the record keeps its key and gets exactly the next version number."""
    from load_support import form_with

    from app import Article, PriceQuote, db
    from versioned_admin.versioning import latest_version

    cls = Article if model == "article" else PriceQuote
    key = (int(pk),) if model == "article" else (pk,)
    path = f"/admin/{model}/{pk}/edit"
    seq = iter(range(10**6))

    @FUZZ
    @given(extra=extras)
    def run(extra: dict[str, str]) -> None:
        form = form_with(client.get(path).get_data(as_text=True), "base_version")
        assert form is not None
        with app.app_context():
            before = latest_version(db.session, cls, key).number  # type: ignore[union-attr]
            db.session.remove()
        rows = counts(app)
        data = {**extra, **form["fields"], field: f"fuzzed {next(seq)}"}
        r = client.post(path, data=data)
        _tried(f"extra fields {model}")
        assert r.status_code == 302, (extra, r.status_code, r.get_data(as_text=True)[:300])
        with app.app_context():
            latest = latest_version(db.session, cls, key)
            assert latest is not None and latest.number == before + 1, extra
            assert latest.reverted_from is None
            db.session.remove()
        after = counts(app)
        live = "article" if model == "article" else "price_quote"
        assert after["article"] == rows["article"]
        if model == "article":
            assert (
                after[live] == rows[live]
                and after["article_version"] == rows["article_version"] + 1
            )
        else:
            assert after[live] == rows[live] + 1  # the rows strategy: one new row

    run()


def test_fuzz_history_still_consistent(app: Flask) -> None:
    """After all of the above: version numbers 1..n, changesets complete, live = latest."""
    figures = check_invariants(app.config["SQLALCHEMY_DATABASE_URI"])
    print("FUZZ examples per endpoint:", dict(sorted(TRIED.items())), figures)
