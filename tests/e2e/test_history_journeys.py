"""History journeys in a real Chromium: timeline, compare, revert, restore, conflicts."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from e2e_support import ADMIN_PASSWORD, ADMIN_USER, LiveServer
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from app import Article, Author, db
from versioned_admin.versioning import latest_version

pytestmark = pytest.mark.e2e

LONG_BODY = "".join(
    f"Paragraph {i}: versioned admins keep every state of a record, so nothing is lost.\n"
    for i in range(120)
)


def _new_article(live_server: LiveServer, title: str) -> int:
    """An article made straight in the database (version 1)."""
    with live_server.app.test_request_context():  # the demo's acting user needs a request
        author = db.session.scalars(select(Author).order_by(Author.id)).first()
        assert author is not None
        art = Article(title=title, slug=f"{uuid.uuid4().hex[:10]}", body=LONG_BODY,
                      author=author)
        db.session.add(art)
        db.session.commit()
        return art.id


def _article(live_server: LiveServer, art_id: int) -> Any:
    with live_server.app.app_context():
        art = db.session.get(Article, art_id)
        if art is not None:
            db.session.expunge(art)
        return art


def _save_edit(page: Page, base: str, art_id: int, **fields: str) -> None:
    page.goto(f"{base}/admin/article/{art_id}/edit")
    for label, value in fields.items():
        page.get_by_label(re.compile(f"^{label}")).fill(value)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".va-alert-success")).to_be_visible()


def test_timeline_compare_and_revert(logged_in_page: Page, live_server: LiveServer) -> None:
    """Edit three times, compare 1 and 3, revert to 1 with the preview, see the new version."""
    page, base = logged_in_page, live_server.url
    art_id = _new_article(live_server, "Timeline journey")
    _save_edit(page, base, art_id, Title="Timeline journey, take two")
    edited = LONG_BODY.replace("Paragraph 60: versioned", "Paragraph 60: carefully versioned")
    edited = edited.replace("Paragraph 20: versioned admins keep", "Paragraph 20: admins keep")
    _save_edit(page, base, art_id, Body=edited)
    _save_edit(page, base, art_id, Title="Timeline journey, final")

    page.goto(f"{base}/admin/article/")
    page.locator(f'a[href="/admin/article/{art_id}/history"]').first.click()
    expect(page.get_by_role("heading", name=re.compile("History of"))).to_be_visible()
    rows = page.locator("table.va-timeline tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("#4")
    expect(rows.first).to_contain_text("Timeline journey, final")
    live_server.shot(page, "history-timeline")

    page.get_by_label("Compare from version 1").check()
    page.get_by_label("Compare to version 3").check()
    page.get_by_role("button", name="Compare selected versions").click()
    expect(page).to_have_url(re.compile(r"/diff\?(from=1&to=3|to=3&from=1)$"))
    expect(page.locator("ins", has_text="carefully")).to_be_visible()
    fold = page.locator("details.va-fold").first
    fold.locator("summary").click()
    expect(fold.locator(".va-dl").first).to_be_visible()
    live_server.shot(page, "history-diff")

    page.get_by_role("link", name="Timeline", exact=True).click()
    page.get_by_role("link", name="Revert to #1…").click()
    expect(page.get_by_role("heading", name="These fields will change")).to_be_visible()
    page.get_by_label(re.compile("reason", re.I)).fill("Back to the original")
    live_server.shot(page, "history-revert-preview")
    page.get_by_role("button", name="Revert to version 1").click()
    expect(page.get_by_text(re.compile(r"Reverted .* to version 1 as version 5"))).to_be_visible()
    first = page.locator("table.va-timeline tbody tr").first
    expect(first).to_contain_text("#5")
    expect(first).to_contain_text("reverted to version 1")
    expect(first).to_contain_text("Back to the original")
    art = _article(live_server, art_id)
    assert art.title == "Timeline journey" and art.body == LONG_BODY


def test_delete_and_restore(logged_in_page: Page, live_server: LiveServer) -> None:
    """Delete an article, find it among the deleted ones, restore it with the same id."""
    page, base = logged_in_page, live_server.url
    art_id = _new_article(live_server, "Restore journey")
    page.goto(f"{base}/admin/article/{art_id}/delete")
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".va-alert-success")).to_be_visible()
    assert _article(live_server, art_id) is None

    page.goto(f"{base}/admin/article/")
    page.get_by_role("link", name="Deleted").first.click()
    row = page.locator("table.va-deleted tbody tr", has_text="Restore journey")
    expect(row).to_contain_text(ADMIN_USER)
    live_server.shot(page, "history-deleted")
    row.get_by_role("button", name="Restore").click()
    expect(page.get_by_text("Restored Restore journey")).to_be_visible()
    expect(page.locator("table.va-timeline tbody tr").first).to_contain_text("restored")
    assert _article(live_server, art_id).title == "Restore journey"


def _login(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/admin/")


def test_two_editors_resolve_a_conflict(browser: Browser, live_server: LiveServer) -> None:
    """Two browsers edit one author; the second sees both changes and merges field by field."""
    base = live_server.url
    with live_server.app.test_request_context():
        author = Author(name="Conflicted Carla", email=f"{uuid.uuid4().hex[:8]}@example.com",
                        bio="Writes about merges.")
        db.session.add(author)
        db.session.commit()
        author_id = author.id
    contexts = [browser.new_context(viewport={"width": 1280, "height": 860}) for _ in range(2)]
    try:
        first, second = (ctx.new_page() for ctx in contexts)
        for page in (first, second):
            _login(page, base)
            page.goto(f"{base}/admin/author/{author_id}/edit")
        first.get_by_label(re.compile("^Name")).fill("Carla (theirs)")
        first.get_by_label(re.compile("^Bio")).fill("Their new bio.")
        first.get_by_role("button", name="Save", exact=True).click()
        expect(first.locator(".va-alert-success")).to_be_visible()

        second.get_by_label(re.compile("^Name")).fill("Carla (mine)")
        second.get_by_label(re.compile("reason", re.I)).fill("My rename")
        second.get_by_role("button", name="Save", exact=True).click()
        expect(second.get_by_text("Someone else saved this record after you opened it")) \
            .to_be_visible()
        expect(second.locator("section.va-conflict-both")).to_contain_text("Carla (theirs)")
        expect(second.locator("section.va-conflict-both")).to_contain_text("Carla (mine)")
        live_server.shot(second, "history-conflict")
        second.get_by_label("Mine").check()
        second.get_by_role("button", name="Save with these choices").click()
        expect(second.get_by_text("with your choices")).to_be_visible()
        with live_server.app.app_context():
            saved = db.session.get(Author, author_id)
            assert saved is not None
            assert saved.name == "Carla (mine)" and saved.bio == "Their new bio."
            latest = latest_version(db.session, Author, author_id)
            assert latest is not None and latest.changeset.reason == "My rename"
    finally:
        for ctx in contexts:
            ctx.close()
