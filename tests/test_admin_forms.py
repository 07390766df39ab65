"""Create, edit and delete through the admin's generated forms, with every kind of bad input."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.admin_fixtures import (
    Article,
    Author,
    Category,
    Note,
    Quote,
    Status,
    base_version,
    csrf_token,
    db,
    seed,
    standard_app,
)
from versioned_admin import latest_version, versions


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The standard admin test app on each database."""
    yield from standard_app(db_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the standard app."""
    return app.test_client()


def text(response: Any) -> str:
    """The body of a response, HTML entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def article_form(client: FlaskClient, url: str, **changes: Any) -> dict[str, Any]:
    """A valid article form for ``url`` (create or edit), with some fields changed."""
    page = client.get(url).get_data(as_text=True)
    data: dict[str, Any] = {
        "csrf_token": csrf_token(client, url),
        "title": "Fresh",
        "body": "Some body",
        "status": "DRAFT",
        "kind": "",
        "published_on": "",
        "updated_at": "",
        "rating": "",
        "price": "",
        "views": "0",
        "col_meta": "",
        "author": "1",
        "category": "",
        "change_reason": "",
    }
    if 'name="base_version"' in page:
        data["base_version"] = base_version(page)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def count(app: Flask, model: type) -> int:
    """Rows of a model (all rows, even old versions of the rows strategy)."""
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def history(app: Flask, model: type, pk: Any) -> list[Any]:
    """The versions of a record, newest first."""
    with app.app_context():
        return versions(db.session, model, pk)


# -- create -----------------------------------------------------------------------------------


def test_create_form_has_a_field_for_every_column_type(app: Flask, client: FlaskClient) -> None:
    seed(app)
    body = client.get("/admin/article/new").get_data(as_text=True)
    assert 'name="csrf_token"' in body
    assert '<input class="va-input" id="title" maxlength="100"' in body
    assert '<textarea class="va-input" id="body"' in body
    assert '<select class="va-input" id="status"' in body and 'value="PUBLISHED"' in body
    assert 'type="date"' in body and 'type="datetime-local"' in body
    assert 'id="is_featured" name="is_featured" type="checkbox"' in body
    assert '<textarea class="va-input" id="col_meta"' in body  # "meta" is the form's own
    assert '<select class="va-input" id="author"' in body and ">Ann</option>" in body
    assert 'name="id"' not in body  # autoincrement primary key
    assert 'name="author_id"' not in body  # replaced by the relation
    assert 'name="base_version"' not in body  # only on edit
    assert "Reason for change" in body


def test_create_saves_every_type_and_redirects(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    data = article_form(
        client,
        "/admin/article/new",
        title="Typed",
        status="PUBLISHED",
        kind="opinion",
        published_on="2024-02-29",
        updated_at="2024-03-01T10:20:30",
        rating="4.25",
        price="19.90",
        views="7",
        is_featured="y",
        col_meta='{"tags": ["a", "b"], "n": 1}',
        author=str(ids["bob"]),
        category=str(ids["cat"]),
        change_reason="first draft",
    )
    response = client.post("/admin/article/new", data=data, headers={"X-User": "erin"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/article/")
    assert "Added Typed." in text(client.get("/admin/article/"))
    with app.app_context():
        art = db.session.scalars(sa.select(Article).where(Article.title == "Typed")).one()
        assert art.status is Status.PUBLISHED and art.kind == "opinion"
        assert art.published_on == dt.date(2024, 2, 29)
        assert art.updated_at is not None
        assert art.updated_at.replace(tzinfo=dt.UTC) == dt.datetime(2024, 3, 1, 10, 20, 30,
                                                                    tzinfo=dt.UTC)
        assert art.rating == 4.25 and art.price == Decimal("19.90") and art.views == 7
        assert art.is_featured is True and art.meta == {"tags": ["a", "b"], "n": 1}
        assert art.author_id == ids["bob"] and art.category_id == ids["cat"]
        (version,) = versions(db.session, Article, art.id)
        assert version.changeset.user == "erin" and version.changeset.reason == "first draft"


def test_create_uses_column_defaults_and_optional_fields(app: Flask, client: FlaskClient) -> None:
    seed(app)
    data = article_form(client, "/admin/article/new", views="", status=None, body="")
    response = client.post("/admin/article/new", data=data)
    assert response.status_code == 302
    with app.app_context():
        art = db.session.scalars(sa.select(Article).where(Article.title == "Fresh")).one()
        assert art.views == 0 and art.status is Status.DRAFT  # column defaults
        assert art.body is None and art.meta is None and art.category_id is None


def test_save_buttons_choose_where_to_go(app: Flask, client: FlaskClient) -> None:
    seed(app)
    data = article_form(client, "/admin/article/new", save="continue")
    response = client.post("/admin/article/new", data=data)
    assert "/admin/article/" in response.headers["Location"]
    assert response.headers["Location"].endswith("/edit")
    data = article_form(client, "/admin/article/new", title="Other", save="another")
    response = client.post("/admin/article/new", data=data)
    assert response.headers["Location"].endswith("/admin/article/new")


@pytest.mark.parametrize(
    "changes,field,message",
    [
        ({"title": ""}, "title", "This field is required."),
        ({"title": "   "}, "title", "This field is required."),
        ({"title": "x" * 101}, "title", "Field cannot be longer than 100 characters."),
        ({"title": "bad\x00nul"}, "title", "NUL character"),
        ({"status": "LOST"}, "status", "Not a valid choice"),
        ({"kind": "satire"}, "kind", "Not a valid choice"),
        ({"published_on": "2024-02-30"}, "published_on", "Not a valid date value"),
        ({"published_on": "0000-01-01"}, "published_on", "Not a valid date value"),
        ({"updated_at": "tomorrow"}, "updated_at", "Not a valid datetime value"),
        ({"rating": "abc"}, "rating", "Not a valid float value"),
        ({"rating": "nan"}, "rating", "Enter a finite number."),
        ({"rating": "inf"}, "rating", "Enter a finite number."),
        ({"price": "1.234"}, "price", "at most 2 digits after the decimal point"),
        ({"price": "1234567"}, "price", "This number is too large."),
        ({"price": "NaN"}, "price", "Enter a finite number."),
        ({"price": "x"}, "price", "Not a valid decimal value"),
        ({"views": "1.5"}, "views", "Not a valid integer value"),
        ({"views": "99999999999"}, "views", "Enter a number between"),
        ({"views": ""}, "views", None),  # has a default: allowed on create
        ({"col_meta": "{not json"}, "col_meta", "This is not valid JSON"),
        ({"col_meta": "NaN"}, "col_meta", "This is not valid JSON"),
        ({"author": ""}, "author", "This field is required."),
        ({"author": "999999"}, "author", "There is no such record."),
        ({"author": "abc"}, "author", "Not a valid"),
        ({"category": "424242"}, "category", "There is no such record."),
        ({"change_reason": "r" * 501}, "change_reason", "Field cannot be longer than 500"),
    ],
)
def test_invalid_create_is_rejected_with_message_and_input_kept(
    app: Flask, client: FlaskClient, changes: dict[str, str], field: str, message: str | None
) -> None:
    seed(app)
    before = count(app, Article)
    data = article_form(client, "/admin/article/new", title="Kept title", body="Kept body")
    data.update(changes)
    response = client.post("/admin/article/new", data=data)
    if message is None:
        assert response.status_code == 302
        return
    assert response.status_code == 422
    body = text(response)
    assert message in body
    assert f'id="{field}-error"' in body and 'aria-invalid="true"' in body
    assert "Please correct the errors below." in body
    assert "Kept body" in body  # what the user typed is still there
    if field != "title":
        assert 'value="Kept title"' in body
    assert count(app, Article) == before


def test_invalid_json_keeps_the_raw_text(app: Flask, client: FlaskClient) -> None:
    seed(app)
    data = article_form(client, "/admin/article/new", col_meta='{"a": 1,,}')
    body = text(client.post("/admin/article/new", data=data))
    assert '{"a": 1,,}' in body


def test_unique_column_is_checked_with_a_message(app: Flask, client: FlaskClient) -> None:
    seed(app)
    url = "/admin/author/new"
    data = {"csrf_token": csrf_token(client, url), "name": "Ann 2", "email": "ann@example.com",
            "bio": ""}
    response = client.post(url, data=data)
    assert response.status_code == 422
    body = text(response)
    assert "Another record already has this Email." in body and 'value="Ann 2"' in body
    assert count(app, Author) == 2
    # every message at once: the unique check runs even when another field is wrong
    data.update(csrf_token=csrf_token(client, url), name="")
    body = text(client.post(url, data=data))
    assert "Another record already has this Email." in body and "This field is required." in body
    # editing a record keeps its own value without a false alarm
    edit = "/admin/author/1/edit"
    page = client.get(edit).get_data(as_text=True)
    data = {"csrf_token": csrf_token(client, edit), "name": "Ann B", "email": "ann@example.com",
            "bio": "", "base_version": base_version(page)}
    assert client.post(edit, data=data).status_code == 302


def test_integrity_error_at_commit_is_shown_and_rolled_back(
    app: Flask, client: FlaskClient
) -> None:
    seed(app)
    view = app.extensions["test_admin"].views["category"]
    url = "/admin/category/new"
    data = {"csrf_token": csrf_token(client, url), "name": "Science"}
    # hide the unique check so the database itself refuses the duplicate
    import versioned_admin.admin.forms as forms

    original = forms._is_unique
    forms._is_unique = lambda column: False  # type: ignore[assignment]
    try:
        response = client.post(url, data=data)
    finally:
        forms._is_unique = original  # type: ignore[assignment]
    assert response.status_code == 422
    assert "The database refused this change" in text(response)
    assert 'value="Science"' in text(response)
    assert count(app, Category) == 1
    with app.app_context():
        assert view.model is Category
        changesets = db.session.execute(sa.text("SELECT count(*) FROM versioned_admin_changeset"))
        before_cs = changesets.scalar()
    # the next valid save works (the session was rolled back)
    data = {"csrf_token": csrf_token(client, url), "name": "Arts"}
    assert client.post(url, data=data).status_code == 302
    with app.app_context():
        after_cs = db.session.execute(
            sa.text("SELECT count(*) FROM versioned_admin_changeset")
        ).scalar()
    assert after_cs == before_cs + 1


def test_missing_or_wrong_csrf_token_is_refused(app: Flask, client: FlaskClient) -> None:
    seed(app)
    data = article_form(client, "/admin/article/new")
    del data["csrf_token"]
    response = client.post("/admin/article/new", data=data)
    assert response.status_code == 400
    body = text(response)
    assert "security token" in body and 'value="Fresh"' in body
    data["csrf_token"] = "forged"
    assert client.post("/admin/article/new", data=data).status_code == 400
    assert count(app, Article) == 3


def test_create_rows_strategy_record(app: Flask, client: FlaskClient) -> None:
    seed(app)
    url = "/admin/quote/new"
    body = client.get(url).get_data(as_text=True)
    names = set(re.findall(r'name="([^"]+)"', body)) - {"viewport"}
    assert names == {"csrf_token", "sku", "product", "price", "change_reason", "save"}
    data = {"csrf_token": csrf_token(client, url), "sku": "SKU-2", "product": "Gadget",
            "price": "3.50"}
    assert client.post(url, data=data).status_code == 302
    assert "Gadget" in text(client.get("/admin/quote/"))


def test_create_unversioned_model_has_no_reason_field(app: Flask, client: FlaskClient) -> None:
    url = "/admin/note/new"
    body = client.get(url).get_data(as_text=True)
    assert "Reason for change" not in body
    response = client.post(url, data={"csrf_token": csrf_token(client, url), "text": "hello"})
    assert response.status_code == 302
    assert count(app, Note) == 1


# -- edit -------------------------------------------------------------------------------------


def test_edit_form_is_filled_and_carries_the_base_version(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    body = client.get(f"/admin/article/{art_id}/edit").get_data(as_text=True)
    assert 'value="Alpha"' in body and "\nfirst body</textarea>" in body
    assert 'value="2024-01-02"' in body
    assert '<option selected value="1">Ann</option>' in body or (
        '<option value="1" selected>Ann</option>' in body
    )
    assert base_version(body) == "1"
    assert 'id="is_featured" name="is_featured" type="checkbox" value="y"' in body
    assert "checked" in body


def test_edit_saves_a_new_version_with_reason_and_user(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    url = f"/admin/article/{art_id}/edit"
    data = article_form(client, url, title="Alpha v2", col_meta='{"k": "v"}',
                        change_reason="retitle")
    response = client.post(url, data=data, headers={"X-User": "fay"})
    assert response.status_code == 302
    assert "Saved Alpha v2." in text(client.get("/admin/article/"))
    newest = history(app, Article, art_id)[0]
    assert newest.number == 2 and newest.changeset.reason == "retitle"
    assert newest.changeset.user == "fay" and "title" in newest.changed
    assert base_version(client.get(url).get_data(as_text=True)) == "2"
    # JSON is shown pretty-printed
    assert '{\n  "k": "v"\n}' in text(client.get(url))


def test_edit_without_changes_writes_no_version(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    url = f"/admin/article/{art_id}/edit"
    page = client.get(url).get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(client, url), "base_version": base_version(page),
        "title": "Alpha", "body": "first body", "status": "DRAFT", "kind": "",
        "published_on": "2024-01-02", "updated_at": "", "rating": "1.5", "price": "",
        "views": "10", "is_featured": "y", "col_meta": "", "author": str(ids["ann"]),
        "category": str(ids["cat"]),
    }
    response = client.post(url, data=data)
    assert response.status_code == 302
    assert "Nothing changed" in text(client.get("/admin/article/"))
    assert len(history(app, Article, art_id)) == 1


def test_browser_line_breaks_are_not_a_change(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    with app.app_context():
        db.session.get(Article, art_id).body = "line one\nline two"
        db.session.commit()
    url = f"/admin/article/{art_id}/edit"
    data = article_form(client, url, title="Alpha", body="line one\r\nline two",
                        published_on="2024-01-02", rating="1.5", views="10", is_featured="y",
                        category=str(ids["cat"]))
    assert client.post(url, data=data).status_code == 302
    assert "Nothing changed" in text(client.get("/admin/article/"))
    data = article_form(client, url, title="Alpha", body="line one\r\nline 2",
                        published_on="2024-01-02", rating="1.5", views="10", is_featured="y",
                        category=str(ids["cat"]))
    assert client.post(url, data=data).status_code == 302
    newest = history(app, Article, art_id)[0]
    assert newest.changed == ("body",) and newest.state["body"] == "line one\nline 2"


def test_edit_with_stale_base_version_is_a_conflict(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    url = f"/admin/article/{art_id}/edit"
    data = article_form(client, url, title="Mine")
    with app.app_context():  # someone else saves in between
        art = db.session.get(Article, art_id)
        art.title = "Theirs"
        db.session.commit()
    response = client.post(url, data=data)
    assert response.status_code == 409
    body = text(response)
    assert "Someone else saved this record after you opened it" in body
    assert 'value="Mine"' in body  # the user's input is kept
    assert base_version(body) == "2"  # saving again now replaces theirs knowingly
    with app.app_context():
        assert db.session.get(Article, art_id).title == "Theirs"
    data["base_version"] = "2"
    data["csrf_token"] = csrf_token(client, url)
    assert client.post(url, data=data).status_code == 302
    with app.app_context():
        assert db.session.get(Article, art_id).title == "Mine"


@pytest.mark.parametrize("stale", ["", "abc", "0", "999", " 1", None])
def test_edit_with_bad_base_version_changes_nothing(
    app: Flask, client: FlaskClient, stale: str | None
) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    url = f"/admin/article/{art_id}/edit"
    data = article_form(client, url, title="Mine")
    if stale is None:
        del data["base_version"]  # a POST without the field is not "up to date"
    else:
        data["base_version"] = stale
    assert client.post(url, data=data).status_code == 409
    assert len(history(app, Article, art_id)) == 1


def test_invalid_edit_keeps_input_and_changes_nothing(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    url = f"/admin/article/{art_id}/edit"
    data = article_form(client, url, title="New title", views="lots")
    response = client.post(url, data=data)
    assert response.status_code == 422
    body = text(response)
    assert 'value="New title"' in body and 'value="lots"' in body
    assert "Not a valid integer value" in body
    with app.app_context():
        assert db.session.get(Article, art_id).title == "Alpha"


def test_readonly_columns_and_primary_key_are_never_changed(db_url: str) -> None:
    from tests.admin_fixtures import drop, make_app

    application = make_app(db_url, register=False)
    admin = application.extensions["test_admin"]
    admin.register(Author, readonly_columns=["email"], labels={"email": "E-mail"})
    admin.register(Quote)
    client = application.test_client()
    try:
        seed(application)
        url = "/admin/author/1/edit"
        page = client.get(url).get_data(as_text=True)
        assert "ann@example.com" in page and 'name="email"' not in page and "Read-only" in page
        data = {"csrf_token": csrf_token(client, url), "base_version": base_version(page),
                "name": "Ann R", "bio": "", "email": "hacked@example.com", "id": "77"}
        assert client.post(url, data=data).status_code == 302
        with application.app_context():
            ann = db.session.get(Author, 1)
            assert (ann.name, ann.email) == ("Ann R", "ann@example.com")
            assert db.session.get(Author, 77) is None
        # a rows-strategy record's key is read-only on edit
        url = "/admin/quote/SKU-1/edit"
        page = client.get(url).get_data(as_text=True)
        assert 'name="sku"' not in page and "SKU-1" in page
        data = {"csrf_token": csrf_token(client, url), "base_version": base_version(page),
                "sku": "EVIL", "product": "Widget+", "price": "10.00", "version_id": "99",
                "is_current_version": ""}
        assert client.post(url, data=data).status_code == 302
        with application.app_context():
            live = db.session.scalars(sa.select(Quote).where(Quote.is_current_version)).all()
            assert [(q.sku, q.product) for q in live] == [("SKU-1", "Widget+")]
            assert latest_version(db.session, Quote, ("SKU-1",)).number == 2
    finally:
        drop(application)


def test_readonly_field_is_not_on_the_create_form(db_url: str) -> None:
    from tests.admin_fixtures import drop, make_app

    application = make_app(db_url, register=False)
    application.extensions["test_admin"].register(Category, readonly_columns=["name"])
    try:
        body = application.test_client().get("/admin/category/new").get_data(as_text=True)
        assert 'name="name"' not in body
    finally:
        drop(application)


def test_edit_rows_strategy_record(app: Flask, client: FlaskClient) -> None:
    seed(app)
    url = "/admin/quote/SKU-1/edit"
    page = client.get(url).get_data(as_text=True)
    data = {"csrf_token": csrf_token(client, url), "base_version": base_version(page),
            "product": "Widget", "price": "11.00"}
    assert client.post(url, data=data).status_code == 302
    body = text(client.get("/admin/quote/"))
    assert "11.00" in body and "9.99" not in body
    assert count(app, Quote) == 2  # the old row is kept as a version


def test_large_related_table_uses_an_id_input(app: Flask, client: FlaskClient) -> None:
    seed(app)
    with app.app_context():
        db.session.add_all(Author(name=f"W{i}", email=f"w{i}@example.com") for i in range(101))
        db.session.commit()
    body = client.get("/admin/article/1/edit").get_data(as_text=True)
    assert '<select class="va-input" id="author"' not in body
    assert 'id="author" inputmode="numeric" name="author" required type="text" value="1"' in body
    assert "Currently: Ann." in body
    assert ">W100</option>" not in body
    data = article_form(client, "/admin/article/1/edit", author="424242")
    response = client.post("/admin/article/1/edit", data=data)
    assert response.status_code == 422 and "There is no such record." in text(response)
    data = article_form(client, "/admin/article/1/edit", author="2")
    assert client.post("/admin/article/1/edit", data=data).status_code == 302
    with app.app_context():
        assert db.session.get(Article, 1).author_id == 2


def test_nullable_relation_can_be_cleared(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    url = f"/admin/article/{ids['articles'][0]}/edit"
    data = article_form(client, url, title="Alpha", category="")
    assert client.post(url, data=data).status_code == 302
    with app.app_context():
        assert db.session.get(Article, ids["articles"][0]).category_id is None


def test_field_names_clashing_with_the_form_are_prefixed(db_url: str) -> None:
    from tests.admin_fixtures import drop, make_app

    application = make_app(db_url)  # Article.meta would hide the form's own ``meta``
    try:
        seed(application)
        body = application.test_client().get("/admin/article/1/edit").get_data(as_text=True)
        assert 'name="col_meta"' in body and 'name="meta"' not in body
        assert '<label class="va-label" for="col_meta">Meta</label>' in body
    finally:
        drop(application)


# -- delete -----------------------------------------------------------------------------------


def test_delete_get_confirms_and_changes_nothing(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    response = client.get(f"/admin/article/{art_id}/delete")
    assert response.status_code == 200
    body = text(response)
    assert "Delete Alpha?" in body and 'method="post"' in body and "Its history is kept" in body
    assert count(app, Article) == 3


def test_delete_post_deletes_and_keeps_a_version(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art_id = ids["articles"][0]
    url = f"/admin/article/{art_id}/delete"
    data = {"csrf_token": csrf_token(client, url), "change_reason": "duplicate"}
    response = client.post(url, data=data, headers={"X-User": "gus"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/article/")
    assert "Deleted Alpha." in text(client.get("/admin/article/"))
    assert count(app, Article) == 2
    newest = history(app, Article, art_id)[0]
    assert newest.operation.value == "delete"
    assert (newest.changeset.user, newest.changeset.reason) == ("gus", "duplicate")
    assert client.get(f"/admin/article/{art_id}/edit").status_code == 404


def test_delete_without_csrf_is_refused(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    response = client.post(f"/admin/article/{ids['articles'][0]}/delete", data={})
    assert response.status_code == 400
    assert "security token" in text(response)
    assert count(app, Article) == 3


def test_delete_refused_by_the_database_is_reported(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":  # enforce foreign keys on every new connection
        sa.event.listen(engine, "connect", lambda con, _rec: con.execute("PRAGMA foreign_keys=ON"))
        engine.dispose()
    url = f"/admin/author/{ids['ann']}/delete"
    data = {"csrf_token": csrf_token(client, url)}
    response = client.post(url, data=data)
    assert response.status_code == 409
    assert "The database refused this change" in text(response)
    assert count(app, Author) == 2


def test_delete_rows_strategy_record(app: Flask, client: FlaskClient) -> None:
    seed(app)
    url = "/admin/quote/SKU-1/delete"
    assert client.post(url, data={"csrf_token": csrf_token(client, url)}).status_code == 302
    assert "There are no quotes yet." in text(client.get("/admin/quote/"))
