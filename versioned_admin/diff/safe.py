"""Values made safe to show: text that encodes as UTF-8, and nesting cut at a fixed depth.

History may hold values stored before the engine refused them (a lone surrogate such as
``"\\ud83d"``, JSON nested hundreds of levels deep); a page showing them must still render.
"""

from __future__ import annotations

#: JSON shown (and diffed key by key) down to this many levels; deeper parts show as CUT.
DISPLAY_DEPTH = 64
#: What stands for the part of a value below DISPLAY_DEPTH.
CUT = "…"


def printable(text: str) -> str:
    """``text`` with each lone surrogate shown as U+FFFD, so that a page can encode it."""
    if text.isascii():
        return text  # the usual case: one C-speed scan
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # through UTF-16: a split pair becomes its character, a lone half one U+FFFD
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text
