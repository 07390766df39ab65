"""The Flask layer of versioned_admin: the extension, its blueprint and its pages."""

from .extension import VersionedAdmin
from .registry import ModelView

__all__ = ["ModelView", "VersionedAdmin"]
