"""The data a diff produces: frozen dataclasses that templates render (with autoescaping)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["equal", "insert", "delete"]
LineKind = Literal["equal", "change", "insert", "delete", "fold"]
Granularity = Literal["char", "word", "line"]
KeyKind = Literal["added", "removed", "changed", "equal"]
FieldKind = Literal["text", "json", "scalar", "collection"]
FieldStatus = Literal["present", "removed_column", "added_column"]


@dataclass(frozen=True)
class Segment:
    """A run of text that is equal on both sides, or only inserted, or only deleted."""

    text: str
    op: Op


@dataclass(frozen=True)
class DiffLine:
    """One row of a side-by-side view; a "fold" row stands for `folded` equal lines."""

    kind: LineKind
    left: tuple[Segment, ...]
    right: tuple[Segment, ...]
    left_no: int | None
    right_no: int | None
    folded: int = 0
    hidden: tuple[DiffLine, ...] = ()

    @property
    def expandable(self) -> bool:
        """True when a fold carries all its hidden lines (large folds carry none)."""
        return self.kind == "fold" and len(self.hidden) == self.folded

    @property
    def left_text(self) -> str:
        """The left side's plain text."""
        return "".join(s.text for s in self.left)

    @property
    def right_text(self) -> str:
        """The right side's plain text."""
        return "".join(s.text for s in self.right)


@dataclass(frozen=True)
class TextDiff:
    """A side-by-side text diff; `insertions`/`deletions` count units of `granularity`."""

    lines: tuple[DiffLine, ...]
    granularity: Granularity
    coarse: bool
    note: str | None
    insertions: int
    deletions: int
    # Rows left out at the end because the diff was too large to show (implies coarse).
    truncated: int = 0

    @property
    def changed(self) -> bool:
        """True when any row is not equal/fold."""
        return self.truncated > 0 or any(line.kind not in ("equal", "fold") for line in self.lines)


@dataclass(frozen=True)
class KeyDiff:
    """One path of a JSON value diffed by key, e.g. ``a.b[2]`` (root is "")."""

    path: str
    kind: KeyKind
    old: Any
    new: Any


@dataclass(frozen=True)
class FieldDiff:
    """How one field differs between two versions of a record."""

    name: str
    label: str
    old: Any
    new: Any
    changed: bool
    kind: FieldKind
    text: TextDiff | None
    keys: tuple[KeyDiff, ...] | None
    added: tuple[Any, ...] = ()
    removed: tuple[Any, ...] = ()
    unchanged: tuple[Any, ...] = ()
    status: FieldStatus = "present"
