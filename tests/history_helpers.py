"""Helpers shared by the history page tests (tests/test_history_*.py)."""

from __future__ import annotations

from typing import Any

from admin_fixtures import Article, csrf_token, db
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from versioned_admin.versioning import versions


def text(response: TestResponse) -> str:
    """The response body as text."""
    return response.get_data(as_text=True)


def edit(app: Flask, model: type, pk: Any, user: str | None = None, **values: Any) -> None:
    """Change a record directly through the ORM (as someone else would)."""
    with app.app_context():
        obj = db.session.get(model, pk)
        for key, value in values.items():
            setattr(obj, key, value)
        db.session.commit()


def numbers(app: Flask, model: type, pk: Any) -> list[int]:
    """The record's version numbers, newest first."""
    with app.app_context():
        return [v.number for v in versions(db.session, model, pk, limit=1000)]


def edited_article(app: Flask, art_id: int) -> None:
    """Three more versions of an article: title, body, title again."""
    edit(app, Article, art_id, title="Alpha two")
    edit(app, Article, art_id, body="first body\nsecond line")
    edit(app, Article, art_id, title="Alpha three")


def post_form(client: FlaskClient, url: str, form_url: str, **data: str) -> TestResponse:
    """POST to ``url`` with a CSRF token taken from ``form_url``."""
    return client.post(url, data={"csrf_token": csrf_token(client, form_url), **data})
