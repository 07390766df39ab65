"""The admin's forms and history pages for a rows-strategy model with a many-to-many collection."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from test_engine_rows_collections import Base, Quote, Tag
from test_relations_ui import form_fields, page_text

from versioned_admin import VersionedAdmin
from versioned_admin.versioning import disable_versioning, versions


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A fresh database (the admin versions its sessions)."""
    engine = sa.create_engine(db_url)
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    yield maker
    disable_versioning(maker)
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def client(factory: sessionmaker[Session]) -> FlaskClient:
    """An open admin over the quotes and tags, with one quote tagged "a"."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="t", TESTING=True, WTF_CSRF_ENABLED=False,
                      VERSIONED_ADMIN_OPEN=True)
    admin = VersionedAdmin(session=factory)
    admin.register(Quote, form_columns=["title", "tags"])
    admin.register(Tag, form_columns=["name"])
    admin.init_app(app)
    with factory() as s:
        tags = [Tag(id=1, name="a"), Tag(id=2, name="b")]
        s.add_all([*tags, Quote(id=1, title="q", tags=[tags[0]])])
        s.commit()
    return app.test_client()


def test_tagging_a_rows_record_in_the_form_makes_its_next_row(
    client: FlaskClient, factory: sessionmaker[Session]
) -> None:
    data = form_fields(client.get("/admin/quote/1/edit").get_data(as_text=True))
    assert data["rel-tags"] == ["1"]
    data["rel-tags"] = ["1", "2"]
    response = client.post("/admin/quote/1/edit", data=data)
    assert response.status_code == 302, page_text(response)[:1500]
    with factory() as s:
        latest, first = versions(s, Quote, 1)[:2]
        assert latest.number == 2 and latest.changed == ("tags",)
        assert latest.state["tags"] == [1, 2] and first.state["tags"] == [1]
    timeline = page_text(client.get("/admin/quote/1/history"))
    assert "Tags: +b" in timeline
    diff = client.get("/admin/quote/1/diff?from=1&to=2")
    assert diff.status_code == 200 and "+b" in page_text(diff)
    preview = client.get("/admin/quote/1/revert/1")
    assert preview.status_code == 200 and "Tags" in page_text(preview)
    seen = re.search(r'name="seen_version"[^>]*value="(\d+)"', preview.get_data(as_text=True))
    assert seen is not None
    assert client.post("/admin/quote/1/revert/1",
                       data={"seen_version": seen.group(1)}).status_code == 302
    with factory() as s:
        latest = versions(s, Quote, 1)[0]
        assert latest.number == 3 and latest.state["tags"] == [1]
        assert latest.reverted_from == 1
