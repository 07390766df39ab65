"""Demo host app for versioned_admin: a small newsroom with authors, articles and price quotes.

Run it with ``python app.py`` (http://127.0.0.1:5000) or ``flask --app app run``.
Log in as ``admin`` / ``admin`` (override with ``DEMO_ADMIN_USER`` / ``DEMO_ADMIN_PASSWORD``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import logging
import os
import secrets
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import click
import sqlalchemy as sa
from flask import (
    Flask,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import ForeignKey, String, Text, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response as BaseResponse
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from versioned_admin import VersionedAdmin
from versioned_admin.versioning import (
    Versioned,
    VersionedMap,
    VersionedRows,
    enable_versioning,
    get_live,
    set_reason,
    set_user,
)

log = logging.getLogger(__name__)

ROLES = ("admin", "editor", "viewer")
"""admin: everything; editor: create/edit (no delete, no revert); viewer: may log in, no admin."""


class Base(DeclarativeBase):
    """Declarative base of the demo models."""


db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()
login_manager = LoginManager()


# --------------------------------------------------------------------------- models


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    """A person who may log in to the demo. Not versioned, not shown in the admin."""

    __tablename__ = "demo_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="editor")

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<User {self.username!r}>"


class ArticleStatus(enum.Enum):
    """Publication state of an article."""

    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"

    def __str__(self) -> str:
        return self.value


class Author(Versioned, db.Model):  # type: ignore[name-defined]
    """Someone who writes articles."""

    __tablename__ = "author"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(255), unique=True)
    bio: Mapped[str | None] = mapped_column(Text)

    articles: Mapped[list[Article]] = relationship(back_populates="author")

    def __str__(self) -> str:
        return self.name


class Category(Versioned, db.Model):  # type: ignore[name-defined]
    """A section of the site an article belongs to."""

    __tablename__ = "category"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str | None] = mapped_column(Text)

    articles: Mapped[list[Article]] = relationship(back_populates="category")

    def __str__(self) -> str:
        return self.name


article_tag = sa.Table(
    "article_tag",
    Base.metadata,
    sa.Column("article_id", ForeignKey("article.id"), primary_key=True),
    sa.Column("tag_id", ForeignKey("tag.id"), primary_key=True),
)
"""Which tags an article has (many-to-many; the engine versions it as ``article_tag_version``)."""


class Tag(Versioned, db.Model):  # type: ignore[name-defined]
    """A keyword articles are filed under (many-to-many with articles)."""

    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)

    articles: Mapped[list[Article]] = relationship(
        secondary=article_tag, back_populates="tags", order_by="Article.id"
    )

    def __str__(self) -> str:
        return self.name


class SiteConfig(Versioned, db.Model):  # type: ignore[name-defined]
    """Site settings as a versioned key/value map (each save of the map is a new version)."""

    __tablename__ = "site_config"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    settings = VersionedMap()  # tables site_config_settings_value / _entry

    def __str__(self) -> str:
        return self.name


class Article(Versioned, db.Model):  # type: ignore[name-defined]
    """A piece of writing, with a long body and a little of every column type."""

    __tablename__ = "article"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[ArticleStatus] = mapped_column(
        sa.Enum(
            ArticleStatus,
            name="article_status",
            native_enum=False,
            length=20,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
        ),
        default=ArticleStatus.DRAFT,
    )
    published_on: Mapped[dt.date | None]
    rating: Mapped[float | None]
    is_featured: Mapped[bool] = mapped_column(default=False)
    # "metadata" is reserved on declarative classes: the attribute is `meta`, the column "metadata".
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", sa.JSON)
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"))

    author: Mapped[Author] = relationship(back_populates="articles")
    category: Mapped[Category | None] = relationship(back_populates="articles")
    tags: Mapped[list[Tag]] = relationship(
        secondary=article_tag, back_populates="articles", order_by="Tag.name"
    )
    sources: Mapped[list[Source]] = relationship(
        back_populates="article", cascade="all, delete-orphan", order_by="Source.id"
    )

    def __str__(self) -> str:
        return self.title


class Source(Versioned, db.Model):  # type: ignore[name-defined]
    """A reference an article cites (one-to-many, owned: edited inline on the article's form)."""

    __tablename__ = "source"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("article.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(500))
    accessed_on: Mapped[dt.date | None]

    article: Mapped[Article] = relationship(back_populates="sources")

    def __str__(self) -> str:
        return self.title


class PriceQuote(VersionedRows, db.Model):  # type: ignore[name-defined]
    """A price for a product, versioned with the rows strategy (each save is a new row)."""

    __tablename__ = "price_quote"

    sku: Mapped[str] = mapped_column(String(32), primary_key=True)
    product: Mapped[str] = mapped_column(String(120))
    price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    valid_until: Mapped[dt.date | None]
    notes: Mapped[str | None] = mapped_column(Text)

    def __str__(self) -> str:
        return f"{self.sku}: {self.product}"


# --------------------------------------------------------------------------- forms


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


class LogoutForm(FlaskForm):
    """An empty form: only its CSRF token matters."""


# --------------------------------------------------------------------------- helpers


def is_safe_next(target: str | None) -> bool:
    """Whether ``target`` is a local path we may redirect to after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for ``postgres://`` and ``postgresql://`` URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _secret_key(instance_path: str) -> str:
    """``SECRET_KEY`` from the environment, else a key generated once and kept in the instance."""
    if env_key := os.environ.get("SECRET_KEY"):
        return env_key
    path = os.path.join(instance_path, "secret_key")
    try:
        with open(path, encoding="ascii") as fh:
            if key := fh.read().strip():
                return key
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key)
    return key


class _SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions whose cookie is ``Secure`` whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure if configured so or if this request is HTTPS."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL and a busy timeout so concurrent writers wait instead of failing; enforce FKs."""
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _acting_user() -> str | None:
    """The logged-in username, or None outside a request or when anonymous."""
    user = current_user
    # outside a request (flask shell, a script) the proxy stands for None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.username)


def _has_role(*roles: str) -> bool:
    """Whether the current user is logged in with one of ``roles``."""
    return bool(current_user and current_user.is_authenticated and current_user.role in roles)


def create_user(username: str, password: str, role: str = "editor") -> User:
    """Add a user with a hashed password (not committed)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    return user


# --------------------------------------------------------------------------- seed data

_PARAGRAPHS = [
    "Every newsroom has a drawer full of corrections. Ours used to be a spreadsheet that nobody "
    "trusted: who changed the headline, when, and why was a matter of memory and goodwill. "
    "Keeping every version of every record turns that drawer into a timeline anyone can read.",
    "The change itself is rarely the interesting part. What matters is the reason behind it, "
    "the person who made it and the state of everything around it at that moment. A diff "
    "without context answers the wrong question; a diff with a reason answers the right one.",
    "Editors asked for three things: never lose a paragraph, see what changed since yesterday, "
    "and undo a bad save without calling anyone. The first is a storage problem, the second a "
    "query problem and the third, surprisingly, a user-interface problem.",
    "We measured how often people reverted an edit. It was less than one save in two hundred, "
    "but every one of those reverts would otherwise have been an hour of archaeology in backups "
    "and chat logs. Cheap insurance is still insurance.",
    "Long articles deserve a long view. Reading a story as it stood last Tuesday, with the "
    "paragraph that was later cut still in place, is how a fact-checker rebuilds the path from "
    "a tip to a published claim.",
    "None of this needs a new database. Ordinary tables, one listener on the session and a "
    "little discipline about where writes happen are enough to make history a first-class "
    "citizen of the application.",
]

_AUTHORS = [
    ("Ada Quill", "ada@example.org", "Covers science and technology. Formerly a lab technician."),
    ("Bruno Ferreira", "bruno@example.org", "Data journalist; likes charts more than people."),
    ("Chiara Valli", "chiara@example.org", "Culture desk. Reviews books, films and the odd opera."),
    ("Dmitri Orlov", "dmitri@example.org", None),
    ("Esther Nwosu", "esther@example.org", "Investigations editor."),
]

_CATEGORIES = [
    ("Science", "Research, discoveries and the people behind them."),
    ("Data", "Stories told with numbers."),
    ("Culture", "Books, film, music and the arts."),
    ("Opinion", None),
]

_ARTICLES = [
    ("The quiet art of keeping every version", "published", 0, 0, 4.5, True),
    ("What a million edits taught us about undo", "published", 1, 1, 4.0, False),
    ("Reading last Tuesday's newspaper, today", "published", 2, 2, 3.5, False),
    ("A field guide to diffs", "draft", 1, 1, None, False),
    ("Why reasons matter more than changes", "published", 4, 3, 4.8, True),
    ("Small tables, long memories", "archived", 3, 0, 2.5, False),
    ("Fact-checking with a time machine", "published", 4, 0, 4.2, False),
    ("The opera that was rewritten forty times", "draft", 2, 2, None, False),
    ("Charts that changed their minds", "published", 1, 1, 3.9, False),
    ("Notes on a newsroom without backups", "archived", 3, 3, 3.0, False),
    ("How we count readers, and how we used to", "published", 1, 1, 4.1, False),
    ("An interview with the person who presses undo", "draft", 0, 3, None, False),
]

_QUOTES = [
    ("SUB-MONTH", "Monthly subscription", "9.90", "2025-12-31", "Standard consumer price."),
    ("SUB-YEAR", "Yearly subscription", "99.00", "2025-12-31", None),
    ("SUB-STUDENT", "Student subscription (yearly)", "49.00", None, "Proof of enrolment needed."),
    ("ARCHIVE", "Archive access add-on", "4.50", "2025-06-30", None),
    ("PRINT-WEEKEND", "Weekend print edition", "6.00", None, "Delivery in city area only."),
]


def _slugify(text: str) -> str:
    """Lowercase, dash-separated ASCII slug."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(p for p in out.split("-") if p)


def _body(i: int) -> str:
    """A few paragraphs of realistic text, different for each article."""
    n = len(_PARAGRAPHS)
    return "\n\n".join(_PARAGRAPHS[(i + k) % n] for k in range(3 + i % 3))


def seed_demo_data() -> bool:
    """Create the demo user and data if the database is empty; return whether anything was added."""
    added = False
    if db.session.scalar(select(func.count()).select_from(User)) == 0:
        create_user(
            os.environ.get("DEMO_ADMIN_USER", "admin"),
            os.environ.get("DEMO_ADMIN_PASSWORD", "admin"),
            role="admin",
        )
        db.session.commit()
        added = True
    if db.session.scalar(select(func.count()).select_from(Author)):
        return added

    # 1. the initial import
    set_user(db.session, "import")
    set_reason(db.session, "Initial import of the demo data")
    authors = [Author(name=n, email=e, bio=b) for n, e, b in _AUTHORS]
    categories = [Category(name=n, description=d) for n, d in _CATEGORIES]
    db.session.add_all(authors + categories)
    base_day = dt.date(2024, 3, 1)
    articles = []
    for i, (title, status, a, c, rating, featured) in enumerate(_ARTICLES):
        st = ArticleStatus(status)
        articles.append(
            Article(
                title=title,
                slug=_slugify(title),
                body=_body(i),
                status=st,
                published_on=base_day + dt.timedelta(days=9 * i)
                if st is not ArticleStatus.DRAFT
                else None,
                rating=rating,
                is_featured=featured,
                meta={"words": len(_body(i).split()), "tags": [_CATEGORIES[c][0].lower()]},
                author=authors[a],
                category=categories[c],
            )
        )
    db.session.add_all(articles)
    for sku, product, price, until, notes in _QUOTES:
        db.session.add(
            PriceQuote(
                sku=sku,
                product=product,
                price=Decimal(price),
                currency="EUR",
                valid_until=dt.date.fromisoformat(until) if until else None,
                notes=notes,
            )
        )
    db.session.commit()

    # 2. a few past edits by different people, so timelines are not empty
    set_user(db.session, "chiara")
    set_reason(db.session, "Fix typo in the headline")
    articles[2].title = "Reading last Tuesday's newspaper today"
    db.session.commit()

    set_user(db.session, "esther")
    set_reason(db.session, "Ready for launch")
    articles[3].status = ArticleStatus.PUBLISHED
    articles[3].published_on = base_day + dt.timedelta(days=40)
    articles[3].rating = 3.7
    db.session.commit()

    set_user(db.session, "bruno")
    set_reason(db.session, "Add the paragraph about reverts")
    articles[1].body = articles[1].body + "\n\n" + _PARAGRAPHS[3]
    articles[1].meta = {**(articles[1].meta or {}), "words": len(articles[1].body.split())}
    db.session.commit()

    set_user(db.session, "admin")
    set_reason(db.session, "Price rise from July")
    quote = get_live(db.session, PriceQuote, ("SUB-MONTH",))
    if quote is not None:
        quote.price = Decimal("10.90")
        quote.notes = "Standard consumer price (raised in July)."
    db.session.commit()

    set_user(db.session, "esther")
    set_reason(db.session, "Bio requested by the author")
    authors[3].bio = "Night editor. Writes about infrastructure and the people who keep it up."
    db.session.commit()

    set_user(db.session, "admin")
    set_reason(db.session, "Duplicate of an older piece")
    db.session.delete(articles[9])
    db.session.commit()

    _seed_tags_and_config(articles)
    return True


_TAGS = ["history", "databases", "newsroom", "python", "flask", "design"]


def _seed_tags_and_config(articles: list[Article]) -> None:
    """Tags on a few articles and a site configuration map, each edited once after creation."""
    set_user(db.session, "import")
    set_reason(db.session, "Tags and site settings")
    tags = {name: Tag(name=name) for name in _TAGS}
    with db.session.no_autoflush:  # one flush: one new version per article, tags and sources
        db.session.add_all(tags.values())
        articles[0].tags = [tags["history"], tags["databases"], tags["flask"]]
        articles[1].tags = [tags["databases"], tags["design"]]
        articles[4].tags = [tags["newsroom"]]
        articles[0].sources = [
            Source(title="SQLAlchemy: versioning objects", accessed_on=dt.date(2024, 3, 2),
                   url="https://docs.sqlalchemy.org/en/20/orm/examples.html#versioning-objects"),
            Source(title="The newsroom style guide, chapter 4", url=None),
        ]
        articles[1].sources = [
            Source(title="Interview with the night desk", accessed_on=dt.date(2024, 2, 20)),
        ]
    config = SiteConfig(
        name="main",
        settings={"site_name": "The Daily Diff", "items_per_page": 20, "comments": True,
                  "theme": {"accent": "#2b6cb0"}},
    )
    db.session.add(config)
    db.session.commit()

    set_user(db.session, "bruno")
    set_reason(db.session, "Retag: python, not flask")
    articles[0].tags.remove(tags["flask"])
    articles[0].tags.append(tags["python"])
    db.session.commit()

    set_user(db.session, "admin")
    set_reason(db.session, "Longer pages, no comments for now")
    config.settings["items_per_page"] = 30
    config.settings["comments"] = False
    db.session.commit()


# --------------------------------------------------------------------------- the app


def _register_admin(app: Flask) -> VersionedAdmin:
    """Create the admin, register the demo models and attach it to ``app``."""
    admin = VersionedAdmin(
        db=db,
        access=lambda: _has_role("admin", "editor"),
        can_delete=lambda: _has_role("admin"),
        can_revert=lambda: _has_role("admin"),
        current_user=_acting_user,
    )
    admin.register(
        Article,
        list_columns=["title", "status", "author", "category", "published_on", "is_featured"],
        search_columns=["title", "slug", "body"],
        filters=["status", "is_featured", "author", "category"],
        default_sort="-id",
        labels={"is_featured": "Featured", "published_on": "Published on", "meta": "Metadata"},
        form_columns=[
            "title",
            "slug",
            "author",
            "category",
            "status",
            "published_on",
            "rating",
            "is_featured",
            "body",
            "meta",
            "tags",
            "sources",
        ],
        page_size=20,
    )
    admin.register(
        Author,
        list_columns=["name", "email", "bio"],
        search_columns=["name", "email"],
        default_sort="name",
        form_columns=["name", "email", "bio"],
    )
    admin.register(
        Category,
        list_columns=["name", "description"],
        search_columns=["name"],
        default_sort="name",
    )
    admin.register(
        Tag,
        list_columns=["name"],
        search_columns=["name"],
        default_sort="name",
        form_columns=["name", "articles"],
    )
    admin.register(
        Source,
        list_columns=["title", "url", "article", "accessed_on"],
        search_columns=["title", "url"],
        default_sort="title",
        labels={"url": "URL", "accessed_on": "Accessed on"},
    )
    admin.register(
        SiteConfig,
        label="Site settings",
        list_columns=["name"],
        default_sort="name",
        form_columns=["name", "settings"],
    )
    admin.register(
        PriceQuote,
        list_columns=["sku", "product", "price", "currency", "valid_until"],
        search_columns=["sku", "product"],
        filters=["currency"],
        default_sort="sku",
        labels={"sku": "SKU", "valid_until": "Valid until"},
        form_columns=["sku", "product", "price", "currency", "valid_until", "notes"],
    )
    admin.init_app(app)
    return admin


def _register_views(app: Flask) -> None:
    """The demo's own pages: home, login, logout, and friendly error pages."""

    @app.get("/")
    def index() -> str:
        return render_template("index.html", logout_form=LogoutForm())

    @app.route("/login", methods=["GET", "POST"])
    def login() -> str | BaseResponse | tuple[str, int]:
        form = LoginForm()
        if request.method == "GET":
            form.next.data = request.args.get("next", "")
        if form.validate_on_submit():
            username = (form.username.data or "").strip()
            user = db.session.scalar(select(User).where(User.username == username))
            if user is None:
                check_password_hash(_DUMMY_HASH, form.password.data or "")  # same cost either way
            elif user.check_password(form.password.data or ""):
                target = form.next.data if is_safe_next(form.next.data) else None
                session.clear()  # rotate: nothing from the anonymous session survives
                login_user(user)
                return redirect(target or url_for("versioned_admin.index"))
            form.password.data = ""
            return render_template(
                "login.html", form=form, error="Invalid username or password."
            ), 401
        return render_template("login.html", form=form, error=None), (
            400 if request.method == "POST" else 200
        )

    @app.post("/logout")
    def logout() -> BaseResponse:
        logout_user()
        session.clear()
        flash("You have been signed out.")
        return redirect(url_for("login"))

    @app.errorhandler(CSRFError)
    def csrf_error(e: CSRFError) -> tuple[str, int]:
        return render_template(
            "error.html",
            title="Form expired",
            message="The form was too old or was not sent from this site. Go back, reload the "
            "page and try again.",
        ), 400

    @app.teardown_request
    def close_session(_exc: BaseException | None) -> None:
        """End the session; a database that went away mid-request must not turn the page
        already rendered (often the 503 page) into a bare 500 in Flask-SQLAlchemy's teardown."""
        try:
            db.session.remove()
        except SQLAlchemyError as exc:
            log.warning("closing the session failed (%s); connection dropped", exc)
            with contextlib.suppress(SQLAlchemyError):
                db.session().invalidate()
            db.session.registry.clear()

    @app.errorhandler(OperationalError)
    def database_unavailable(e: OperationalError) -> tuple[str, int, dict[str, str]]:
        log.warning("database unavailable: %s", e)
        with contextlib.suppress(SQLAlchemyError):
            db.session.rollback()
        # the page's layout shows the user: don't ask the missing database who that is
        g._login_user = login_manager.anonymous_user()
        return (
            render_template(
                "error.html",
                title="Database unavailable",
                message="The database cannot be reached right now. Nothing was saved. "
                "Please try again in a moment.",
            ),
            503,
            {"Retry-After": "5"},
        )

    @app.after_request
    def security_headers(response: Response) -> Response:
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'none'",
        )
        return response


_DUMMY_HASH = generate_password_hash("not a real password")


def _register_cli(app: Flask) -> None:
    """``flask --app app create-user``."""

    @app.cli.command("create-user")
    @click.argument("username")
    @click.option(
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="Prompted for (hidden) when not given.",
    )
    @click.option(
        "--role",
        type=click.Choice(ROLES),
        default="editor",
        show_default=True,
        help="admin: everything; editor: create and edit; viewer: no admin access.",
    )
    def create_user_command(username: str, password: str, role: str) -> None:
        """Create a user who can log in to the demo."""
        username = username.strip()
        if not username or len(username) > 80:
            raise click.BadParameter("1 to 80 characters", param_hint="USERNAME")
        if not password:
            raise click.BadParameter("must not be empty", param_hint="--password")
        if db.session.scalar(select(User).where(User.username == username)) is not None:
            raise click.ClickException(f"user {username!r} already exists")
        create_user(username, password, role)
        db.session.commit()
        click.echo(f"Created user {username!r} ({role}).")


def _create_tables_and_seed(app: Flask) -> None:
    """Create missing tables and seed demo data; tolerate another worker doing it at once."""
    for attempt in range(2):
        try:
            db.create_all()
            if app.config["DEMO_SEED"]:
                seed_demo_data()
            return
        except (IntegrityError, OperationalError, ProgrammingError):
            db.session.rollback()
            if attempt:
                raise
            log.info("another process is creating the demo database; retrying")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the demo app: config, database, login, admin, seed data."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=normalize_database_url(
            os.environ.get("DATABASE_URL")
            or "sqlite:///" + os.path.join(app.instance_path, "demo.db")
        ),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,  # still Secure on every HTTPS request, see _SessionInterface
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        VERSIONED_ADMIN_TITLE="Newsroom admin",
        DEMO_SEED=True,
    )
    if config:
        app.config.update(config)
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app.instance_path)
    url = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    engine_options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    if url.get_backend_name() == "sqlite":
        engine_options.setdefault("connect_args", {}).setdefault("timeout", 30)
    else:
        engine_options.setdefault("pool_pre_ping", True)
    app.session_interface = _SessionInterface()

    db.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "login"
    login_manager.session_protection = "strong"

    _register_views(app)
    _register_cli(app)
    _register_admin(app)

    with app.app_context():
        if db.engine.dialect.name == "sqlite" and not event.contains(
            db.engine, "connect", _sqlite_pragmas
        ):
            event.listen(db.engine, "connect", _sqlite_pragmas)
            db.engine.dispose()  # connections made before the listener get the pragmas too
        enable_versioning(db.session, user=_acting_user)
        _create_tables_and_seed(app)
    return app


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    """Flask-Login: the user stored in the session."""
    if not user_id.isdigit():
        return None
    return db.session.get(User, int(user_id))


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
