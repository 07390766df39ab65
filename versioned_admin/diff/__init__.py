"""Pure diffs of record versions: field by field, JSON by key, text side by side."""

from .model import DiffLine, FieldDiff, KeyDiff, Op, Segment, TextDiff
from .safe import CUT, DISPLAY_DEPTH, printable
from .text import SHORT_CHARS, split_lines, text_diff
from .values import (
    EMPTY,
    changed_fields,
    collection_diff,
    default_label,
    diff_states,
    display_value,
    json_diff,
    preview,
    values_equal,
)

__all__ = [
    "CUT",
    "DISPLAY_DEPTH",
    "EMPTY",
    "SHORT_CHARS",
    "DiffLine",
    "FieldDiff",
    "KeyDiff",
    "Op",
    "Segment",
    "TextDiff",
    "changed_fields",
    "collection_diff",
    "default_label",
    "diff_states",
    "display_value",
    "json_diff",
    "preview",
    "printable",
    "split_lines",
    "text_diff",
    "values_equal",
]
