"""Revert, deleted records, restore and edit conflicts through the test client."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from admin_fixtures import (
    Article,
    Author,
    base_version,
    csrf_token,
    db,
    drop,
    make_app,
    seed,
    standard_app,
)
from flask import Flask
from flask.testing import FlaskClient
from history_helpers import edit, edited_article, numbers, text

from versioned_admin.versioning import latest_version


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    """The standard admin test app."""
    yield from standard_app(db_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client."""
    return app.test_client()


def seen(html: str) -> str:
    """The hidden current version of a revert preview."""
    match = re.search(r'name="seen_version" type="hidden" value="(\d+)"', html)
    assert match, "no seen_version"
    return match.group(1)


def title(app: Flask, art: int) -> str | None:
    """An article's live title (None when deleted)."""
    with app.app_context():
        obj = db.session.get(Article, art)
        return None if obj is None else obj.title


# -- revert --------------------------------------------------------------------------------


def test_revert_preview_then_confirm(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    edited_article(app, art)
    url = f"/admin/article/{art}/revert/1"
    page = text(client.get(url))
    assert "These fields will change" in page and seen(page) == "4"
    assert "Alpha three" in page and "Alpha" in page
    response = client.post(url, data={"csrf_token": csrf_token(client, url), "seen_version": "4",
                                      "change_reason": "Back to the start"},
                           headers={"X-User": "rev"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/admin/article/{art}/history")
    assert title(app, art) == "Alpha"
    with app.app_context():
        latest = latest_version(db.session, Article, art)
        assert latest is not None and latest.number == 5 and latest.reverted_from == 1
        assert latest.changeset.user == "rev" and latest.changeset.reason == "Back to the start"
    timeline = text(client.get(f"/admin/article/{art}/history"))
    assert "reverted to version 1" in timeline and "Reverted" in timeline


def test_revert_after_a_newer_save_shows_the_new_diff(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    edited_article(app, art)
    url = f"/admin/article/{art}/revert/1"
    token = csrf_token(client, url)
    edit(app, Article, art, title="Sneaky newer title")  # version 5, after the preview
    response = client.post(url, data={"csrf_token": token, "seen_version": "4"})
    assert response.status_code == 409
    body = text(response)
    assert "changed after the preview" in body and "Sneaky newer title" in body
    assert seen(body) == "5"
    assert numbers(app, Article, art)[0] == 5 and title(app, art) == "Sneaky newer title"


def test_revert_to_current_state_is_a_noop(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    edit(app, Article, art, title="Two")
    edit(app, Article, art, title="Alpha")  # version 3 equals version 1
    url = f"/admin/article/{art}/revert/1"
    page = text(client.get(url))
    assert "nothing to revert" in page and 'name="seen_version"' not in page
    token = csrf_token(client, f"/admin/article/{art}/edit")
    response = client.post(url, data={"csrf_token": token, "seen_version": "3"})
    assert response.status_code == 409
    assert "nothing to revert" in text(response)
    assert numbers(app, Article, art) == [3, 2, 1]


@pytest.mark.parametrize("data", [{}, {"seen_version": "2"}, {"csrf_token": "forged"}])
def test_revert_without_csrf_changes_nothing(app: Flask, client: FlaskClient,
                                             data: dict[str, str]) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    edit(app, Article, art, title="Two")
    response = client.post(f"/admin/article/{art}/revert/1", data=data)
    assert response.status_code == 400
    assert "security token" in text(response)
    assert numbers(app, Article, art) == [2, 1]


@pytest.mark.parametrize(("number", "status"), [("99", 404), ("abc", 400), ("0", 400),
                                                ("-1", 400)])
def test_revert_bad_version(app: Flask, client: FlaskClient, number: str, status: int) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    assert client.get(f"/admin/article/{art}/revert/{number}").status_code == status
    assert client.post(f"/admin/article/{art}/revert/{number}").status_code == status
    assert numbers(app, Article, art) == [1]


def test_revert_obeys_can_revert(db_url: str) -> None:
    application = make_app(db_url, can_revert=lambda: False)
    try:
        ids = seed(application)
        art = ids["articles"][0]
        edit(application, Article, art, title="Two")
        client = application.test_client()
        assert client.get(f"/admin/article/{art}/revert/1").status_code == 403
        assert client.post(f"/admin/article/{art}/revert/1").status_code == 403
        assert "Revert to" not in text(client.get(f"/admin/article/{art}/history"))
        assert numbers(application, Article, art) == [2, 1]
    finally:
        drop(application)


def test_revert_to_a_deletion_version_is_refused(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    with app.app_context():
        db.session.delete(db.session.get(Article, art))
        db.session.commit()
    assert client.get(f"/admin/article/{art}/revert/2").status_code == 400


def test_reverting_a_deleted_record_restores_it(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    edit(app, Article, art, title="Two")
    with app.app_context():
        db.session.delete(db.session.get(Article, art))
        db.session.commit()
    url = f"/admin/article/{art}/revert/1"
    page = text(client.get(url))
    assert "reverting brings it back" in page
    response = client.post(url, data={"csrf_token": csrf_token(client, url),
                                      "seen_version": seen(page)})
    assert response.status_code == 302
    assert title(app, art) == "Alpha"
    assert numbers(app, Article, art) == [4, 3, 2, 1]


def test_get_on_post_only_urls_is_405(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    for url in [f"/admin/article/{art}/restore", f"/admin/article/{art}/resolve"]:
        assert client.get(url).status_code == 405
    assert numbers(app, Article, art) == [1]


# -- deleted and restore -------------------------------------------------------------------


def delete_through_admin(client: FlaskClient, art: int, user: str = "del") -> None:
    """Delete an article with the admin's delete form."""
    url = f"/admin/article/{art}/delete"
    response = client.post(url, data={"csrf_token": csrf_token(client, url),
                                      "change_reason": "Spam"}, headers={"X-User": user})
    assert response.status_code == 302


def test_deleted_page_and_restore(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][1]
    delete_through_admin(client, art)
    page = text(client.get("/admin/article/deleted"))
    assert "Beta 100%" in page and "del" in page and "Spam" in page
    assert f'action="/admin/article/{art}/restore"' in page
    response = client.post(f"/admin/article/{art}/restore",
                           data={"csrf_token": csrf_token(client, "/admin/article/deleted")},
                           headers={"X-User": "res"})
    assert response.status_code == 302
    assert title(app, art) == "Beta 100%"
    with app.app_context():
        latest = latest_version(db.session, Article, art)
        assert latest is not None and latest.number == 3 and latest.changeset.user == "res"
    listing = text(client.get("/admin/article/deleted"))
    assert f'action="/admin/article/{art}/restore"' not in listing
    assert "restored" in text(client.get(f"/admin/article/{art}/history"))


def test_restore_refusals(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    art = ids["articles"][0]
    token = csrf_token(client, f"/admin/article/{art}/edit")
    live = client.post(f"/admin/article/{art}/restore", data={"csrf_token": token})
    assert live.status_code == 409 and "is not deleted" in text(live)
    delete_through_admin(client, art)
    assert client.post(f"/admin/article/{art}/restore", data={}).status_code == 400
    assert client.post("/admin/article/999/restore", data={"csrf_token": token}).status_code \
        == 404
    assert title(app, art) is None


def test_deleted_page_keyset_pages_keep_changesets_whole(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    app.config["VERSIONED_ADMIN_PAGE_SIZE"] = 1
    with app.app_context():
        for art in ids["articles"][:2]:
            db.session.delete(db.session.get(Article, art))
        db.session.commit()  # one changeset, two records
        db.session.delete(db.session.get(Article, ids["articles"][2]))
        db.session.commit()
    first = text(client.get("/admin/article/deleted"))
    assert "Gamma_under" in first and "Alpha" not in first
    match = re.search(r"before=(\d+)", first)
    assert match
    second = text(client.get(f"/admin/article/deleted?before={match.group(1)}"))
    assert "Alpha" in second and "Beta 100%" in second
    assert client.get("/admin/article/deleted?before=x").status_code == 400
    assert client.get("/admin/note/deleted").status_code == 404


# -- conflicts -----------------------------------------------------------------------------


def author_form(client: FlaskClient, url: str, **values: str) -> dict[str, str]:
    """The edit form's fields for an author, with some values changed."""
    page = text(client.get(url))
    data = {"csrf_token": csrf_token(client, url), "base_version": base_version(page),
            "name": "Ann", "email": "ann@example.com", "bio": "", "change_reason": ""}
    data.update(values)
    return data


def test_conflict_page_shows_both_and_saves_nothing(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    url = f"/admin/author/{ids['ann']}/edit"
    data = author_form(client, url, name="Ann Mine", bio="my bio <b>")
    edit(app, Author, ids["ann"], name="Ann Theirs", email="theirs@example.com")
    response = client.post(url, data=data)
    assert response.status_code == 409
    body = text(response)
    assert "Someone else saved this record after you opened it" in body
    assert "Ann Mine" in body and "Ann Theirs" in body
    assert 'name="choice-name"' in body  # both changed the name
    assert 'name="choice-bio"' not in body and "only you changed it" in body
    assert "only they changed it" in body  # the email
    assert 'name="mine-bio" value="my bio &lt;b&gt;"' in body  # nothing typed is lost
    assert numbers(app, Author, ids["ann"]) == [2, 1]


def _resolve_data(body: str, **choices: str) -> dict[str, str | list[str]]:
    data: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input [^>]*name="([^"]+)"[^>]* value="([^"]*)"', body):
        if name.startswith(("mine-", "csrf_token", "base_version", "mine_base")):
            data.setdefault(name, []).append(value.replace("&lt;", "<").replace("&gt;", ">"))
    out: dict[str, str | list[str]] = {k: v if len(v) > 1 else v[0] for k, v in data.items()}
    out.update({f"choice-{k}": v for k, v in choices.items()})
    return out


@pytest.mark.parametrize("choice", ["mine", "theirs"])
def test_conflict_resolution_merges_field_by_field(app: Flask, client: FlaskClient,
                                                   choice: str) -> None:
    ids = seed(app)
    ann = ids["ann"]
    url = f"/admin/author/{ann}/edit"
    data = author_form(client, url, name="Ann Mine", bio="my bio")
    edit(app, Author, ann, name="Ann Theirs", email="theirs@example.com")
    body = text(client.post(url, data=data))
    response = client.post(f"/admin/author/{ann}/resolve", data=_resolve_data(body, name=choice))
    assert response.status_code == 302, text(response)[:3000]
    with app.app_context():
        obj = db.session.get(Author, ann)
        assert obj.name == ("Ann Mine" if choice == "mine" else "Ann Theirs")
        assert obj.email == "theirs@example.com"  # their change kept
        assert obj.bio == "my bio"  # my change applied


def test_conflict_resolution_without_choice_asks_again(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    ann = ids["ann"]
    url = f"/admin/author/{ann}/edit"
    data = author_form(client, url, name="Ann Mine")
    edit(app, Author, ann, name="Ann Theirs")
    body = text(client.post(url, data=data))
    response = client.post(f"/admin/author/{ann}/resolve", data=_resolve_data(body))
    assert response.status_code == 422 and "Choose whose value to keep" in text(response)
    assert numbers(app, Author, ann) == [2, 1]


def test_conflict_resolution_when_it_changed_again(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    ann = ids["ann"]
    url = f"/admin/author/{ann}/edit"
    data = author_form(client, url, name="Ann Mine")
    edit(app, Author, ann, name="Ann Theirs")
    body = text(client.post(url, data=data))
    edit(app, Author, ann, name="Ann Third")
    response = client.post(f"/admin/author/{ann}/resolve", data=_resolve_data(body, name="mine"))
    assert response.status_code == 409
    assert "changed again" in text(response) and "Ann Third" in text(response)
    assert numbers(app, Author, ann) == [3, 2, 1]


def test_conflict_resolution_without_csrf_keeps_input(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    ann = ids["ann"]
    url = f"/admin/author/{ann}/edit"
    data = author_form(client, url, name="Ann Mine")
    edit(app, Author, ann, name="Ann Theirs")
    body = text(client.post(url, data=data))
    posted = _resolve_data(body, name="mine")
    posted.pop("csrf_token")
    response = client.post(f"/admin/author/{ann}/resolve", data=posted)
    assert response.status_code == 400 and 'value="Ann Mine"' in text(response)
    assert numbers(app, Author, ann) == [2, 1]


def test_conflict_page_escapes_values(app: Flask, client: FlaskClient) -> None:
    ids = seed(app)
    ann = ids["ann"]
    url = f"/admin/author/{ann}/edit"
    evil = '<script>alert(1)</script>" onmouseover="x'
    data = author_form(client, url, bio=evil)
    edit(app, Author, ann, bio="javascript:alert(1) <script>alert(2)</script>")
    body = text(client.post(url, data=data))
    assert "<script>alert" not in body and '" onmouseover="x' not in body
    assert 'href="javascript:' not in body
