"""Inline one-to-many rows in a real Chromium: edit, remove and add an article's sources."""

from __future__ import annotations

import re
import uuid

import pytest
from e2e_support import LiveServer
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app import Article, Author, Source, db
from versioned_admin.versioning import latest_version

pytestmark = pytest.mark.e2e


def _sourced_article(live_server: LiveServer) -> int:
    """A new article citing two sources (version 1)."""
    with live_server.app.test_request_context():
        author = db.session.scalars(select(Author).order_by(Author.id)).first()
        art = Article(title="Sources journey", slug=uuid.uuid4().hex[:10], body="Body.",
                      author=author, sources=[Source(title="First source"),
                                              Source(title="Second source",
                                                     url="https://example.org/2")])
        db.session.add(art)
        db.session.commit()
        return art.id


def test_edit_remove_and_add_sources(logged_in_page: Page, live_server: LiveServer) -> None:
    """Rename one source, remove the other, add two with "Add another": one new version."""
    page, base = logged_in_page, live_server.url
    art_id = _sourced_article(live_server)
    page.goto(f"{base}/admin/article/{art_id}/edit")
    rows = page.locator("#rel-sources-rows tr.va-inline-row")
    expect(rows).to_have_count(3)  # two sources and one blank row
    rows.nth(0).get_by_label("Title").fill("First source, renamed")
    rows.nth(1).get_by_label("remove").check()
    rows.nth(2).get_by_label("Title").fill("Third source")
    page.get_by_role("button", name="+ Add another source").click()
    expect(rows).to_have_count(4)
    expect(rows.nth(3).get_by_label("Title")).to_be_focused()
    rows.nth(3).get_by_label("Title").fill("Fourth <source>")
    rows.nth(3).get_by_label("URL").fill("https://example.org/4")
    page.get_by_label("Reason for change").fill("Rework the sources")
    live_server.shot(page, "inline-sources-form")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".va-alert-success")).to_be_visible()
    expect(rows).to_have_count(4)  # three sources and a fresh blank row
    expect(rows.nth(2).get_by_label("Title")).to_have_value("Fourth <source>")

    page.goto(f"{base}/admin/article/{art_id}/history")
    first = page.locator("table.va-timeline tbody tr").first
    expect(first).to_contain_text(re.compile(r"Sources: \+Third source \+Fourth <source> "
                                             r"−Second source"))
    live_server.shot(page, "inline-sources-timeline")
    with live_server.app.app_context():
        art = db.session.get(Article, art_id)
        assert art is not None
        assert [s.title for s in art.sources] == ["First source, renamed", "Third source",
                                                  "Fourth <source>"]
        version = latest_version(db.session, Article, art_id)
        assert version is not None and version.number == 2


def test_a_bad_row_is_marked_and_the_typing_kept(
    logged_in_page: Page, live_server: LiveServer
) -> None:
    """A URL without a title: 422, the field says why, nothing saved, the row still filled."""
    page, base = logged_in_page, live_server.url
    art_id = _sourced_article(live_server)
    page.goto(f"{base}/admin/article/{art_id}/edit")
    rows = page.locator("#rel-sources-rows tr.va-inline-row")
    rows.nth(2).get_by_label("URL").fill("https://example.org/untitled")
    with page.expect_response(re.compile(r"/edit$")) as response:
        page.get_by_role("button", name="Save", exact=True).click()
    assert response.value.status == 422
    row = page.locator("#rel-sources-rows tr.va-inline-row").nth(2)
    expect(row.get_by_label("URL")).to_have_value("https://example.org/untitled")
    expect(row.get_by_text("This field is required.")).to_be_visible()
    expect(row.get_by_label("Title")).to_be_focused()
    live_server.shot(page, "inline-sources-error")
    with live_server.app.app_context():
        art = db.session.get(Article, art_id)
        assert art is not None and len(art.sources) == 2
