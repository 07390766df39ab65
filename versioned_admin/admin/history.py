"""History pages on the admin blueprint: timeline, diff, revert, deleted, restore, activity."""

from __future__ import annotations

from flask import Blueprint

from .activity import activity_view
from .conflicts import resolve_view
from .history_views import deleted_view, diff_view, restore_view, revert_view
from .maps_view import add_map_routes
from .timeline import history_view

#: Template names the history pages use, overridable as attributes of VersionedAdmin.
HISTORY_TEMPLATES = {
    "history_template": "versioned_admin/history.html",
    "diff_template": "versioned_admin/diff.html",
    "revert_template": "versioned_admin/revert.html",
    "deleted_template": "versioned_admin/deleted.html",
    "activity_template": "versioned_admin/activity.html",
    "conflict_template": "versioned_admin/conflict.html",
}


def add_history_routes(bp: Blueprint) -> None:
    """Register the history pages (before the CRUD catch-all is matched: rules are specific)."""
    bp.add_url_rule("/activity", "activity_view", activity_view)
    bp.add_url_rule("/<model>/deleted", "deleted_view", deleted_view)
    bp.add_url_rule("/<model>/<pk>/history", "history_view", history_view)
    bp.add_url_rule("/<model>/<pk>/diff", "diff_view", diff_view)
    bp.add_url_rule("/<model>/<pk>/revert/<number>", "revert_view", revert_view,
                    methods=["GET", "POST"])
    bp.add_url_rule("/<model>/<pk>/restore", "restore_view", restore_view, methods=["POST"])
    bp.add_url_rule("/<model>/<pk>/resolve", "resolve_view", resolve_view, methods=["POST"])
    add_map_routes(bp)
