"""Bounded sequence alignment: patience anchors for big inputs, difflib for small leftovers.

difflib.SequenceMatcher alone is quadratic in the worst case and has no time limit, so it
only ever sees ranges whose size product is small; larger ranges are split at elements
that occur exactly once on each side (patience diff), which costs O(n log n).
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections import Counter
from collections.abc import Hashable, Sequence
from difflib import SequenceMatcher
from time import perf_counter

# (tag, i1, i2, j1, j2) with difflib's tags: "equal", "replace", "delete", "insert".
Opcode = tuple[str, int, int, int, int]

# Above this len(a) * len(b), a range is not handed to SequenceMatcher (~2 ms worst case).
SMALL_PRODUCT = 40_000


def align(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    *,
    deadline: float,
    small: int = SMALL_PRODUCT,
) -> tuple[list[Opcode], bool]:
    """Opcodes turning `a` into `b`, and False when a bound left some ranges unaligned."""
    matches: list[tuple[int, int, int]] = []
    complete = True
    stack = [(0, len(a), 0, len(b))]
    while stack:
        if perf_counter() > deadline:
            complete = False
            break
        i1, i2, j1, j2 = stack.pop()
        k = 0
        while i1 + k < i2 and j1 + k < j2 and a[i1 + k] == b[j1 + k]:
            k += 1
        if k:
            matches.append((i1, j1, k))
            i1 += k
            j1 += k
        k = 0
        while i1 < i2 - k and j1 < j2 - k and a[i2 - k - 1] == b[j2 - k - 1]:
            k += 1
        if k:
            matches.append((i2 - k, j2 - k, k))
            i2 -= k
            j2 -= k
        if i1 == i2 or j1 == j2:
            continue
        if (i2 - i1) * (j2 - j1) <= small:
            matcher = SequenceMatcher(None, a[i1:i2], b[j1:j2], autojunk=False)
            matches.extend(
                (i1 + bi, j1 + bj, n) for bi, bj, n in matcher.get_matching_blocks() if n
            )
            continue
        anchors, disjoint = _unique_anchors(a, b, i1, i2, j1, j2)
        if not anchors:
            # Nothing cheap to split on: leave the range as one replacement, which is exact
            # when the two sides share no element at all.
            complete = complete and disjoint
            continue
        pi, pj = i1, j1
        run_i, run_j, run_n = i1, j1, 0  # consecutive anchors make one match
        for i, j in anchors:
            if i == pi and j == pj and run_n:
                run_n += 1
            else:
                if run_n:
                    matches.append((run_i, run_j, run_n))
                run_i, run_j, run_n = i, j, 1
                if i > pi and j > pj:
                    stack.append((pi, i, pj, j))
            pi, pj = i + 1, j + 1
        matches.append((run_i, run_j, run_n))
        if i2 > pi and j2 > pj:
            stack.append((pi, i2, pj, j2))
    return _opcodes(matches, len(a), len(b)), complete


# Elements occurring the same number of times (at most this) on both sides may anchor too,
# k-th occurrence to k-th, when unique ones are too sparse to split a range well.
_REPEAT_LIMIT = 4


def _unique_anchors(
    a: Sequence[Hashable], b: Sequence[Hashable], i1: int, i2: int, j1: int, j2: int
) -> tuple[list[tuple[int, int]], bool]:
    """Pairs (i, j) to split a range at, increasing in both; and whether the sides share nothing.

    First elements unique on both sides (patience diff). When those are sparse, each level
    of recursion would peel off only a few and the whole becomes quadratic, so elements with
    equal small counts on both sides are paired up too.
    """
    count_a = Counter(a[i1:i2])
    count_b = Counter(b[j1:j2])
    anchors = _anchors(a, b, i1, i2, j1, j2, count_a, count_b, 1)
    if len(anchors) * 16 < min(i2 - i1, j2 - j1):
        more = _anchors(a, b, i1, i2, j1, j2, count_a, count_b, _REPEAT_LIMIT)
        if len(more) > len(anchors):
            return more, False
    return anchors, not anchors and count_a.keys().isdisjoint(count_b.keys())


def _anchors(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    i1: int,
    i2: int,
    j1: int,
    j2: int,
    count_a: Counter[Hashable],
    count_b: Counter[Hashable],
    limit: int,
) -> list[tuple[int, int]]:
    if limit == 1:
        common = {x for x, c in count_a.items() if c == 1} & {
            x for x, c in count_b.items() if c == 1
        }
        if not common:
            return []
        where = {x: j for j, x in enumerate(b[j1:j2], j1) if x in common}
        return _increasing([(i, where[x]) for i, x in enumerate(a[i1:i2], i1) if x in common])
    where_b: dict[Hashable, list[int]] = {}
    for j in range(j1, j2):
        x = b[j]
        c = count_b[x]
        if c <= limit and count_a.get(x) == c:
            where_b.setdefault(x, []).append(j)
    if not where_b:
        return []
    seen: Counter[Hashable] = Counter()
    pairs: list[tuple[int, int]] = []
    for i in range(i1, i2):
        x = a[i]
        js = where_b.get(x)
        if js is not None:
            pairs.append((i, js[seen[x]]))
            seen[x] += 1
    return _increasing(pairs)


def _increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`pairs` (sorted by i) cut down to a longest run whose j increases too."""
    js = [j for _, j in pairs]
    if all(map(operator.lt, js, js[1:])):  # the usual case: nothing moved
        return pairs
    return _longest_increasing(pairs)


def _longest_increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of `pairs` (sorted by i) whose j also increases."""
    tails: list[int] = []
    tail_at: list[int] = []
    back = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        p = bisect_left(tails, j)
        if p:
            back[k] = tail_at[p - 1]
        if p == len(tails):
            tails.append(j)
            tail_at.append(k)
        else:
            tails[p] = j
            tail_at[p] = k
    out: list[tuple[int, int]] = []
    k = tail_at[-1] if tail_at else -1
    while k >= 0:
        out.append(pairs[k])
        k = back[k]
    out.reverse()
    return out


def _opcodes(matches: list[tuple[int, int, int]], n: int, m: int) -> list[Opcode]:
    """difflib-style opcodes from non-crossing matching blocks."""
    matches.sort()
    ops: list[Opcode] = []
    i = j = 0
    for mi, mj, size in [*matches, (n, m, 0)]:
        if i < mi and j < mj:
            ops.append(("replace", i, mi, j, mj))
        elif i < mi:
            ops.append(("delete", i, mi, j, j))
        elif j < mj:
            ops.append(("insert", i, i, j, mj))
        if size:
            last = ops[-1] if ops else None
            if last is not None and last[0] == "equal" and last[2] == mi and last[4] == mj:
                ops[-1] = ("equal", last[1], mi + size, last[3], mj + size)
            else:
                ops.append(("equal", mi, mi + size, mj, mj + size))
        i, j = mi + size, mj + size
    return ops
