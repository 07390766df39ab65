"""Relation and map journeys in a real Chromium: edit tags and a config map, then revert them."""

from __future__ import annotations

import re
import uuid

import pytest
from e2e_support import LiveServer
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app import Article, Author, SiteConfig, Tag, db

pytestmark = pytest.mark.e2e


def _tagged_article(live_server: LiveServer) -> int:
    """A new article tagged history + databases (version 1)."""
    with live_server.app.test_request_context():
        author = db.session.scalars(select(Author).order_by(Author.id)).first()
        tags = {t.name: t for t in db.session.scalars(select(Tag))}
        art = Article(title="Tags journey", slug=uuid.uuid4().hex[:10], body="Body.",
                      author=author, tags=[tags["history"], tags["databases"]])
        db.session.add(art)
        db.session.commit()
        return art.id


def _config(live_server: LiveServer) -> int:
    """A new site config map (version 1)."""
    with live_server.app.test_request_context():
        cfg = SiteConfig(name=f"journey-{uuid.uuid4().hex[:6]}",
                         settings={"site_name": "Journey", "items_per_page": 10, "comments": True})
        db.session.add(cfg)
        db.session.commit()
        return cfg.id


def test_edit_tags_then_revert(logged_in_page: Page, live_server: LiveServer) -> None:
    """Untick history, tick python; the timeline says so; revert to 1 brings the tags back."""
    page, base = logged_in_page, live_server.url
    art_id = _tagged_article(live_server)
    page.goto(f"{base}/admin/article/{art_id}/edit")
    tags = page.locator("fieldset#rel-tags")
    tags.get_by_label("history").uncheck()
    tags.get_by_label("python").check()
    live_server.shot(page, "relations-tags-form")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".va-alert-success")).to_be_visible()

    page.goto(f"{base}/admin/article/{art_id}/history")
    first = page.locator("table.va-timeline tbody tr").first
    expect(first).to_contain_text("Tags: +python −history")
    live_server.shot(page, "relations-tags-timeline")

    page.get_by_role("link", name="Diff vs #1").first.click()
    expect(page.locator(".va-rel-added", has_text="+python")).to_be_visible()
    expect(page.locator(".va-rel-removed", has_text="−history")).to_be_visible()
    live_server.shot(page, "relations-tags-diff")

    page.goto(f"{base}/admin/article/{art_id}/revert/1")
    expect(page.get_by_text(re.compile("also takes back: Tags"))).to_be_visible()
    live_server.shot(page, "relations-tags-revert-preview")
    page.get_by_role("button", name="Revert to version 1").click()
    expect(page.get_by_text(re.compile(r"Reverted .* to version 1"))).to_be_visible()
    with live_server.app.app_context():
        art = db.session.get(Article, art_id)
        assert art is not None and sorted(t.name for t in art.tags) == ["databases", "history"]


def test_edit_config_map_then_revert(logged_in_page: Page, live_server: LiveServer) -> None:
    """Change a value, remove a key, add one; per-key history; revert to 1."""
    page, base = logged_in_page, live_server.url
    cfg_id = _config(live_server)
    page.goto(f"{base}/admin/siteconfig/{cfg_id}/edit")
    page.get_by_label("Value of items_per_page").fill("25")
    page.get_by_label("Remove comments").check()
    page.get_by_label("New key 1", exact=True).fill("theme")
    page.get_by_label("Value of new key 1").fill('{"accent": "teal"}')
    live_server.shot(page, "relations-map-form")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".va-alert-success")).to_be_visible()
    expect(page.get_by_label("Value of theme")).to_have_value('{"accent": "teal"}')

    page.goto(f"{base}/admin/siteconfig/{cfg_id}/diff")
    expect(page.locator("tr.va-map-changed", has_text="items_per_page")).to_contain_text("25")
    live_server.shot(page, "relations-map-diff")
    page.get_by_role("link", name="items_per_page").first.click()
    rows = page.locator("table.va-key-history tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("25")
    live_server.shot(page, "relations-map-key-history")

    page.goto(f"{base}/admin/siteconfig/{cfg_id}/revert/1")
    page.get_by_role("button", name="Revert to version 1").click()
    expect(page.get_by_text(re.compile(r"Reverted .* to version 1"))).to_be_visible()
    with live_server.app.app_context():
        cfg = db.session.get(SiteConfig, cfg_id)
        assert cfg is not None
        assert dict(cfg.settings) == {"site_name": "Journey", "items_per_page": 10,
                                      "comments": True}
