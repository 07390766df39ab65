"""Timeline, diff and activity pages: content, pagination, bad input, escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from admin_fixtures import Article, Author, Quote, db, seed, standard_app
from flask import Flask
from flask.testing import FlaskClient
from history_helpers import edit, edited_article, text

from versioned_admin.admin.history_support import relative_time


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The standard admin test app."""
    yield from standard_app(db_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client."""
    return app.test_client()


def test_timeline_lists_versions_newest_first(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    edited_article(app, art)
    body = text(client.get(f"/admin/article/{art}/history", headers={"X-User": "ann"}))
    found = [int(n) for n in re.findall(r'<tr id="v(\d+)"', body)]
    assert found == [4, 3, 2, 1]
    assert "created" in body and "edited" in body
    assert "Alpha two" in body and "Alpha three" in body  # previews old → new
    assert f'href="/admin/article/{art}/diff?from=3&amp;to=4"' in body
    assert f'href="/admin/article/{art}/diff?from=1&amp;to=current"' in body
    assert 'name="from"' in body and 'name="to"' in body  # the compare form
    assert "Who set each current value" in body  # blame


def test_timeline_is_linked_from_list_and_edit(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    link = f'href="/admin/article/{art}/history"'
    assert link in text(client.get("/admin/article/"))
    assert link in text(client.get(f"/admin/article/{art}/edit"))


def test_timeline_keyset_pagination(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    app.config["VERSIONED_ADMIN_HISTORY_PAGE_SIZE"] = 3
    for i in range(6):
        edit(app, Article, art, views=100 + i)
    first = text(client.get(f"/admin/article/{art}/history"))
    assert [int(n) for n in re.findall(r'<tr id="v(\d+)"', first)] == [7, 6, 5]
    assert "before=5" in first
    second = text(client.get(f"/admin/article/{art}/history?before=5"))
    assert [int(n) for n in re.findall(r'<tr id="v(\d+)"', second)] == [4, 3, 2]
    last = text(client.get(f"/admin/article/{art}/history?before=2"))
    assert [int(n) for n in re.findall(r'<tr id="v(\d+)"', last)] == [1]
    assert "Older versions" not in last


def test_timeline_shows_who_and_why(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    url = f"/admin/article/{art}/edit"
    from admin_fixtures import base_version, csrf_token

    page = text(client.get(url))
    data = {"csrf_token": csrf_token(client, url), "base_version": base_version(page),
            "title": "Renamed", "body": "first body", "status": "DRAFT", "kind": "",
            "published_on": "2024-01-02", "updated_at": "", "rating": "1.5", "price": "",
            "views": "10", "is_featured": "y", "col_meta": "", "author": str(ids["ann"]),
            "category": str(ids["cat"]), "change_reason": "Better name"}
    assert client.post(url, data=data, headers={"X-User": "zoe"}).status_code == 302
    body = text(client.get(f"/admin/article/{art}/history"))
    assert "zoe" in body and "Better name" in body


def test_diff_two_columns_and_folds(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    long_body = "".join(f"line {i}\n" for i in range(400))
    edit(app, Article, art, body=long_body)
    edit(app, Article, art, body=long_body.replace("line 200\n", "line two hundred\n"),
         author_id=ids["bob"], meta={"a": 1, "tags": ["x"]})
    body = text(client.get(f"/admin/article/{art}/diff?from=2&to=3"))
    assert "<ins>two hundred</ins>" in body or "<ins>two</ins>" in body
    assert "<del>200</del>" in body
    assert "<details class=\"va-fold\">" in body or "va-fold-static" in body
    assert "line 5\n" not in body  # far from the change: folded away
    assert "Bob (#" in body and "Ann (#" in body  # relation by label
    assert "unchanged field" in body  # unchanged fields folded
    assert "<code>a</code>" in body and "<code>tags</code>" in body  # JSON by key
    # prev / next pair links
    assert "from=1&amp;to=2" in body


def test_diff_current_and_defaults(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    edited_article(app, art)
    assert client.get(f"/admin/article/{art}/diff?from=1&to=current").status_code == 200
    assert client.get(f"/admin/article/{art}/diff?from=current&to=1").status_code == 200
    default = text(client.get(f"/admin/article/{art}/diff"))
    assert "version 3 → 4" in default
    first = text(client.get(f"/admin/article/{art}/diff?to=1"))
    assert "before the first version" in first


@pytest.mark.parametrize(
    ("query", "status"),
    [("from=abc&to=2", 400), ("from=1&to=-3", 400), ("from=1.5", 400), ("from=99&to=1", 404),
     ("from=1&to=0", 400), ("from=1&to=99999999999999999999999", 400), ("to=%3Cscript%3E", 400)],
)
def test_diff_bad_versions(app: Flask, client: FlaskClient, query: str, status: int) -> None:
    ids = seed(app)
    response = client.get(f"/admin/article/{ids['articles'][0]}/diff?{query}")
    assert response.status_code == status
    assert "<script>" not in text(response)


@pytest.mark.parametrize(
    ("url", "status"),
    [("/admin/article/999/history", 404), ("/admin/article/abc/history", 400),
     ("/admin/note/1/history", 404), ("/admin/nothing/1/history", 404),
     ("/admin/article/1/history?before=x", 400), ("/admin/article/999/diff", 404)],
)
def test_history_bad_urls(app: Flask, client: FlaskClient, url: str, status: int) -> None:
    seed(app)
    assert client.get(url).status_code == status


def test_rows_strategy_history_and_diff(app: Flask, client: FlaskClient) -> None:
    from decimal import Decimal

    seed(app)
    with app.app_context():
        from versioned_admin.versioning import get_live

        quote = get_live(db.session, Quote, "SKU-1")
        quote.price = Decimal("12.50")
        db.session.commit()
    body = text(client.get("/admin/quote/SKU-1/history"))
    assert [int(n) for n in re.findall(r'<tr id="v(\d+)"', body)] == [2, 1]
    assert "12.50" in body
    diff = text(client.get("/admin/quote/SKU-1/diff?from=1&to=2"))
    assert "9.99" in diff and "12.50" in diff


def test_blame_names_the_version_that_set_each_field(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    edited_article(app, art)
    body = text(client.get(f"/admin/article/{art}/history"))
    blame = body[body.index('id="blame"'):]
    pattern = r'<th scope="row">([^<]+)</th>\s*<td><a href="[^"]*to=(\d+)"'
    rows = dict(re.findall(pattern, blame))
    assert rows["Title"] == "4" and rows["Body"] == "3" and rows["Views"] == "1"
    app.config["VERSIONED_ADMIN_HISTORY_PAGE_SIZE"] = 2  # blame looks further only on request
    short = text(client.get(f"/admin/article/{art}/history"))
    assert "before version 3" in short and "blame=all" in short
    deep = text(client.get(f"/admin/article/{art}/history?blame=all"))
    assert dict(re.findall(pattern, deep[deep.index('id="blame"'):]))["Views"] == "1"


def test_activity_lists_changesets_with_filters(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    edited_article(app, ids["articles"][0])
    body = text(client.get("/admin/activity"))
    assert "Alpha three" in body and "Ann" in body
    only_authors = text(client.get("/admin/activity?model=author"))
    assert "Alpha three" not in only_authors and "Ann" in only_authors
    assert "No changes match" in text(client.get("/admin/activity?user=nobody"))
    assert "No changes match" in text(client.get("/admin/activity?from=2000-01-01&to=2000-01-02"))
    assert client.get("/admin/activity?from=2000-01-01").status_code == 200


def test_activity_keyset_pages(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    app.config["VERSIONED_ADMIN_PAGE_SIZE"] = 2
    for i in range(4):
        edit(app, Author, ids["ann"], bio=f"bio {i}")
    first = text(client.get("/admin/activity"))
    match = re.search(r'before=(\d+)', first)
    assert match
    second = text(client.get(f"/admin/activity?before={match.group(1)}"))
    assert "bio" not in second or second != first


@pytest.mark.parametrize(
    "query", ["from=2024-13-01", "to=yesterday", "model=nothing", "before=x",
              "from=2024-05-02&to=2024-05-01"],
)
def test_activity_bad_filters_are_400(app: Flask, client: FlaskClient, query: str) -> None:
    seed(app)
    response = client.get(f"/admin/activity?{query}")
    assert response.status_code == 400
    assert "Bad request" in text(response)


def test_relative_time_words() -> None:
    import datetime as dt

    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    assert relative_time(now, now) == "just now"
    assert relative_time(now - dt.timedelta(minutes=5), now) == "5 minutes ago"
    assert relative_time(now - dt.timedelta(hours=1), now) == "1 hour ago"
    assert relative_time(now - dt.timedelta(days=3), now) == "3 days ago"


def test_viewer_time_zone_cookie(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    url = f"/admin/article/{ids['articles'][0]}/history"
    assert " UTC" in text(client.get(url))
    client.set_cookie("va_tz", "Asia/Tokyo")
    assert " JST" in text(client.get(url))
    client.set_cookie("va_tz", "../../etc/passwd")
    assert " UTC" in text(client.get(url))


EVIL = ['<script>alert(1)</script>', '" onmouseover="alert(1)', "javascript:alert(1)"]


def test_stored_markup_is_escaped_everywhere(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    evil = " ".join(EVIL)
    edit(app, Author, ids["ann"], name=evil[:40], bio=evil)
    edit(app, Article, art, title=evil, body=evil + "\n" + evil, meta={evil: evil})
    with app.app_context():
        from versioned_admin.versioning import set_reason

        obj = db.session.get(Article, art)
        obj.views = 99
        set_reason(db.session, evil)
        db.session.commit()
        db.session.delete(db.session.get(Article, ids["articles"][1]))
        db.session.commit()
    pages = [f"/admin/article/{art}/history", f"/admin/article/{art}/diff?from=1&to=3",
             f"/admin/article/{art}/diff?from=2&to=current", f"/admin/article/{art}/revert/1",
             "/admin/activity", "/admin/article/deleted", "/admin/",
             f"/admin/author/{ids['ann']}/history", f"/admin/author/{ids['ann']}/diff"]
    for url in pages:
        body = text(client.get(url))
        assert "<script>alert" not in body, url
        assert '" onmouseover="alert' not in body, url
        assert 'href="javascript:' not in body and "src=\"javascript:" not in body, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body or "&lt;script&gt;" in body or (
            url.endswith("deleted")), url
