"""Admin and history UI for collections and versioned maps (demo app, SQLite + PostgreSQL)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import Article, SiteConfig, Tag, create_app, db
from versioned_admin.versioning import get_live, key_history, latest_version, versions


@pytest.fixture
def app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The seeded demo app, CSRF off."""
    monkeypatch.delenv("DEMO_ADMIN_USER", raising=False)
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    application = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "TESTING": True,
                              "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test-secret"})
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A client logged in as the demo admin."""
    c = app.test_client()
    assert c.post("/login", data={"username": "admin", "password": "admin"}).status_code == 302
    return c


def page_text(response: Any) -> str:
    """The visible text of a page, whitespace collapsed."""
    raw = response.get_data(as_text=True)
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", raw, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def form_fields(page: str) -> dict[str, Any]:
    """The values a browser would submit from the page's form (checkboxes as lists)."""
    data: dict[str, Any] = {}
    for m in re.finditer(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        data[m.group(1)] = html.unescape(m.group(2)).removeprefix("\r\n").removeprefix("\n")
    for m in re.finditer(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        sel = re.search(r'<option[^>]*value="([^"]*)"[^>]*selected', m.group(2)) or re.search(
            r'<option selected[^>]*value="([^"]*)"', m.group(2))
        data[m.group(1)] = html.unescape(sel.group(1)) if sel else ""
    for m in re.finditer(r"<input[^>]*>", page):
        tag = m.group(0)
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name is None:
            continue
        val = html.unescape(value.group(1)) if value else "y"
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                data.setdefault(name.group(1), []).append(val)
        else:
            data[name.group(1)] = val
    return data


def tag_ids(app: Flask, *names: str) -> list[str]:
    """Ids of demo tags by name."""
    with app.app_context():
        return [str(db.session.query(Tag).filter_by(name=n).one().id) for n in names]


def test_editing_tags_makes_a_version_listing_them(app: Flask, client: FlaskClient) -> None:
    edit = client.get("/admin/article/1/edit")
    assert 'name="rel-tags"' in edit.get_data(as_text=True)
    data = form_fields(edit.get_data(as_text=True))
    data["rel-tags"] = tag_ids(app, "databases", "flask", "newsroom")
    data["change_reason"] = "retag"
    r = client.post("/admin/article/1/edit", data=data)
    assert r.status_code == 302, page_text(r)[:2000]
    with app.app_context():
        v = latest_version(db.session, Article, 1)
        assert v is not None and v.changed == ("tags",)
        wanted = tag_ids(app, "databases", "flask", "newsroom")
        assert sorted(v.state["tags"]) == sorted(int(i) for i in wanted)
    timeline = page_text(client.get("/admin/article/1/history"))
    assert "Tags: +flask +newsroom −history −python" in timeline
    diff = page_text(client.get(f"/admin/article/1/diff?to={v.number}"))
    assert "+flask" in diff and "−history" in diff and "1 unchanged" in diff
    # saving the same tags again is no change
    data = form_fields(client.get("/admin/article/1/edit").get_data(as_text=True))
    client.post("/admin/article/1/edit", data=data)
    with app.app_context():
        assert latest_version(db.session, Article, 1).number == v.number  # type: ignore[union-attr]


def test_unknown_tag_id_is_refused(app: Flask, client: FlaskClient) -> None:
    data = form_fields(client.get("/admin/article/1/edit").get_data(as_text=True))
    data["rel-tags"] = ["999999"]
    r = client.post("/admin/article/1/edit", data=data)
    assert r.status_code == 422 and "There is no record with id 999999" in page_text(r)


def test_map_edit_and_per_key_history(app: Flask, client: FlaskClient) -> None:
    page = client.get("/admin/siteconfig/1/edit").get_data(as_text=True)
    data = form_fields(page)
    keys = {v: k.rsplit("-", 1)[1] for k, v in data.items() if "-key-" in k}
    data[f"rel-settings-val-{keys['items_per_page']}"] = "50"
    data[f"rel-settings-del-{keys['comments']}"] = "1"
    data["rel-settings-newkey-0"] = "beta"
    data["rel-settings-newval-0"] = '"42"'
    data["rel-settings-newkey-1"] = "<b>x</b>"
    data["rel-settings-newval-1"] = "<script>alert(1)</script>"
    r = client.post("/admin/siteconfig/1/edit", data=data)
    assert r.status_code == 302, page_text(r)[:2000]
    with app.app_context():
        cfg = get_live(db.session, SiteConfig, 1)
        assert cfg.settings["items_per_page"] == 50 and cfg.settings["beta"] == "42"
        assert "comments" not in cfg.settings
        hist = key_history(db.session, SiteConfig, 1, "items_per_page")
        assert [h.value for h in hist] == [20, 30, 50]
        number = versions(db.session, SiteConfig, 1)[0].number
    edit = client.get("/admin/siteconfig/1/edit").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in edit and "&lt;script&gt;" in edit
    key_page = client.get("/admin/siteconfig/1/map/settings/items_per_page")
    text = page_text(key_page)
    assert key_page.status_code == 200
    assert "Current value: 50" in text and "admin" in text
    assert text.index("#3") < text.index("#2") < text.index("#1")
    diff = page_text(client.get(f"/admin/siteconfig/1/diff?to={number}"))
    assert "items_per_page 30 50" in diff and "beta (not set) 42" in diff
    assert "comments false (removed)" in diff
    timeline = page_text(client.get("/admin/siteconfig/1/history"))
    assert "+<b>x</b>, +beta, −comments, items_per_page: 30 → 50" in timeline
    assert client.get("/admin/siteconfig/1/map/nosuch/x").status_code == 404


def test_bad_map_rows_are_refused(client: FlaskClient) -> None:
    data = form_fields(client.get("/admin/siteconfig/1/edit").get_data(as_text=True))
    data["rel-settings-newkey-0"] = "site_name"
    data["rel-settings-newval-0"] = "dup"
    data["rel-settings-newkey-1"] = ""
    data["rel-settings-newval-1"] = "no key"
    r = client.post("/admin/siteconfig/1/edit", data=data)
    text = page_text(r)
    assert r.status_code == 422
    assert "already set" in text and "Give the new value a key." in text


def test_revert_with_relations_restores_tags(app: Flask, client: FlaskClient) -> None:
    # the seed: v2 tagged databases/flask/history, v3 swapped flask for python
    preview = client.get("/admin/article/1/revert/2")
    text = page_text(preview)
    assert preview.status_code == 200
    assert "also takes back: Tags" in text and "+flask" in text and "−python" in text
    seen = re.search(r'name="seen_version"[^>]*value="(\d+)"', preview.get_data(as_text=True))
    assert seen is not None
    r = client.post("/admin/article/1/revert/2", data={"seen_version": seen.group(1)})
    assert r.status_code == 302, page_text(r)[:2000]
    with app.app_context():
        art = get_live(db.session, Article, 1)
        assert sorted(t.name for t in art.tags) == ["databases", "flask", "history"]
        v = latest_version(db.session, Article, 1)
        assert v is not None and v.changed == ("tags",) and v.reverted_from == 2
    assert "reverted to version 2" in page_text(client.get("/admin/article/1/history"))


def test_revert_restores_the_map(app: Flask, client: FlaskClient) -> None:
    preview = client.get("/admin/siteconfig/1/revert/1")
    text = page_text(preview)
    assert "items_per_page 30 20" in text
    seen = re.search(r'name="seen_version"[^>]*value="(\d+)"', preview.get_data(as_text=True))
    assert seen is not None
    r = client.post("/admin/siteconfig/1/revert/1", data={"seen_version": seen.group(1)})
    assert r.status_code == 302
    with app.app_context():
        assert get_live(db.session, SiteConfig, 1).settings["items_per_page"] == 20


def test_tag_form_lists_articles_and_large_tables_take_ids(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "rel-articles" in client.get("/admin/tag/1/edit").get_data(as_text=True)
    monkeypatch.setattr("versioned_admin.admin.forms.SELECT_LIMIT", 2)
    page = client.get("/admin/article/1/edit").get_data(as_text=True)
    assert 'type="text" name="rel-tags"' in page
    data = form_fields(page)
    data["rel-tags"] = ", ".join(tag_ids(app, "design", "python"))
    r = client.post("/admin/article/1/edit", data=data)
    assert r.status_code == 302
    with app.app_context():
        assert sorted(t.name for t in get_live(db.session, Article, 1).tags) == ["design", "python"]
    data["rel-tags"] = "abc"
    data["base_version"] = str(int(data["base_version"]) + 1)
    assert "is not a valid id" in page_text(client.post("/admin/article/1/edit", data=data))
