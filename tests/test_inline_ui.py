"""Inline editing of one-to-many relations (the demo's article sources), SQLite + PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
import test_relations_ui as demo
from flask import Flask
from flask.testing import FlaskClient
from test_relations_ui import form_fields, page_text

from app import Article, Author, Source, create_app, db
from versioned_admin import VersionedAdmin
from versioned_admin.admin import inline_form
from versioned_admin.versioning import deleted_records, latest_version, versions

app = demo.app  # the seeded demo app (CSRF off) and a client logged in as its admin
client = demo.client

EDIT = "/admin/article/1/edit"


def browser_fields(page: str) -> dict[str, Any]:
    """What a browser submits: the hidden row template's inputs are not part of the form."""
    return {k: v for k, v in form_fields(page).items() if "__index__" not in k}


def sources(app: Flask, article_id: int = 1) -> list[tuple[int, str, str | None]]:
    """(id, title, url) of an article's sources, in order."""
    with app.app_context():
        article = db.session.get(Article, article_id)
        assert article is not None
        return [(s.id, s.title, s.url) for s in article.sources]


def version_count(app: Flask) -> int:
    """How many versions of articles and sources exist (to prove nothing was written)."""
    with app.app_context():
        return sum(len(versions(db.session, m, (pk,), limit=1000))
                   for m, n in ((Article, 12), (Source, 10)) for pk in range(1, n))


def edit_page(client: FlaskClient, url: str = EDIT) -> dict[str, Any]:
    """The edit form's fields as a browser would submit them unchanged."""
    response = client.get(url)
    assert response.status_code == 200
    return browser_fields(response.get_data(as_text=True))


def test_form_shows_one_row_per_source_and_a_blank_one(app: Flask, client: FlaskClient) -> None:
    page = client.get(EDIT).get_data(as_text=True)
    data = browser_fields(page)
    assert data["rel-sources-0-title"] == "SQLAlchemy: versioning objects"
    assert data["rel-sources-0-accessed_on"] == "2024-03-02"
    assert data["rel-sources-1-title"] == "The newsroom style guide, chapter 4"
    assert data["rel-sources-new-0-present"] == "1"
    assert "rel-sources-2-pk" not in data
    # the back reference is set by the relation, never typed
    assert "rel-sources-0-article" not in data and "rel-sources-0-article_id" not in data
    assert 'id="rel-sources-template"' in page and "data-va-add-row" in page
    assert re.search(r'href="/admin/source/1/history"', page)


def test_edit_remove_and_add_in_one_save_is_one_changeset(
    app: Flask, client: FlaskClient
) -> None:
    data = edit_page(client)
    data["rel-sources-0-title"] = "SQLAlchemy docs: versioning objects"
    data["rel-sources-1-del"] = ["1"]
    data["rel-sources-new-0-title"] = "Continuum README"
    data["rel-sources-new-0-url"] = "https://example.org/continuum"
    data["change_reason"] = "Tidy the sources"
    response = client.post(EDIT, data=data)
    assert response.status_code == 302, page_text(response)[:2000]
    rows = sources(app)
    assert [(t, u) for _i, t, u in rows] == [
        ("SQLAlchemy docs: versioning objects",
         "https://docs.sqlalchemy.org/en/20/orm/examples.html#versioning-objects"),
        ("Continuum README", "https://example.org/continuum"),
    ]
    new_id = rows[1][0]
    with app.app_context():
        article_v = latest_version(db.session, Article, (1,))
        edited_v = latest_version(db.session, Source, (1,))
        removed_v = latest_version(db.session, Source, (2,))
        added_v = latest_version(db.session, Source, (new_id,))
        assert article_v is not None and edited_v is not None
        assert removed_v is not None and added_v is not None
        # every part of the save is in the article's changeset
        assert {v.changeset.id for v in (article_v, edited_v, removed_v, added_v)} == {
            article_v.changeset.id}
        assert "sources" in article_v.changed
        assert edited_v.state["title"] == "SQLAlchemy docs: versioning objects"
        assert removed_v.is_delete
        gone = deleted_records(db.session, Source)
        assert [v.pk for v in gone] == [(2,)]
    timeline = page_text(client.get("/admin/article/1/history"))
    assert "Sources: +Continuum README −The newsroom style guide, chapter 4" in timeline
    assert "Tidy the sources" in timeline


def test_blank_rows_are_ignored_and_an_unchanged_form_saves_nothing(
    app: Flask, client: FlaskClient
) -> None:
    before = version_count(app)
    response = client.post(EDIT, data=edit_page(client), follow_redirects=True)
    assert "Nothing changed" in page_text(response)
    assert version_count(app) == before
    assert len(sources(app)) == 2


def test_bad_rows_keep_the_typing_and_save_nothing(app: Flask, client: FlaskClient) -> None:
    before = version_count(app)
    data = edit_page(client)
    data["title"] = "A changed headline"
    data["rel-sources-0-title"] = "x" * 201
    data["rel-sources-new-0-url"] = "https://example.org/only-a-url"  # title missing
    response = client.post(EDIT, data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    text = page_text(response)
    assert "Field cannot be longer than 200 characters." in text
    assert "This field is required." in text
    kept = browser_fields(page)
    assert kept["title"] == "A changed headline"
    assert kept["rel-sources-0-title"] == "x" * 201
    assert kept["rel-sources-new-0-url"] == "https://example.org/only-a-url"
    assert 'aria-invalid="true"' in page
    assert version_count(app) == before
    with app.app_context():
        article = db.session.get(Article, 1)
        assert article is not None and article.title != "A changed headline"


def test_a_source_changed_meanwhile_is_refused_then_saved_on_purpose(
    app: Flask, client: FlaskClient
) -> None:
    data = edit_page(client)
    with app.app_context():  # someone else edits the same source after the form was read
        source = db.session.get(Source, 1)
        assert source is not None
        source.title = "Their title"
        db.session.commit()
    data["rel-sources-0-title"] = "My title"
    response = client.post(EDIT, data=data)
    assert response.status_code == 409
    text = page_text(response)
    assert "Someone else changed this record meanwhile (it is now at version 2)" in text
    assert sources(app)[0][1] == "Their title"
    again = browser_fields(response.get_data(as_text=True))
    assert again["rel-sources-0-title"] == "My title"
    assert again["rel-sources-0-version"] == "2"
    response = client.post(EDIT, data=again)
    assert response.status_code == 302
    assert sources(app)[0][1] == "My title"


def test_a_source_removed_meanwhile_is_reported(app: Flask, client: FlaskClient) -> None:
    data = edit_page(client)
    with app.app_context():
        article = db.session.get(Article, 1)
        assert article is not None
        article.sources.pop()
        db.session.commit()
    data["rel-sources-1-title"] = "Edited after it was removed"
    response = client.post(EDIT, data=data)
    assert response.status_code == 409
    text = page_text(response)
    assert "Someone else saved this record after you opened it" in text
    assert "Someone removed this record meanwhile" in text
    kept = browser_fields(response.get_data(as_text=True))
    assert kept["rel-sources-1-title"] == "Edited after it was removed"
    kept["rel-sources-1-del"] = ["1"]  # let it go: the rest saves, nothing comes back
    kept["title"] = "Saved after letting the removed source go"
    assert client.post(EDIT, data=kept).status_code == 302
    assert [t for _i, t, _u in sources(app)] == ["SQLAlchemy: versioning objects"]
    assert [t for _i, t, _u in sources(app)] == ["SQLAlchemy: versioning objects"]


def test_creating_an_article_with_sources(app: Flask, client: FlaskClient) -> None:
    page = client.get("/admin/article/new").get_data(as_text=True)
    data = browser_fields(page)
    data.update({"title": "Sourced", "slug": "sourced", "author": "1",
                 "body": "Text", "rel-sources-new-0-title": "Primary source",
                 "rel-sources-new-1-present": "1", "rel-sources-new-1-title": "Second",
                 "rel-sources-new-1-url": "https://example.org/2"})
    data.pop("meta", None)
    response = client.post("/admin/article/new", data=data)
    assert response.status_code == 302, page_text(response)[:2000]
    with app.app_context():
        article = db.session.query(Article).filter_by(slug="sourced").one()
        assert [s.title for s in article.sources] == ["Primary source", "Second"]
        first = latest_version(db.session, Article, (article.id,))
        assert first is not None and first.number == 1
        assert len(first.state["sources"]) == 2


def test_titles_are_escaped_in_form_and_history(app: Flask, client: FlaskClient) -> None:
    data = edit_page(client)
    data["rel-sources-new-0-title"] = "<script>alert(1)</script>"
    assert client.post(EDIT, data=data).status_code == 302
    for url in (EDIT, "/admin/article/1/history", "/admin/source/"):
        page = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_too_many_rows_fall_back_to_the_read_only_list(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_form, "INLINE_LIMIT", 1)
    page = client.get(EDIT).get_data(as_text=True)
    assert "rel-sources-0-pk" not in page
    assert "Read-only here" in page_text(client.get(EDIT))
    # the form still saves its other fields
    data = browser_fields(page)
    data["title"] = "Still editable"
    assert client.post(EDIT, data=data).status_code == 302
    assert len(sources(app)) == 2


def test_inline_option_turns_rows_off_and_names_are_checked(db_url: str) -> None:
    application = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "TESTING": True,
                              "SECRET_KEY": "t"})
    with application.app_context():
        admin: VersionedAdmin = application.extensions["versioned_admin"]["versioned_admin"]
        view = admin.view_for(Article)
        assert view is not None
        rel = view.mapper.relationships["sources"]
        assert inline_form.is_inline(view, rel)
        view.inline = []
        assert not inline_form.is_inline(view, rel)
        authors = admin.view_for(Author)
        assert authors is not None  # its articles are not owned (no delete-orphan): not inline
        assert not inline_form.is_inline(authors, authors.mapper.relationships["articles"])
        with pytest.raises(ValueError, match="no attribute"):
            type(view)(Article, slug="x", inline=["nope"])
        db.session.remove()
        db.engine.dispose()



def test_a_conflict_with_row_edits_keeps_them_on_the_form(app: Flask, client: FlaskClient) -> None:
    data = edit_page(client)
    with app.app_context():  # someone else retitles the article after the form was read
        article = db.session.get(Article, 1)
        assert article is not None
        article.title = "Their headline"
        db.session.commit()
    data["rel-sources-0-title"] = "My renamed source"
    data["rel-sources-new-0-title"] = "My added source"
    response = client.post(EDIT, data=data)
    assert response.status_code == 409
    text = page_text(response)
    assert "Someone else saved this record after you opened it" in text
    kept = browser_fields(response.get_data(as_text=True))
    assert kept["rel-sources-0-title"] == "My renamed source"
    assert kept["rel-sources-new-0-title"] == "My added source"
    assert [t for _i, t, _u in sources(app)] == ["SQLAlchemy: versioning objects",
                                                 "The newsroom style guide, chapter 4"]
    kept["title"] = "Their headline"  # the user takes their headline and saves the rows again
    assert client.post(EDIT, data=kept).status_code == 302
    assert [t for _i, t, _u in sources(app)] == ["My renamed source",
                                                 "The newsroom style guide, chapter 4",
                                                 "My added source"]


def test_row_edits_are_known_when_a_row_was_deleted_meanwhile(app: Flask) -> None:
    """After a lost race the rows' records may be gone: that counts as an edit, not a 500."""
    with app.test_request_context():
        admin: VersionedAdmin = app.extensions["versioned_admin"]["versioned_admin"]
        view = admin.view_for(Article)
        assert view is not None
        article = db.session.get(Article, 1)
        rel = view.mapper.relationships["sources"]
        rows = inline_form.build_inline(db.session, view, rel, "rel-sources", article, None)
        assert rows is not None and not inline_form.has_edits(rows)
        with db.engine.begin() as conn:  # someone else deletes the first source
            conn.execute(Source.__table__.delete().where(Source.__table__.c.id == 1))
        db.session.expire_all()
        assert inline_form.has_edits(rows)
        db.session.rollback()


def test_a_row_gone_without_a_parent_version_is_a_conflict(app: Flask, client: FlaskClient) -> None:
    """A row deleted behind the parent's back (e.g. read between two commits): 409, not 422."""
    data = edit_page(client)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(Source.__table__.delete().where(Source.__table__.c.id == 2))
    data["rel-sources-1-title"] = "Edited"
    response = client.post(EDIT, data=data)
    assert response.status_code == 409
    assert "Someone removed this record meanwhile" in page_text(response)
