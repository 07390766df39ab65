"""Side-by-side text diff, bounded in time, with output that grows with the changes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from time import perf_counter

from .align import Opcode, align
from .model import DiffLine, Granularity, LineKind, Op, Segment, TextDiff
from .safe import printable

# Both values at most this long and single-line: diff characters, not words.
SHORT_CHARS = 200
# A fold carries its hidden lines (for expanding in the page) only up to this many.
FOLD_LIMIT = 50
# Texts whose differing middle exceeds this many times max_chars are not aligned at all.
_HUGE_FACTOR = 20

_TOKEN_RE = re.compile(r"\n|[^\S\n]+|\w+|[^\w\s]")
_WORD_RE = re.compile(r"\w+")
_WORD_CHAR_RE = re.compile(r"\w")

NOTE_WORDS = "Changes too large for a word diff; showing changed lines only."
NOTE_ALIGN = "Texts too different to align in full; some lines are shown as replaced."
NOTE_TRUNCATED = "Diff too large to show in full; {n:,} more lines are not shown."


def text_diff(
    old: str | None,
    new: str | None,
    *,
    context: int = 3,
    max_chars: int = 200_000,
    time_budget: float = 0.5,
    fold_limit: int = FOLD_LIMIT,
) -> TextDiff:
    """Side-by-side diff of two texts (None is ""), bounded by `max_chars` and `time_budget`.

    Lone surrogates (in values stored before they were refused) show as U+FFFD.
    """
    a = printable(old or "")
    b = printable(new or "")
    deadline = perf_counter() + time_budget
    if a == b:
        return _equal_text(a, fold_limit, max_chars)
    if len(a) <= SHORT_CHARS and len(b) <= SHORT_CHARS and "\n" not in a and "\n" not in b:
        return _char_diff(a, b, deadline)
    return _LineDiff(a, b, context, max_chars, deadline, fold_limit).run()


def split_lines(text: str) -> list[str]:
    """Lines of `text`, each keeping its "\\n"; only "\\n" ends a line."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _equal_text(text: str, fold_limit: int, max_chars: int) -> TextDiff:
    """Equal texts: one fold over everything (or nothing for empty texts)."""
    lines = split_lines(text)
    if not lines:
        return TextDiff((), "line", False, None, 0, 0)
    hidden: tuple[DiffLine, ...] = ()
    if len(lines) <= fold_limit and len(text) <= max_chars // 4:
        hidden = tuple(_equal_row(line, k + 1, k + 1) for k, line in enumerate(lines))
    fold = DiffLine("fold", (), (), 1, 1, folded=len(lines), hidden=hidden)
    return TextDiff((fold,), "line", False, None, 0, 0)


def _equal_row(line: str, left_no: int, right_no: int) -> DiffLine:
    seg = (Segment(line, "equal"),)
    return DiffLine("equal", seg, seg, left_no, right_no)


def _char_diff(a: str, b: str, deadline: float) -> TextDiff:
    """One row with a character-level diff of two short single-line values."""
    ops, _ = align(a, b, deadline=deadline)
    chunks = _cleanup(_chunks(list(a), list(b), ops))
    left = _side(chunks, left=True)
    right = _side(chunks, left=False)
    kind: LineKind = "change" if a and b else ("insert" if b else "delete")
    row = DiffLine(
        kind,
        left[0] if left else (),
        right[0] if right else (),
        1 if a else None,
        1 if b else None,
    )
    inserted = sum(c.blen for c in chunks if not c.equal)
    deleted = sum(c.alen for c in chunks if not c.equal)
    return TextDiff((row,), "char", False, None, inserted, deleted)


class _Chunk:
    """A run of tokens: equal on both sides, or a replacement (either side may be empty).

    Pieces are kept as lists so that merging many chunks stays linear.
    """

    __slots__ = ("a", "b", "alen", "blen", "equal")

    def __init__(self, a: list[str], b: list[str], equal: bool) -> None:
        self.a = a
        self.b = b
        self.alen = sum(map(len, a))
        self.blen = self.alen if equal else sum(map(len, b))
        self.equal = equal

    def absorb(self, other: _Chunk) -> None:
        """Append `other` to this replacement chunk."""
        self.a.extend(other.a)
        self.b.extend(other.b)
        self.alen += other.alen
        self.blen += other.blen


def _chunks(ta: Sequence[str], tb: Sequence[str], ops: Iterable[Opcode]) -> list[_Chunk]:
    out: list[_Chunk] = []
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            pieces = list(ta[i1:i2])
            out.append(_Chunk(pieces, pieces, True))
        else:
            out.append(_Chunk(list(ta[i1:i2]), list(tb[j1:j2]), False))
    return out


def _cleanup(chunks: list[_Chunk]) -> list[_Chunk]:
    """Merge adjacent changes, and absorb equal runs no longer than the changes around them.

    This is diff-match-patch's semantic cleanup in small: "quick brown" -> "slow red" reads
    as one replaced phrase rather than two words with an unchanged space between.
    """
    out: list[_Chunk] = []
    for chunk in chunks:
        if chunk.equal:
            if out and out[-1].equal:
                out[-1] = _Chunk(out[-1].a + chunk.a, out[-1].a + chunk.a, True)
            elif chunk.alen:
                out.append(chunk)
            continue
        if out and not out[-1].equal:
            out[-1].absorb(chunk)
        else:
            out.append(_Chunk(list(chunk.a), list(chunk.b), False))
        while len(out) >= 3 and out[-2].equal and not out[-3].equal:
            before, eq, after = out[-3], out[-2], out[-1]
            limit = min(max(before.alen, before.blen), max(after.alen, after.blen))
            # A line break stays equal, so that each row keeps its own highlighting.
            if eq.alen > limit or "\n" in "".join(eq.a):
                break
            del out[-2:]
            before.absorb(eq)
            before.absorb(after)
    return out


def _side(chunks: Sequence[_Chunk], *, left: bool) -> list[tuple[Segment, ...]]:
    """One side of the chunks as lines of segments, split after each "\\n"."""
    changed: Op = "delete" if left else "insert"
    lines: list[tuple[Segment, ...]] = []
    current: list[Segment] = []

    def add(text: str, op: Op) -> None:
        if current and current[-1].op == op:
            current[-1] = Segment(current[-1].text + text, op)
        else:
            current.append(Segment(text, op))

    for chunk in chunks:
        text = "".join(chunk.a if left else chunk.b)
        if not text:
            continue
        op: Op = "equal" if chunk.equal else changed
        parts = text.split("\n")
        for part in parts[:-1]:
            add(part + "\n", op)
            lines.append(tuple(current))
            current.clear()
        if parts[-1]:
            add(parts[-1], op)
    if current:
        lines.append(tuple(current))
    return lines


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection on slices (C speed, O(n))."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the common suffix, at most `limit`."""
    lo, hi = 0, min(len(a), len(b), limit)
    la, lb = len(a), len(b)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid : la - lo] == b[lb - mid : lb - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _token_class(char: str) -> int:
    if char == "\n":
        return 0
    if char.isspace():
        return 1
    return 2 if _WORD_CHAR_RE.match(char) else 3


# Snapping gives up past this many characters: a "word" that long is not worth keeping whole.
_SNAP_LIMIT = 64


def _snap_prefix(a: str, p: int) -> int:
    """Move a prefix cut back so it does not split a word or a run of spaces."""
    if p == 0 or _token_class(a[p - 1]) in (0, 3):
        return p
    cls = _token_class(a[p - 1])
    q = p
    while q > 0 and _token_class(a[q - 1]) == cls:
        q -= 1
        if p - q > _SNAP_LIMIT:
            return p
    return q


def _snap_suffix(a: str, s: int) -> int:
    """Shrink a suffix so it does not start inside a word or a run of spaces."""
    start = len(a) - s
    if s == 0 or _token_class(a[start]) in (0, 3):
        return s
    cls = _token_class(a[start])
    end = start
    while end < len(a) and _token_class(a[end]) == cls:
        end += 1
        if end - start > _SNAP_LIMIT:
            return s
    return len(a) - end


def _line_suffix(a: str, b: str, p: int, s: int) -> int:
    """Shrink a common suffix until it starts at a line start in both texts."""
    while s > 0:
        sa, sb = len(a) - s, len(b) - s
        if (sa == p or a[sa - 1] == "\n") and (sb == p or b[sb - 1] == "\n"):
            return s
        cut = a.find("\n", sa)
        s = len(a) - cut - 1 if cut != -1 else 0
    return 0


def _last_lines(text: str, n: int) -> list[str]:
    """The last `n` lines of `text` (which is empty or ends with "\n")."""
    if not text or n <= 0:
        return []
    parts = text.rsplit("\n", n + 1)
    body = parts[1:-1] if len(parts) == n + 2 else parts[:-1]
    return [part + "\n" for part in body]


def _first_lines(text: str, n: int) -> list[str]:
    """The first `n` lines of `text`."""
    if not text or n <= 0:
        return []
    parts = text.split("\n", n)
    if len(parts) == n + 1:
        return [part + "\n" for part in parts[:n]]
    return split_lines(text)


class _Side:
    """One text's lines, materialised only where rows may need them.

    The common head and tail are kept as counts plus the few lines next to the middle, so a
    huge text with a small change costs little more than a few C-speed scans.
    """

    def __init__(self, text: str, p: int, s: int, keep: int, window: int | None) -> None:
        head = text[:p]
        tail = text[len(text) - s :] if s else ""
        middle = text[p : len(text) - s]
        self.head_count = head.count("\n")
        self.head = _last_lines(head, keep)
        self.tail_count = tail.count("\n") + (1 if tail and not tail.endswith("\n") else 0)
        self.tail = _first_lines(tail, keep)
        if window is None or len(middle) <= window:
            self.mid = split_lines(middle)
            self.mid_count = len(self.mid)
        else:
            self.mid = split_lines(middle[:window])
            if len(self.mid) > 1 and not self.mid[-1].endswith("\n"):
                self.mid.pop()  # cut by the window; rows stop before it
            self.mid_count = middle.count("\n") + (0 if middle.endswith("\n") else 1)

    def __len__(self) -> int:
        return self.head_count + self.mid_count + self.tail_count

    def get(self, i: int) -> str | None:
        """Line `i` (0-based), or None when it was not kept."""
        if i < self.head_count:
            k = i - (self.head_count - len(self.head))
            return self.head[k] if k >= 0 else None
        i -= self.head_count
        if i < self.mid_count:
            return self.mid[i] if i < len(self.mid) else None
        i -= self.mid_count
        return self.tail[i] if i < len(self.tail) else None

    def span(self, i1: int, i2: int) -> list[str]:
        """Lines i1..i2 of the middle, where every line is kept (unless it was huge)."""
        return self.mid[i1 - self.head_count : i2 - self.head_count]


_RowSide = Callable[[int], "tuple[Segment, ...] | None"]


class _LineDiff:
    """Builds the rows of a line-aligned diff while keeping to its budgets."""

    def __init__(
        self, a: str, b: str, context: int, max_chars: int, deadline: float, fold_limit: int
    ) -> None:
        self.a, self.b = a, b
        self.context = max(context, 0)
        self.max_chars = max_chars
        self.deadline = deadline
        self.fold_limit = fold_limit
        self.rows: list[DiffLine] = []
        self.max_rows = max(50, max_chars // 40)
        self.out_left = max_chars  # characters of visible rows still allowed
        # Hidden rows only spare the page a round trip, so they get a smaller share.
        self.hidden_left = max_chars // 4
        self.words_left = max_chars  # characters still allowed into word diffs
        self.truncated = 0
        self.notes: list[str] = []
        self.word_blocks = 0
        self.words_ins = self.words_del = 0
        self.lines_ins = self.lines_del = 0
        self.uncounted: list[tuple[int, int, int, int]] = []  # blocks to count words in later
        self.sa: _Side
        self.sb: _Side
        self.huge = False

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def run(self) -> TextDiff:
        ops = self.opcodes()
        for k, (tag, i1, i2, j1, j2) in enumerate(ops):
            if tag == "equal":
                self.equal(i1, i2, j1, j2, first=k == 0, last=k == len(ops) - 1)
            else:
                self.change(i1, i2, j1, j2)
        if self.truncated:
            self.note(NOTE_TRUNCATED.format(n=self.truncated))
        granularity: Granularity = "word" if self.word_blocks else "line"
        if granularity == "word":
            for i1, i2, j1, j2 in self.uncounted:
                self.words_del += len(_WORD_RE.findall("".join(self.sa.span(i1, i2))))
                self.words_ins += len(_WORD_RE.findall("".join(self.sb.span(j1, j2))))
            ins, dels = self.words_ins, self.words_del
        else:
            ins, dels = self.lines_ins, self.lines_del
        return TextDiff(
            tuple(self.rows),
            granularity,
            bool(self.notes),
            " ".join(self.notes) or None,
            ins,
            dels,
            self.truncated,
        )

    def opcodes(self) -> list[Opcode]:
        """Line opcodes: common head and tail lines cut at C speed, the middle aligned."""
        a, b = self.a, self.b
        p = common_prefix(a, b)
        p = a.rfind("\n", 0, p) + 1
        s = _line_suffix(a, b, p, _common_suffix(a, b, min(len(a), len(b)) - p))
        huge = len(a) + len(b) - 2 * (p + s) > _HUGE_FACTOR * self.max_chars
        keep = self.context + self.fold_limit + 1
        window = self.max_chars if huge else None
        self.huge = huge
        self.sa = _Side(a, p, s, keep, window)
        self.sb = _Side(b, p, s, keep, window)
        head, na, nb = self.sa.head_count, self.sa.mid_count, self.sb.mid_count
        middle: list[Opcode]
        if huge:
            self.note(NOTE_ALIGN)
            tag = "replace" if na and nb else ("delete" if na else "insert")
            middle = [(tag, 0, na, 0, nb)]
        else:
            middle, complete = align(self.sa.mid, self.sb.mid, deadline=self.deadline)
            if not complete:
                self.note(NOTE_ALIGN)
        ops: list[Opcode] = [("equal", 0, head, 0, head)]
        ops.extend((t, i1 + head, i2 + head, j1 + head, j2 + head) for t, i1, i2, j1, j2 in middle)
        tail = self.sa.tail_count
        ops.append(("equal", head + na, head + na + tail, head + nb, head + nb + tail))
        merged: list[Opcode] = []
        for op in ops:
            if op[1] == op[2] and op[3] == op[4]:
                continue
            last = merged[-1] if merged else None
            if last is not None and last[0] == op[0] == "equal":
                merged[-1] = ("equal", last[1], op[2], last[3], op[4])
            else:
                merged.append(op)
        return merged

    def equal(self, i1: int, i2: int, j1: int, j2: int, *, first: bool, last: bool) -> None:
        """Equal lines: context rows around the changes, a fold for the rest."""
        if self.truncated:
            return
        keep_head = 0 if first else self.context
        keep_tail = 0 if last else self.context
        if i2 - i1 <= keep_head + keep_tail:
            self.equal_rows(i1, i2, j1)
            return
        self.equal_rows(i1, i1 + keep_head, j1)
        if self.truncated:
            return
        f1, f2 = i1 + keep_head, i2 - keep_tail
        hidden: tuple[DiffLine, ...] = ()
        if f2 - f1 <= self.fold_limit:
            lines = [self.sa.get(i) or "" for i in range(f1, f2)]
            size = sum(map(len, lines))
            if size <= self.hidden_left:
                self.hidden_left -= size
                hidden = tuple(
                    _equal_row(line, f1 + k + 1, f1 - i1 + j1 + k + 1)
                    for k, line in enumerate(lines)
                )
        fold_j = j1 + keep_head
        self.rows.append(DiffLine("fold", (), (), f1 + 1, fold_j + 1, f2 - f1, hidden))
        self.equal_rows(f2, i2, f2 - i1 + j1)

    def equal_rows(self, i1: int, i2: int, j1: int) -> None:
        for i in range(i1, i2):
            row = _equal_row(self.sa.get(i) or "", i + 1, i - i1 + j1 + 1)
            if not self.add(row):
                return

    def change(self, i1: int, i2: int, j1: int, j2: int) -> None:
        """A block of changed lines: word-diffed when within budget, else whole lines."""
        nl, nr = i2 - i1, j2 - j1
        self.lines_del += nl
        self.lines_ins += nr
        if self.truncated:
            self.truncated += max(nl, nr)
            self.uncounted.append((i1, i2, j1, j2))
            return
        if nl and nr and not self.huge:  # a huge middle is only partly kept: no words
            words = self.word_lines(i1, i2, j1, j2)
            if words is not None:
                left, right = words
                self.emit(left.__getitem__, right.__getitem__, i1, j1, nl, nr)
                return
            self.note(NOTE_WORDS)
        self.uncounted.append((i1, i2, j1, j2))
        self.emit(
            self.whole(self.sa, i1, "delete"), self.whole(self.sb, j1, "insert"), i1, j1, nl, nr
        )

    @staticmethod
    def whole(side: _Side, start: int, op: Op) -> _RowSide:
        """Row sides made on demand (a big block may never be shown in full)."""

        def at(k: int) -> tuple[Segment, ...] | None:
            line = side.get(start + k)
            return None if line is None else (Segment(line, op),)

        return at

    def word_lines(
        self, i1: int, i2: int, j1: int, j2: int
    ) -> tuple[list[tuple[Segment, ...]], list[tuple[Segment, ...]]] | None:
        """Word-level segments per line of a changed block, or None when over budget."""
        if perf_counter() > self.deadline:
            return None
        a = "".join(self.sa.span(i1, i2))
        b = "".join(self.sb.span(j1, j2))
        p = _snap_prefix(a, common_prefix(a, b))
        s = _snap_suffix(a, _common_suffix(a, b, min(len(a), len(b)) - p))
        size = len(a) + len(b) - 2 * (p + s)
        if size > self.words_left:
            return None
        self.words_left -= size
        ta = _TOKEN_RE.findall(a, p, len(a) - s)
        tb = _TOKEN_RE.findall(b, p, len(b) - s)
        ops, complete = align(ta, tb, deadline=self.deadline)
        if not complete:
            self.note(NOTE_ALIGN)
        chunks = _chunks(ta, tb, ops)
        if p:
            chunks.insert(0, _Chunk([a[:p]], [a[:p]], True))
        if s:
            chunks.append(_Chunk([a[len(a) - s :]], [a[len(a) - s :]], True))
        chunks = _cleanup(chunks)
        for chunk in chunks:
            if not chunk.equal:
                self.words_del += len(_WORD_RE.findall("".join(chunk.a)))
                self.words_ins += len(_WORD_RE.findall("".join(chunk.b)))
        self.word_blocks += 1
        return _side(chunks, left=True), _side(chunks, left=False)

    def emit(self, left: _RowSide, right: _RowSide, i1: int, j1: int, nl: int, nr: int) -> None:
        """Pair the block's left and right lines into rows, as far as the budget allows."""
        n = max(nl, nr)
        for k in range(n):
            lsegs = left(k) if k < nl else ()
            rsegs = right(k) if k < nr else ()
            if lsegs is None or rsegs is None:  # past what a huge text kept
                self.truncated += n - k
                return
            kind: LineKind = "change" if lsegs and rsegs else ("delete" if lsegs else "insert")
            row = DiffLine(
                kind, lsegs, rsegs, i1 + k + 1 if k < nl else None, j1 + k + 1 if k < nr else None
            )
            if not self.add(row):
                self.truncated += n - k - 1
                return

    def add(self, row: DiffLine) -> bool:
        """Append a row within the output budget; past it, clip the row and stop."""
        if self.truncated:
            return False
        if len(self.rows) >= self.max_rows:
            self.truncated += 1
            return False
        cost = sum(len(s.text) for s in row.left) + sum(len(s.text) for s in row.right)
        if cost <= self.out_left:
            self.out_left -= cost
            self.rows.append(row)
            return True
        half = self.out_left // 2
        self.out_left = 0
        self.rows.append(
            DiffLine(
                row.kind,
                _clip(row.left, half),
                _clip(row.right, half),
                row.left_no,
                row.right_no,
            )
        )
        # Counted as one more so that `truncated` alone tells that rows were cut.
        self.truncated += 1
        return False


def _clip(segments: tuple[Segment, ...], limit: int) -> tuple[Segment, ...]:
    """The first `limit` characters of a row side, with "…" where it was cut."""
    out: list[Segment] = []
    for seg in segments:
        if len(seg.text) >= limit:
            if limit > 0:
                out.append(Segment(seg.text[:limit] + "…", seg.op))
            break
        out.append(seg)
        limit -= len(seg.text)
    return tuple(out)
