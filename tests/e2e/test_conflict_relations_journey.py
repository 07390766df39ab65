"""A tag conflict in a real Chromium: two editors retag one article, the second combines both."""

from __future__ import annotations

import re
import uuid

import pytest
from e2e_support import ADMIN_PASSWORD, ADMIN_USER, LiveServer
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from app import Article, Author, Tag, db
from versioned_admin.versioning import latest_version

pytestmark = pytest.mark.e2e


def _tagged_article(live_server: LiveServer) -> int:
    """A new article tagged history + databases (version 1)."""
    with live_server.app.test_request_context():  # the demo's acting user needs a request
        author = db.session.scalars(select(Author).order_by(Author.id)).first()
        tags = {t.name: t for t in db.session.scalars(select(Tag))}
        art = Article(title="Conflicting tags", slug=uuid.uuid4().hex[:10], body="Body.",
                      author=author, tags=[tags["history"], tags["databases"]])
        db.session.add(art)
        db.session.commit()
        return art.id


def _login(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/admin/")


def test_two_editors_retag_and_combine(browser: Browser, live_server: LiveServer) -> None:
    """They swap history for design; I swap databases for python and retitle; keep both."""
    base = live_server.url
    art_id = _tagged_article(live_server)
    contexts = [browser.new_context(viewport={"width": 1280, "height": 860}) for _ in range(2)]
    try:
        theirs, mine = (ctx.new_page() for ctx in contexts)
        for page in (theirs, mine):
            _login(page, base)
            page.goto(f"{base}/admin/article/{art_id}/edit")
        tags = theirs.locator("fieldset#rel-tags")
        tags.get_by_label("history").uncheck()
        tags.get_by_label("design").check()
        theirs.get_by_role("button", name="Save", exact=True).click()
        expect(theirs.locator(".va-alert-success")).to_be_visible()

        tags = mine.locator("fieldset#rel-tags")
        tags.get_by_label("databases").uncheck()
        tags.get_by_label("python").check()
        mine.get_by_role("textbox", name="Title", exact=True).fill("Conflicting tags, retitled")
        mine.get_by_role("button", name="Save", exact=True).click()
        expect(mine.get_by_text("Someone else saved this record after you opened it")) \
            .to_be_visible()
        section = mine.locator("section.va-conflict-set", has_text="Tags")
        expect(section.locator(".va-set-base")).to_contain_text("databases")
        expect(section.locator(".va-set-theirs .va-chip-added")).to_have_text("+design")
        expect(section.locator(".va-set-theirs .va-chip-removed")).to_have_text("−history")
        expect(section.locator(".va-set-mine .va-chip-added")).to_have_text("+python")
        expect(section.locator(".va-set-mine .va-chip-removed")).to_have_text("−databases")
        expect(mine.locator("section.va-conflict-yours")).to_contain_text("retitled")
        live_server.shot(mine, "conflict-tags")

        # nothing saved until chosen: a submit without a choice is stopped by the browser
        mine.get_by_role("button", name="Save with these choices").click()
        expect(mine.get_by_text("Someone else saved this record after you opened it")) \
            .to_be_visible()
        section.get_by_role("radio", name=re.compile("Both changes")).check()
        mine.get_by_role("button", name="Save with these choices").click()
        expect(mine.get_by_text("with your choices")).to_be_visible()
        expect(mine.locator("table.va-timeline tbody tr").first).to_contain_text("+python")
        with live_server.app.app_context():
            art = db.session.get(Article, art_id)
            assert art is not None
            assert sorted(t.name for t in art.tags) == ["design", "python"]
            assert art.title == "Conflicting tags, retitled"
            latest = latest_version(db.session, Article, art_id)
            assert latest is not None and latest.number == 3
    finally:
        for ctx in contexts:
            ctx.close()
