"""Models, app factory and helpers for the admin's test modules (tests/test_admin_*.py)."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask, request
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from versioned_admin import Versioned, VersionedAdmin, VersionedRows


class Base(DeclarativeBase):
    """Declarative base of the admin test models."""


db = SQLAlchemy(model_class=Base)


class Status(enum.Enum):
    """An article's state."""

    DRAFT = "draft"
    PUBLISHED = "published"


class Author(Versioned, db.Model):  # type: ignore[name-defined,misc]
    """A writer; labelled by name."""

    __tablename__ = "t_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    email: Mapped[str] = mapped_column(String(120), unique=True)
    bio: Mapped[str | None] = mapped_column(Text)

    def __str__(self) -> str:
        return self.name


class Category(Versioned, db.Model):  # type: ignore[name-defined,misc]
    """No __str__: labelled by its name column."""

    __tablename__ = "t_category"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)


class Article(Versioned, db.Model):  # type: ignore[name-defined,misc]
    """One of every column type."""

    __tablename__ = "t_article"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[Status] = mapped_column(
        sa.Enum(Status, native_enum=False, length=20), default=Status.DRAFT
    )
    kind: Mapped[str | None] = mapped_column(
        sa.Enum("news", "opinion", name="t_kind", native_enum=False)
    )
    published_on: Mapped[dt.date | None]
    updated_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    rating: Mapped[float | None]
    price: Mapped[Decimal | None] = mapped_column(sa.Numeric(8, 2))
    views: Mapped[int] = mapped_column(default=0)
    is_featured: Mapped[bool] = mapped_column(default=False)
    meta: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    author_id: Mapped[int] = mapped_column(ForeignKey("t_author.id"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("t_category.id"))
    author: Mapped[Author] = relationship()
    category: Mapped[Category | None] = relationship()

    def __str__(self) -> str:
        return self.title


class Quote(VersionedRows, db.Model):  # type: ignore[name-defined,misc]
    """Rows strategy: every save is a new row."""

    __tablename__ = "t_quote"
    sku: Mapped[str] = mapped_column(String(20), primary_key=True)
    product: Mapped[str] = mapped_column(String(60))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))


class Note(db.Model):  # type: ignore[name-defined]
    """Not versioned at all."""

    __tablename__ = "t_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


def make_app(db_url: str, *, register: bool = True, **admin_options: Any) -> Flask:
    """A test app with the admin on /admin (open unless an access rule is given)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test",
        SQLALCHEMY_DATABASE_URI=db_url,
        TESTING=True,
        VERSIONED_ADMIN_OPEN="access" not in admin_options,
    )
    db.init_app(app)
    admin_options.setdefault("current_user", lambda: request.headers.get("X-User"))
    admin = VersionedAdmin(db=db, **admin_options)
    if register:
        admin.register(Author, search_columns=["name", "email"], default_sort="name")
        admin.register(Category)
        admin.register(
            Article,
            list_columns=["id", "title", "status", "author", "rating", "is_featured", "body"],
            search_columns=["title", "body"],
            filters=["status", "is_featured", "author", "published_on", "views", "updated_at"],
            default_sort="-id",
            labels={"is_featured": "Featured"},
        )
        admin.register(Quote)
        admin.register(Note)
    admin.init_app(app)
    app.extensions["test_admin"] = admin
    with app.app_context():
        db.create_all()
    return app


def drop(app: Flask) -> None:
    """Close sessions and drop everything (PostgreSQL waits forever on an open session)."""
    with app.app_context():
        db.session.remove()
        db.drop_all()
        for engine in db.engines.values():
            engine.dispose()


def standard_app(db_url: str) -> Iterator[Flask]:
    """The standard test app, dropped afterwards (``yield from`` it in an ``app`` fixture)."""
    application = make_app(db_url)
    yield application
    drop(application)


def seed(app: Flask) -> dict[str, Any]:
    """Two authors, a category, three articles, a quote and a note; returns their ids."""
    with app.app_context():
        ann = Author(name="Ann", email="ann@example.com")
        bob = Author(name="Bob", email="bob@example.com")
        cat = Category(name="Science")
        db.session.add_all([ann, bob, cat])
        db.session.flush()
        arts = [
            Article(
                title="Alpha",
                body="first body",
                author=ann,
                category=cat,
                rating=1.5,
                views=10,
                is_featured=True,
                published_on=dt.date(2024, 1, 2),
            ),
            Article(
                title="Beta 100%", body="x" * 300, author=bob, views=20, status=Status.PUBLISHED
            ),
            Article(title="Gamma_under", body=None, author=ann, views=30),
        ]
        db.session.add_all(arts)
        db.session.add(Quote(sku="SKU-1", product="Widget", price=Decimal("9.99")))
        db.session.add(Note(text="plain note"))
        db.session.commit()
        return {"ann": ann.id, "bob": bob.id, "cat": cat.id, "articles": [a.id for a in arts]}


_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient, url: str) -> str:
    """The CSRF token of the form on ``url``."""
    response = client.get(url)
    match = _CSRF.search(response.get_data(as_text=True))
    assert match, f"no csrf token on {url} ({response.status_code})"
    return match.group(1)


def base_version(html: str) -> str:
    """The hidden base_version of an edit form."""
    match = re.search(r'name="base_version" type="hidden" value="([^"]*)"', html)
    assert match, "no base_version field"
    return match.group(1)
