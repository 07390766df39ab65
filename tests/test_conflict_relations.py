"""The conflict page with tag (many-to-many) and map edits: choose per collection / map key.

Demo app, CSRF on, SQLite and PostgreSQL. "They" save through the ORM between the moment the
user opened the edit form and the moment they post it.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import Article, SiteConfig, Tag, create_app, db
from versioned_admin.admin import conflicts
from versioned_admin.versioning import get_live, latest_version, versions

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The seeded demo app with CSRF protection on."""
    monkeypatch.delenv("DEMO_ADMIN_USER", raising=False)
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    application = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "TESTING": True,
                              "SECRET_KEY": "test-secret"})
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A client signed in as the demo admin (through the CSRF-protected login form)."""
    c = app.test_client()
    token = fields(c.get("/login"))["csrf_token"]
    r = c.post("/login", data={"username": "admin", "password": "admin", "csrf_token": token})
    assert r.status_code == 302
    return c


def body(response: TestResponse) -> str:
    """The response as text."""
    return response.get_data(as_text=True)


def visible(response: TestResponse) -> str:
    """The visible text of a page, whitespace collapsed."""
    raw = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", body(response), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw)))


def fields(response: TestResponse) -> dict[str, Any]:
    """What a browser submits from the page's forms: inputs, textareas, selects (lists if many)."""
    page = body(response)
    data: dict[str, Any] = {}

    def put(name: str, value: str) -> None:
        if name in data:
            old = data[name]
            data[name] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            data[name] = value

    for m in re.finditer(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        put(m.group(1), html.unescape(m.group(2)).removeprefix("\r\n").removeprefix("\n"))
    for m in re.finditer(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        sel = re.search(r'<option[^>]*value="([^"]*)"[^>]*selected', m.group(2)) or re.search(
            r'<option selected[^>]*value="([^"]*)"', m.group(2))
        put(m.group(1), html.unescape(sel.group(1)) if sel else "")
    for m in re.finditer(r"<input[^>]*>", page):
        tag = m.group(0)
        name, value = re.search(r'name="([^"]+)"', tag), re.search(r'value="([^"]*)"', tag)
        if name is None or re.search(r'type="(submit|radio)"', tag):
            continue
        if 'type="checkbox"' in tag and " checked" not in tag:
            continue
        put(html.unescape(name.group(1)), html.unescape(value.group(1)) if value else "y")
    return data


def tag_ids(app: Flask, *names: str) -> list[str]:
    """Ids of demo tags by name."""
    with app.app_context():
        return [str(db.session.query(Tag).filter_by(name=n).one().id) for n in names]


def tag_names(app: Flask, art: int = 1) -> list[str]:
    """An article's live tags."""
    with app.app_context():
        return sorted(t.name for t in get_live(db.session, Article, art).tags)


def settings(app: Flask) -> dict[str, Any]:
    """The live demo site settings."""
    with app.app_context():
        return dict(get_live(db.session, SiteConfig, 1).settings)


def numbers(app: Flask, model: type, pk: int) -> list[int]:
    """Version numbers of a record, newest first."""
    with app.app_context():
        return [v.number for v in versions(db.session, model, pk, limit=100)]


def retag(app: Flask, *names: str, art: int = 1) -> None:
    """Someone else sets an article's tags (creating missing tags)."""
    with app.app_context():
        obj = get_live(db.session, Article, art)
        found = {t.name: t for t in db.session.query(Tag)}
        obj.tags = [found.get(n) or Tag(name=n) for n in names]
        db.session.commit()


def set_settings(app: Flask, **changes: Any) -> None:
    """Someone else changes the site settings (None removes a key)."""
    with app.app_context():
        cfg = get_live(db.session, SiteConfig, 1)
        for key, value in changes.items():
            if value is None:
                del cfg.settings[key]
            else:
                cfg.settings[key] = value
        db.session.commit()


def map_choice(key: str) -> str:
    """The radio name of a settings key's choice (a digest: keys may hold any character)."""
    return "choice-map-settings-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def resolve(client: FlaskClient, page: TestResponse, url: str, **choices: str) -> TestResponse:
    """Post the conflict page back with some choices (``choice-`` names as keyword values)."""
    data = fields(page)
    data.update(choices)
    return client.post(url, data=data)


def my_tag_edit(app: Flask, client: FlaskClient, *names: str, **columns: str) -> dict[str, Any]:
    """The article 1 edit form as opened now, with the tags (and columns) the user sets."""
    data = fields(client.get("/admin/article/1/edit"))
    data["rel-tags"] = tag_ids(app, *names)
    data.update(columns)
    return data


# -- tags ------------------------------------------------------------------------------------


def test_both_retagged_shows_base_theirs_yours_and_saves_nothing(app: Flask,
                                                                 client: FlaskClient) -> None:
    assert tag_names(app) == ["databases", "history", "python"]
    before = numbers(app, Article, 1)
    data = my_tag_edit(app, client, "databases", "history", "python", "flask")  # + flask
    retag(app, "databases", "python", "design")  # they: + design, − history
    r = client.post("/admin/article/1/edit", data=data)
    assert r.status_code == 409
    page, text = body(r), visible(r)
    assert "Someone else saved this record after you opened it" in text
    section = re.search(r'<section[^>]*aria-label="Tags".*?</section>', page, re.S)
    assert section is not None and "both changed" in section.group(0)
    tags = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", section.group(0))))
    base_no, their_no = before[0], before[0] + 1
    assert f"Base (version {base_no}) databases history python" in tags
    assert f"Theirs (latest, version {their_no}) databases +design −history python" in tags
    assert "Yours databases +flask history python" in tags
    assert "Theirs (databases, design, python)" in tags
    assert "Mine (databases, flask, history, python)" in tags
    assert "Both changes (databases, design, flask, python)" in tags
    assert 'name="choice-rel-tags"' in page
    # what the user ticked rides along in hidden fields; nothing is saved yet
    for tag_id in tag_ids(app, "databases", "history", "python", "flask"):
        assert f'name="mine-rel-tags" value="{tag_id}"' in page
    assert numbers(app, Article, 1) == [their_no, *before]
    assert tag_names(app) == ["databases", "design", "python"]


@pytest.mark.parametrize(("choice", "expected"), [
    ("mine", ["databases", "flask", "history", "python"]),
    ("theirs", ["databases", "design", "python"]),
    ("both", ["databases", "design", "flask", "python"]),
])
def test_tag_choice_is_saved_with_the_other_fields(app: Flask, client: FlaskClient, choice: str,
                                                   expected: list[str]) -> None:
    data = my_tag_edit(app, client, "databases", "history", "python", "flask",
                       title="My title")
    retag(app, "databases", "python", "design")
    page = client.post("/admin/article/1/edit", data=data)
    theirs = numbers(app, Article, 1)[0]
    r = resolve(client, page, "/admin/article/1/resolve", **{"choice-rel-tags": choice})
    assert r.status_code == 302, visible(r)[:3000]
    assert tag_names(app) == expected
    with app.app_context():
        art = get_live(db.session, Article, 1)
        assert art.title == "My title"  # only I changed the title: mine is kept
        v = latest_version(db.session, Article, 1)
        assert v is not None and v.number == theirs + 1  # one save, one version
        assert sorted(v.state["tags"]) == sorted(int(i) for i in tag_ids(app, *expected))


def test_only_my_tags_changed_are_kept_with_their_title(app: Flask, client: FlaskClient) -> None:
    """The case the page used to drop: they changed a column, I changed only the tags."""
    data = my_tag_edit(app, client, "history", "newsroom")  # − databases − python + newsroom
    with app.app_context():
        get_live(db.session, Article, 1).title = "Their title"
        db.session.commit()
    r = client.post("/admin/article/1/edit", data=data)
    assert r.status_code == 409
    section = re.search(r'<section[^>]*aria-label="Tags".*?</section>', body(r), re.S)
    assert section is not None and "only you changed it: yours is kept" in section.group(0)
    assert 'name="choice-rel-tags"' not in body(r)
    r = resolve(client, r, "/admin/article/1/resolve")
    assert r.status_code == 302, visible(r)[:3000]
    assert tag_names(app) == ["history", "newsroom"]
    with app.app_context():
        assert get_live(db.session, Article, 1).title == "Their title"


def test_only_their_tags_changed_are_kept(app: Flask, client: FlaskClient) -> None:
    data = fields(client.get("/admin/article/1/edit"))
    data["title"] = "Mine"
    retag(app, "design")
    r = client.post("/admin/article/1/edit", data=data)
    section = re.search(r'<section[^>]*aria-label="Tags".*?</section>', body(r), re.S)
    assert section is not None and "only they changed it: theirs is kept" in section.group(0)
    assert resolve(client, r, "/admin/article/1/resolve").status_code == 302
    assert tag_names(app) == ["design"]  # my unchanged ticks did not put the old tags back
    with app.app_context():
        assert get_live(db.session, Article, 1).title == "Mine"


def test_tag_choice_is_required(app: Flask, client: FlaskClient) -> None:
    data = my_tag_edit(app, client, "history")
    retag(app, "design", "python", "databases", "history", "flask")
    page = client.post("/admin/article/1/edit", data=data)
    before = numbers(app, Article, 1)
    r = resolve(client, page, "/admin/article/1/resolve")
    assert r.status_code == 422 and "Choose whose value to keep for: Tags" in visible(r)
    assert numbers(app, Article, 1) == before
    # the typed input is still carried on the page that asks again
    assert f'name="mine-rel-tags" value="{tag_ids(app, "history")[0]}"' in body(r)


def test_large_table_id_list_is_read_too(app: Flask, client: FlaskClient,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("versioned_admin.admin.forms.SELECT_LIMIT", 2)
    data = fields(client.get("/admin/article/1/edit"))
    assert isinstance(data["rel-tags"], str)  # one text input of ids
    data["rel-tags"] = ", ".join(tag_ids(app, "flask", "design"))
    retag(app, "newsroom")
    page = client.post("/admin/article/1/edit", data=data)
    assert page.status_code == 409 and "+flask" in visible(page)
    r = resolve(client, page, "/admin/article/1/resolve", **{"choice-rel-tags": "mine"})
    assert r.status_code == 302, visible(r)[:3000]
    assert tag_names(app) == ["design", "flask"]


# -- maps ------------------------------------------------------------------------------------


def my_settings_edit(client: FlaskClient, values: dict[str, str], remove: tuple[str, ...] = (),
                     new: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings edit form as opened now, with the user's changes to its rows."""
    data = fields(client.get("/admin/siteconfig/1/edit"))
    rows = {v: k.rsplit("-", 1)[1] for k, v in data.items() if k.startswith("rel-settings-key-")}
    for key, value in values.items():
        data[f"rel-settings-val-{rows[key]}"] = value
    for key in remove:
        data[f"rel-settings-del-{rows[key]}"] = "1"
    for j, (key, value) in enumerate((new or {}).items()):
        data[f"rel-settings-newkey-{j}"] = key
        data[f"rel-settings-newval-{j}"] = value
    return data


@pytest.mark.parametrize("choice", ["mine", "theirs"])
def test_map_keys_both_changed_are_chosen_key_by_key(app: Flask, client: FlaskClient,
                                                     choice: str) -> None:
    assert settings(app) == {"site_name": "The Daily Diff", "items_per_page": 30,
                             "comments": False, "theme": {"accent": "#2b6cb0"}}
    data = my_settings_edit(client, {"items_per_page": "50"}, remove=("comments",),
                            new={"beta": "true"})
    set_settings(app, items_per_page=40, theme={"accent": "teal"})
    before = numbers(app, SiteConfig, 1)
    r = client.post("/admin/siteconfig/1/edit", data=data)
    assert r.status_code == 409
    text = visible(r)
    assert "Settings 1 key changed on both sides 4 keys changed since version" in text
    assert "items_per_page 30 40 50 Keep for Settings, items_per_page: Theirs Mine" in text
    assert "comments false false (removed) yours" in text
    assert "beta (not set) (not set) true yours" in text
    assert 'theme {"accent": "#2b6cb0"} {"accent": "teal"} {"accent": "#2b6cb0"} theirs' in text
    assert body(r).count('name="choice-map-settings-') == 2  # one radio pair: items_per_page
    assert f'name="{map_choice("items_per_page")}"' in body(r)
    assert 'name="mine-rel-settings-newkey-0" value="beta"' in body(r)
    assert numbers(app, SiteConfig, 1) == before
    r = resolve(client, r, "/admin/siteconfig/1/resolve", **{map_choice("items_per_page"): choice})
    assert r.status_code == 302, visible(r)[:3000]
    assert settings(app) == {"site_name": "The Daily Diff",
                             "items_per_page": 50 if choice == "mine" else 40,
                             "beta": True, "theme": {"accent": "teal"}}
    assert numbers(app, SiteConfig, 1) == [before[0] + 1, *before]


def test_map_key_they_removed_and_i_changed(app: Flask, client: FlaskClient) -> None:
    data = my_settings_edit(client, {"site_name": "Mine"})
    set_settings(app, site_name=None)
    r = client.post("/admin/siteconfig/1/edit", data=data)
    assert "site_name The Daily Diff (removed) Mine Keep for" in visible(r)
    missing = resolve(client, r, "/admin/siteconfig/1/resolve")
    assert missing.status_code == 422
    assert "Choose whose value to keep for: Settings: site_name" in visible(missing)
    ok = resolve(client, missing, "/admin/siteconfig/1/resolve",
                 **{map_choice("site_name"): "theirs"})
    assert ok.status_code == 302 and "site_name" not in settings(app)


@pytest.mark.parametrize("choice", ["mine", "theirs"])
def test_a_key_we_both_added_is_a_choice_not_a_form_error(app: Flask, client: FlaskClient,
                                                          choice: str) -> None:
    data = my_settings_edit(client, {}, new={"banner": "Mine"})
    set_settings(app, banner="Theirs")
    r = client.post("/admin/siteconfig/1/edit", data=data)
    assert r.status_code == 409
    assert "already set" not in visible(r)
    assert f'name="{map_choice("banner")}"' in body(r)
    ok = resolve(client, r, "/admin/siteconfig/1/resolve", **{map_choice("banner"): choice})
    assert ok.status_code == 302, visible(ok)[:2000]
    assert settings(app)["banner"] == ("Mine" if choice == "mine" else "Theirs")


def test_a_key_already_on_the_form_is_still_refused(client: FlaskClient) -> None:
    data = my_settings_edit(client, {}, new={"site_name": "dup"})
    r = client.post("/admin/siteconfig/1/edit", data=data)
    assert r.status_code == 422 and "already set; change its row above" in visible(r)


# -- escaping, CSRF, second conflicts ----------------------------------------------------------


def test_tag_names_and_map_values_are_escaped(app: Flask, client: FlaskClient) -> None:
    data = my_tag_edit(app, client, "flask")
    retag(app, EVIL, "python")
    r = client.post("/admin/article/1/edit", data=data)
    assert r.status_code == 409 and "+" + EVIL in visible(r)
    assert EVIL not in body(r) and "&lt;script&gt;alert(1)&lt;/script&gt;" in body(r)

    data = my_settings_edit(client, {"site_name": EVIL}, new={'<b k="1">': EVIL})
    set_settings(app, site_name='"><img src=x onerror=alert(2)>')
    r = client.post("/admin/siteconfig/1/edit", data=data)
    page = body(r)
    assert r.status_code == 409 and EVIL in visible(r) and '<b k="1">' in visible(r)
    assert "<script>" not in page and "<img" not in page and '<b k="1">' not in page


def test_resolve_without_csrf_keeps_everything(app: Flask, client: FlaskClient) -> None:
    data = my_tag_edit(app, client, "flask")
    retag(app, "design")
    page = client.post("/admin/article/1/edit", data=data)
    before = numbers(app, Article, 1)
    posted = fields(page)
    posted.pop("csrf_token")
    posted["choice-rel-tags"] = "mine"
    # the demo's app-wide CSRFProtect refuses it before the admin sees it
    r = client.post("/admin/article/1/resolve", data=posted)
    assert r.status_code == 400 and "Form expired" in visible(r)
    assert numbers(app, Article, 1) == before and tag_names(app) == ["design"]
    # a host without app-wide protection: the admin's own check keeps the page and the input
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    r = client.post("/admin/article/1/resolve", data=posted)
    assert r.status_code == 400 and "security token" in visible(r)
    assert 'value="mine" required checked' in body(r)  # the choice is kept too
    assert f'name="mine-rel-tags" value="{tag_ids(app, "flask")[0]}"' in body(r)
    assert numbers(app, Article, 1) == before and tag_names(app) == ["design"]


def test_changed_again_before_resolving_is_a_new_conflict(app: Flask,
                                                          client: FlaskClient) -> None:
    data = my_tag_edit(app, client, "flask")
    retag(app, "design")
    page = client.post("/admin/article/1/edit", data=data)
    retag(app, "design", "newsroom")  # a third save while the user was choosing
    before = numbers(app, Article, 1)
    r = resolve(client, page, "/admin/article/1/resolve", **{"choice-rel-tags": "mine"})
    assert r.status_code == 409 and "changed again" in visible(r)
    assert f"Theirs (latest, version {before[0]})" in visible(r) and "+newsroom" in visible(r)
    assert numbers(app, Article, 1) == before
    r = resolve(client, r, "/admin/article/1/resolve", **{"choice-rel-tags": "both"})
    assert r.status_code == 302, visible(r)[:3000]
    assert tag_names(app) == ["design", "flask", "newsroom"]


def test_a_save_racing_the_resolution_is_a_new_conflict(app: Flask, client: FlaskClient,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone commits between the resolve view's version check and its commit."""
    data = my_settings_edit(client, {"items_per_page": "50"})
    set_settings(app, items_per_page=40)
    page = client.post("/admin/siteconfig/1/edit", data=data)
    real = conflicts.apply_relation_choices

    def racing(obj: Any, found: Any) -> bool:
        set_settings(app, items_per_page=60)  # a new app context: another session, connection
        return real(obj, found)

    monkeypatch.setattr(conflicts, "apply_relation_choices", racing)
    before = numbers(app, SiteConfig, 1)
    r = resolve(client, page, "/admin/siteconfig/1/resolve",
                **{map_choice("items_per_page"): "mine"})
    assert r.status_code == 409 and "changed again" in visible(r)
    assert "items_per_page 30 60 50" in visible(r)
    assert numbers(app, SiteConfig, 1) == [before[0] + 1, *before]  # theirs only
    assert settings(app)["items_per_page"] == 60
