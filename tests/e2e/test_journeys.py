"""User journeys through the demo app in a real Chromium: sign in, create, find, edit, delete."""

from __future__ import annotations

import re

import pytest
from e2e_support import ADMIN_PASSWORD, ADMIN_USER, LiveServer
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app import Article, db
from versioned_admin.versioning import deleted_records, latest_version

pytestmark = pytest.mark.e2e

NEW_TITLE = "Browsers keep everything"
TITLE = re.compile(r"^Title")  # the record's own field, not an inline row's ("Source 3: Title")
NEW_SLUG = "browsers-keep-everything"
NEW_BODY = (
    "A paragraph typed into a real browser.\n\n"
    "A second paragraph, so the text area holds more than one line."
)


def _article_by_slug(live_server: LiveServer, slug: str) -> Article | None:
    """The live article with ``slug``, read straight from the database."""
    with live_server.app.app_context():
        art = db.session.scalar(select(Article).where(Article.slug == slug))
        if art is not None:
            db.session.expunge(art)
        return art


def test_sign_in_journey(page: Page, live_server: LiveServer) -> None:
    """Anonymous -> login page; a wrong password is refused generically; then in and out again."""
    page.goto(f"{live_server.url}/admin/article/")
    expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)admin(%2F|/)article(%2F|/)$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    live_server.shot(page, "login")

    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password.")
    expect(page.get_by_label("Username")).to_have_value(ADMIN_USER)  # kept
    expect(page.get_by_label("Password")).to_have_value("")  # not echoed back
    live_server.shot(page, "login-error")

    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/admin/article/")  # back where we were going
    expect(page.get_by_role("heading", name="Articles")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/login")
    expect(page.get_by_text("You have been signed out.")).to_be_visible()
    page.goto(f"{live_server.url}/admin/")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_home_page(page: Page, live_server: LiveServer) -> None:
    """The demo's home page links to the admin."""
    page.goto(f"{live_server.url}/")
    link = page.get_by_role("link", name="Open the admin")
    expect(link).to_be_visible()
    live_server.shot(page, "home")
    link.click()
    expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)admin(%2F|/)$"))


def test_overview_and_theme(logged_in_page: Page, live_server: LiveServer) -> None:
    """The admin's overview wears the demo's brand and colours (templates/ and static/ override)."""
    page = logged_in_page
    expect(page.locator(".va-brand")).to_contain_text("Newsroom")
    for label in ("Articles", "Authors", "Categories", "Price quotes"):
        expect(page.locator(".va-sidebar").get_by_role("link", name=label)).to_be_visible()
    accent = page.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--va-accent').trim()"
    )
    assert accent == "#b4441b"
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(248, 243, 236)", bg  # --va-bg from static/theme.css
    live_server.shot(page, "index")


def test_record_journey(logged_in_page: Page, live_server: LiveServer) -> None:
    """Create an article, find it in the list and by search, edit it (error first), delete it."""
    page = logged_in_page
    url = live_server.url
    problems: list[str] = []  # checked at the end, so one finding does not hide the rest

    # -- list
    page.locator(".va-sidebar").get_by_role("link", name="Articles").click()
    expect(page).to_have_url(f"{url}/admin/article/")
    expect(page.get_by_role("heading", name="Articles")).to_be_visible()
    expect(page.get_by_role("link", name="The quiet art of keeping every version")).to_be_visible()
    live_server.shot(page, "list")

    # -- create
    page.get_by_role("link", name="New article").click()
    expect(page.get_by_role("heading", name="New article")).to_be_visible()
    page.get_by_label(TITLE).fill(NEW_TITLE)
    page.get_by_label("Slug").fill(NEW_SLUG)
    page.get_by_label("Author").select_option(label="Ada Quill")
    page.get_by_label("Category").select_option(label="Science")
    page.get_by_label("Status").select_option(label="draft")
    page.get_by_label("Rating").fill("4.4")
    page.get_by_label("Featured").check()
    page.get_by_label("Body").fill(NEW_BODY)
    page.get_by_label("Metadata").fill('{"source": "e2e", "tags": ["browser"]}')
    page.get_by_label(re.compile("reason", re.I)).fill("Written by the browser test")
    live_server.shot(page, "form-new")
    page.get_by_role("button", name="Save", exact=True).click()

    # -- see it in the list
    expect(page).to_have_url(re.compile(rf"{url}/admin/article/(\?.*)?$"))
    expect(page.get_by_role("link", name=NEW_TITLE)).to_be_visible()
    created = _article_by_slug(live_server, NEW_SLUG)
    assert created is not None
    if created.body != NEW_BODY:
        problems.append(f"body stored as {created.body!r}: browsers send CRLF, expected LF")
    assert created.meta == {"source": "e2e", "tags": ["browser"]}
    assert created.is_featured and created.rating == pytest.approx(4.4)
    live_server.shot(page, "list-after-create")

    # -- search for it
    page.get_by_role("searchbox").fill("keep everything")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"[?&]q=keep\+everything"))
    rows = page.locator("table.va-list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(NEW_TITLE)
    live_server.shot(page, "search")

    # -- edit, with validation errors first
    page.get_by_role("link", name=NEW_TITLE).click()
    expect(page.get_by_role("heading", name=NEW_TITLE)).to_be_visible()
    page.get_by_label(TITLE).fill("")
    page.get_by_label("Slug").fill("a-field-guide-to-diffs")  # taken by a seeded article
    page.get_by_label("Rating").fill("4.9")
    page.get_by_role("button", name="Save", exact=True).click()
    title_field = page.locator(".va-field", has=page.get_by_label(TITLE))
    slug_field = page.locator(".va-field", has=page.get_by_label("Slug"))
    taken = re.compile("already|unique|taken|exists", re.I)
    expect(title_field.locator(".va-errors")).to_contain_text("required")
    expect(page.get_by_label(TITLE)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Slug")).to_have_value("a-field-guide-to-diffs")  # input kept
    expect(page.get_by_label("Rating")).to_have_value("4.9")
    expect(page.get_by_label("Body")).to_have_value(NEW_BODY)
    live_server.shot(page, "form-errors")
    if not slug_field.locator(".va-errors").count():
        problems.append("a duplicate slug is reported only once the other fields are valid")
        page.get_by_label(TITLE).fill(NEW_TITLE + ", revised")
        page.get_by_role("button", name="Save", exact=True).click()
    expect(slug_field.locator(".va-errors")).to_contain_text(taken)
    expect(page.get_by_label("Slug")).to_have_attribute("aria-invalid", "true")
    live_server.shot(page, "form-errors-unique")
    unchanged = _article_by_slug(live_server, NEW_SLUG)
    assert unchanged is not None and unchanged.title == NEW_TITLE and unchanged.rating == 4.4

    page.get_by_label(TITLE).fill(NEW_TITLE + ", revised")
    page.get_by_label("Slug").fill(NEW_SLUG)
    page.get_by_label(re.compile("reason", re.I)).fill("Sharper headline")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("link", name=NEW_TITLE + ", revised")).to_be_visible()
    edited = _article_by_slug(live_server, NEW_SLUG)
    assert edited is not None and edited.rating == 4.9
    with live_server.app.app_context():
        version = latest_version(db.session, Article, (edited.id,))
        assert version is not None and version.number == 2
        assert version.changeset.user == ADMIN_USER
        assert version.changeset.reason == "Sharper headline"
        # the body was not touched: a browser's CRLF line breaks must not count as a change
        if set(version.changed) != {"title", "rating"}:
            problems.append(f"an edit of title and rating recorded changes {version.changed}")

    # -- delete, with the confirmation step
    page.get_by_role("row", name=re.compile(NEW_TITLE)).get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Delete .*\?$"))).to_be_visible()
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    live_server.shot(page, "delete-confirm")
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(rf"{url}/admin/article/(\?.*)?$"))
    expect(page.get_by_role("link", name=NEW_TITLE + ", revised")).to_have_count(0)
    live_server.shot(page, "list-after-delete")
    assert _article_by_slug(live_server, NEW_SLUG) is None
    with live_server.app.app_context():
        gone = [v for v in deleted_records(db.session, Article) if v.pk == (edited.id,)]
        assert len(gone) == 1 and gone[0].number == 3 and gone[0].changeset.user == ADMIN_USER
    assert not problems, problems


def test_rows_strategy_edit(logged_in_page: Page, live_server: LiveServer) -> None:
    """Price quotes use the rows strategy: editing one in the browser keeps the old row."""
    page = logged_in_page
    page.locator(".va-sidebar").get_by_role("link", name="Price quotes").click()
    expect(page.get_by_role("heading", name="Price quotes")).to_be_visible()
    page.get_by_role("link", name="ARCHIVE", exact=True).click()
    page.get_by_label("Price").fill("5.25")
    page.get_by_label(re.compile("reason", re.I)).fill("New archive price")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("row", name=re.compile("ARCHIVE"))).to_contain_text("5.25")
    live_server.shot(page, "list-rows-strategy")


def test_narrow_screen(logged_in_page: Page, live_server: LiveServer) -> None:
    """On a phone-sized screen the pages do not scroll sideways (wide tables scroll in place)."""
    page = logged_in_page
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = "document.documentElement.scrollWidth - window.innerWidth"
    wide: list[str] = []
    for path, name in (
        ("/admin/", "narrow-index"),
        ("/admin/article/", "narrow-list"),
        ("/admin/article/new", "narrow-form"),
        ("/logout-form", ""),
        ("/login", "narrow-login"),
    ):
        if not name:  # sign out, then look at the login page
            page.get_by_role("button", name="Sign out").click()
            continue
        page.goto(f"{live_server.url}{path}")
        live_server.shot(page, name)
        if (extra := page.evaluate(overflow)) > 0:
            wide.append(f"{path} is {extra}px too wide")
    assert not wide, wide
