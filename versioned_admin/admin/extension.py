"""The Flask extension: :class:`VersionedAdmin`, its configuration and its blueprint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, g, has_request_context, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from werkzeug.wrappers import Response

from versioned_admin.versioning import enable_versioning, set_user_source

from .access import Rule, check_access, default_user, user_name
from .cli import GROUP, command_group
from .context import EXTENSION_KEY
from .errors import register_error_handlers
from .history import add_history_routes
from .registry import ModelView
from .views import add_crud_routes

logger = logging.getLogger("versioned_admin")

#: Sent with every admin response (static files included) unless the response already has them.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'self'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
}

CONFIG_DEFAULTS: dict[str, Any] = {
    "VERSIONED_ADMIN_URL_PREFIX": "/admin",
    "VERSIONED_ADMIN_OPEN": False,
    "VERSIONED_ADMIN_PAGE_SIZE": 20,
    "VERSIONED_ADMIN_COUNT_LIMIT": 10_000,
    "VERSIONED_ADMIN_TITLE": "Admin",
    "VERSIONED_ADMIN_LOGIN_ENDPOINT": None,
    "VERSIONED_ADMIN_MAX_TEXT_BYTES": 1_048_576,
    "VERSIONED_ADMIN_MAX_JSON_DEPTH": 64,
}

SessionSource = sessionmaker[Session] | scoped_session[Session]


class VersionedAdmin:
    """A browser admin for SQLAlchemy models in which every save is kept as a version.

    ::

        admin = VersionedAdmin(db=db, access=lambda: current_user.is_authenticated)
        admin.register(Article, list_columns=["title", "author"], default_sort="-id")
        admin.init_app(app)

    Pass Flask-SQLAlchemy's ``db`` or, for plain SQLAlchemy, ``session=`` (a ``sessionmaker``
    or a ``scoped_session``). Enabling the admin enables versioning on that session.

    Options: ``url_prefix`` and ``name`` override the config keys below for this instance;
    ``endpoint`` names the blueprint (give a second admin in the same app its own);
    ``access`` is a callable returning whether the current request may use the admin at all;
    ``can_delete`` and ``can_revert`` further restrict those actions; ``current_user`` returns
    the acting user recorded in each changeset (a name, or a user object with ``username`` or
    ``get_id()``; default: Flask-Login's ``current_user`` when logged in).

    Configuration (``app.config``, defaults set with ``setdefault`` by ``init_app``):

    ================================== =========== ===============================================
    Key                                Default     Meaning
    ================================== =========== ===============================================
    ``VERSIONED_ADMIN_URL_PREFIX``     ``/admin``  Where the admin is mounted (``url_prefix=``
                                                   wins).
    ``VERSIONED_ADMIN_OPEN``           ``False``   Serve everyone when no ``access`` rule is
                                                   given. For local development only; without
                                                   a rule and without this the admin refuses
                                                   every request.
    ``VERSIONED_ADMIN_PAGE_SIZE``      ``20``      Rows per list page (``page_size=`` of a model
                                                   wins).
    ``VERSIONED_ADMIN_COUNT_LIMIT``    ``10000``   Lists count matching rows only up to this
                                                   many and show "10,000+" beyond; ``None``
                                                   counts exactly (slow on big tables).
    ``VERSIONED_ADMIN_TITLE``          ``Admin``   Name in the header and page titles (``name=``
                                                   wins).
    ``VERSIONED_ADMIN_LOGIN_ENDPOINT`` ``None``    Endpoint anonymous users are redirected to
                                                   (with ``?next=``) when ``access`` refuses
                                                   them; default: Flask-Login's ``login_view``.
    ``VERSIONED_ADMIN_MAX_TEXT_BYTES`` ``1048576`` Longest text or JSON (UTF-8 bytes) a form
                                                   field accepts; longer is refused (422, the
                                                   typing kept). Flask's ``MAX_FORM_MEMORY_SIZE``
                                                   (500 kB by default) applies first.
    ``VERSIONED_ADMIN_MAX_JSON_DEPTH`` ``64``      Deepest nesting a JSON field accepts (checked
                                                   before parsing); at most 64, the engine's
                                                   ``MAX_JSON_DEPTH``.
    ================================== =========== ===============================================
    """

    #: Functions that add pages to the admin's blueprint, in order. The CRUD pages come first;
    #: the history pages (timeline, diff, revert, deleted, activity) are added the same way.
    route_sets: tuple[Callable[[Blueprint], None], ...] = (add_crud_routes, add_history_routes)

    layout_template = "versioned_admin/layout.html"
    index_template = "versioned_admin/index.html"
    list_template = "versioned_admin/list.html"
    form_template = "versioned_admin/form.html"
    delete_template = "versioned_admin/delete.html"
    error_template = "versioned_admin/error.html"
    history_template = "versioned_admin/history.html"
    diff_template = "versioned_admin/diff.html"
    revert_template = "versioned_admin/revert.html"
    deleted_template = "versioned_admin/deleted.html"
    activity_template = "versioned_admin/activity.html"
    conflict_template = "versioned_admin/conflict.html"

    def __init__(
        self,
        app: Flask | None = None,
        db: Any | None = None,
        *,
        session: SessionSource | None = None,
        url_prefix: str | None = None,
        name: str | None = None,
        endpoint: str = "versioned_admin",
        access: Rule | None = None,
        can_delete: Rule | None = None,
        can_revert: Rule | None = None,
        current_user: Callable[[], Any] | None = None,
    ) -> None:
        if (db is None) == (session is None):
            raise TypeError("VersionedAdmin needs one of db= (Flask-SQLAlchemy) or session=")
        if session is not None and not isinstance(session, sessionmaker | scoped_session):
            raise TypeError("session= must be a sessionmaker or a scoped_session")
        self.db = db
        self.session_source = session
        self.url_prefix = url_prefix
        self.name = name
        self.endpoint = endpoint
        self.access = access
        self.can_delete = can_delete
        self.can_revert = can_revert
        self.current_user = current_user
        #: Registered models by slug, in registration order.
        self.views: dict[str, ModelView] = {}
        self._by_model: dict[type, ModelView] = {}
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<VersionedAdmin {self.endpoint!r} models={list(self.views)}>"

    def register(
        self, model: type, *, view_class: type[ModelView] = ModelView, **options: Any
    ) -> ModelView:
        """Add a model to the admin; see :class:`ModelView` for the options."""
        if model in self._by_model:
            raise ValueError(f"{model.__name__} is already registered")
        view = view_class(model, **options)
        if view.slug in self.views:
            raise ValueError(f"the slug {view.slug!r} is already used; pass slug=")
        view.peers = self._by_model
        self.views[view.slug] = view
        self._by_model[model] = view
        return view

    def view_for(self, model: type) -> ModelView | None:
        """The view registered for a model, if any."""
        return self._by_model.get(model)

    def nearest_view(self, model: type) -> ModelView | None:
        """The view of the model or of its nearest registered base (inheritance)."""
        for cls in model.__mro__:
            view = self._by_model.get(cls)
            if view is not None:
                return view
        return None

    def init_app(self, app: Flask) -> None:
        """Mount the admin on an app: config defaults, versioning, the blueprint."""
        for key, value in CONFIG_DEFAULTS.items():
            app.config.setdefault(key, value)
        admins = app.extensions.setdefault(EXTENSION_KEY, {})
        if self.endpoint in admins:
            raise RuntimeError(
                f"an admin with endpoint {self.endpoint!r} is already on this app; give the "
                "second one another endpoint= (and url_prefix=)"
            )
        # The acting user is set on each request's session (several admins may share one
        # session factory); writes outside the admin's requests record Flask-Login's user.
        enable_versioning(self._versioning_target(), user=_request_user)
        prefix = self.url_prefix or app.config["VERSIONED_ADMIN_URL_PREFIX"]
        app.register_blueprint(self._make_blueprint(), url_prefix=prefix.rstrip("/"))
        admins[self.endpoint] = self
        if GROUP not in app.cli.commands:  # one group for every admin on the app
            app.cli.add_command(command_group())
        if self.access is None and not app.config["VERSIONED_ADMIN_OPEN"]:
            logger.warning(
                "versioned_admin at %s has no access rule and will refuse every request: pass "
                "access=... or set VERSIONED_ADMIN_OPEN = True (local development only)", prefix
            )
        elif self.access is None:
            logger.warning("versioned_admin at %s is OPEN to everyone (VERSIONED_ADMIN_OPEN)",
                           prefix)

    def _versioning_target(self) -> Any:
        return self.db.session if self.db is not None else self.session_source

    def _make_blueprint(self) -> Blueprint:
        bp = Blueprint(
            self.endpoint,
            "versioned_admin",
            template_folder="templates",
            static_folder="static/versioned_admin",
            static_url_path="/static",
        )
        bp.before_request(self._check_access)
        bp.before_request(self._bind_user)
        bp.after_request(_security_headers)
        bp.teardown_request(self._close_session)
        register_error_handlers(bp)
        for add_routes in self.route_sets:
            add_routes(bp)
        return bp

    # -- per request ------------------------------------------------------------------------

    def title(self) -> str:
        """The admin's name as shown in the header."""
        return self.name or str(current_app.config["VERSIONED_ADMIN_TITLE"])

    def session(self) -> Session:
        """The SQLAlchemy session of the current request."""
        if self.db is not None:
            return self.db.session()
        source = self.session_source
        if isinstance(source, scoped_session):
            return source()
        key = f"_versioned_admin_session_{self.endpoint}"
        session: Session | None = g.get(key)
        if session is None:
            assert source is not None
            session = source()
            setattr(g, key, session)
        return session

    def rollback(self) -> None:
        """Roll the request's session back, ignoring a database that is gone."""
        try:
            self.session().rollback()
        except Exception:
            logger.debug("versioned_admin: rollback failed", exc_info=True)

    def acting_user(self) -> str | None:
        """The user recorded in changesets written now (None outside a request or anonymous)."""
        source = self.current_user or default_user
        try:
            return user_name(source())
        except RuntimeError:  # outside an application or request context
            return None

    def _check_access(self) -> Response | None:
        if request.endpoint == f"{self.endpoint}.static":
            return None
        return check_access(self)

    def _bind_user(self) -> None:
        if request.endpoint != f"{self.endpoint}.static":
            set_user_source(self.session(), self.acting_user)

    def _close_session(self, exc: BaseException | None) -> None:
        if self.db is not None:
            close_scoped_session(self.db.session)
            return
        if isinstance(self.session_source, scoped_session):
            close_scoped_session(self.session_source)
            return
        session = g.pop(f"_versioned_admin_session_{self.endpoint}", None)
        if session is not None:
            session.close()


def _request_user() -> str | None:
    """The acting user of a write made outside an admin's requests (a host app's own view).

    The app's admin says who that is; with several admins that name users differently, no
    one admin may speak for the others, so Flask-Login's user is recorded.
    """
    try:
        admins: dict[str, VersionedAdmin] = current_app.extensions.get(EXTENSION_KEY, {})
    except RuntimeError:  # outside an application context
        return None
    if has_request_context() and request.blueprint in admins:
        return admins[request.blueprint].acting_user()
    sources = {admin.current_user for admin in admins.values()}
    if len(sources) == 1:
        return next(iter(admins.values())).acting_user()
    try:
        return default_user()
    except RuntimeError:
        return None


def close_scoped_session(scoped: scoped_session[Any]) -> None:
    """End the request's session; if the database went away mid-request, drop the connection.

    Flask-SQLAlchemy's own teardown would otherwise raise from the failed ROLLBACK and turn a
    finished response (often the 503 page) into a bare 500.
    """
    try:
        scoped.remove()
    except SQLAlchemyError as exc:
        logger.warning("versioned_admin: closing the session failed (%s); connection dropped", exc)
        try:
            scoped().invalidate()
        except SQLAlchemyError:  # pragma: no cover - invalidate does not talk to the server
            pass
        scoped.registry.clear()


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint is None or not request.endpoint.endswith(".static"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
