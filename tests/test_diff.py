"""Tests for versioned_admin.diff: pure functions, no database."""

from __future__ import annotations

import enum
import json
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from versioned_admin.diff import (
    EMPTY,
    DiffLine,
    KeyDiff,
    Segment,
    TextDiff,
    changed_fields,
    collection_diff,
    diff_states,
    display_value,
    json_diff,
    preview,
    split_lines,
    text_diff,
    values_equal,
)

# Generous budgets so property tests are deterministic (never cut short by a slow machine).
EXACT: dict[str, Any] = {"time_budget": 60.0, "fold_limit": 10**9, "max_chars": 10**9}


def side_text(segments: Sequence[Segment], *, left: bool) -> str:
    skip = "insert" if left else "delete"
    return "".join(s.text for s in segments if s.op != skip)


def reconstruct(diff: TextDiff, *, left: bool, source: str | None = None) -> str:
    """One side's text from the rows; folds without hidden lines are read from `source`."""
    source_lines = split_lines(source) if source is not None else []
    out: list[str] = []
    for row in diff.lines:
        if row.kind == "fold":
            if row.expandable:
                out.extend(side_text(h.left if left else h.right, left=left) for h in row.hidden)
            else:
                start = row.left_no if left else row.right_no
                assert start is not None and source is not None
                out.extend(source_lines[start - 1 : start - 1 + row.folded])
        else:
            out.append(side_text(row.left if left else row.right, left=left))
    return "".join(out)


def check_rows(diff: TextDiff) -> None:
    """Structural invariants of every row."""
    for row in diff.lines:
        assert all(s.op != "insert" for s in row.left)
        assert all(s.op != "delete" for s in row.right)
        assert all(s.text for s in (*row.left, *row.right))
        if row.kind == "fold":
            assert row.folded > 0 and not row.left and not row.right
            assert all(h.kind == "equal" for h in row.hidden)
        elif row.kind == "equal":
            assert row.left == row.right
        elif row.kind == "insert":
            assert not row.left and row.left_no is None and row.right_no is not None
        elif row.kind == "delete":
            assert not row.right and row.right_no is None and row.left_no is not None
        else:
            assert row.left_no is not None and row.right_no is not None


def numbers(diff: TextDiff, *, left: bool) -> list[int]:
    """Line numbers in row order, folds expanded by count."""
    out: list[int] = []
    for row in diff.lines:
        no = row.left_no if left else row.right_no
        if no is None:
            continue
        out.extend(range(no, no + (row.folded if row.kind == "fold" else 1)))
    return out


# --- text_diff ---------------------------------------------------------------------------


def test_short_strings_get_a_character_diff() -> None:
    d = text_diff("kitten", "sitting")
    assert d.granularity == "char" and not d.coarse and d.note is None
    (row,) = d.lines
    assert row.kind == "change" and (row.left_no, row.right_no) == (1, 1)
    assert row.left == (
        Segment("k", "delete"),
        Segment("itt", "equal"),
        Segment("en", "delete"),
    )
    assert row.right == (
        Segment("s", "insert"),
        Segment("itt", "equal"),
        Segment("ing", "insert"),
    )
    assert (d.insertions, d.deletions) == (4, 3)


def test_short_diff_does_not_shred_a_replaced_phrase() -> None:
    (row,) = text_diff("The quick brown fox", "The slow red fox").lines
    assert Segment("The ", "equal") in row.left and Segment(" fox", "equal") in row.left
    assert len([s for s in row.left if s.op == "delete"]) == 1


def test_insert_and_delete_of_whole_short_value() -> None:
    (row,) = text_diff(None, "new").lines
    assert row.kind == "insert" and row.left == () and row.right == (Segment("new", "insert"),)
    assert (row.left_no, row.right_no) == (None, 1)
    (row,) = text_diff("old", "").lines
    assert row.kind == "delete" and row.right == () and row.right_no is None


def test_none_and_empty_are_the_same_text() -> None:
    for a, b in [(None, None), (None, ""), ("", None), ("", "")]:
        d = text_diff(a, b)
        assert d.lines == () and not d.coarse and d.insertions == d.deletions == 0


def test_equal_texts_give_one_fold() -> None:
    text = "".join(f"line {i}\n" for i in range(10))
    (fold,) = text_diff(text, text).lines
    assert fold.kind == "fold" and fold.folded == 10 and fold.expandable
    assert [h.left_no for h in fold.hidden] == list(range(1, 11))


def paragraph(i: int) -> str:
    return f"Paragraph {i} talks about topic number {i} with several plain words in it.\n"


def test_word_diff_inside_long_multiline_text() -> None:
    old = "".join(paragraph(i) for i in range(30))
    new = old.replace("topic number 12 with", "subject number 12 with")
    d = text_diff(old, new)
    assert d.granularity == "word" and not d.coarse
    (row,) = [r for r in d.lines if r.kind == "change"]
    assert (row.left_no, row.right_no) == (13, 13)
    assert Segment("topic", "delete") in row.left
    assert Segment("subject", "insert") in row.right
    assert row.left[0] == Segment("Paragraph 12 talks about ", "equal")
    assert (d.insertions, d.deletions) == (1, 1)


def test_adjacent_changed_words_merge_into_one_segment() -> None:
    old = "".join(paragraph(i) for i in range(5)) + "alpha beta gamma delta\n"
    new = "".join(paragraph(i) for i in range(5)) + "alpha one two delta\n"
    row = [r for r in text_diff(old, new).lines if r.kind == "change"][0]
    assert row.left == (
        Segment("alpha ", "equal"),
        Segment("beta gamma", "delete"),
        Segment(" delta\n", "equal"),
    )


def test_unchanged_runs_fold_with_context() -> None:
    old = "".join(paragraph(i) for i in range(40))
    new = old.replace("topic number 20 ", "topic number twenty ")
    d = text_diff(old, new, context=3)
    kinds = [r.kind for r in d.lines]
    assert kinds == ["fold", "equal", "equal", "equal", "change", "equal", "equal", "equal", "fold"]
    assert (d.lines[0].left_no, d.lines[0].folded) == (1, 17)
    assert (d.lines[-1].left_no, d.lines[-1].folded) == (25, 16)
    assert numbers(d, left=True) == list(range(1, 41))
    assert reconstruct(d, left=True) == old and reconstruct(d, left=False) == new


def test_short_runs_between_changes_are_not_folded() -> None:
    old = "".join(paragraph(i) for i in range(12))
    new = old.replace("topic number 2 ", "X ").replace("topic number 8 ", "Y ")
    d = text_diff(old, new, context=3)
    # 5 equal lines between the changes (not more than 2 * context) and 2 before, 3 after
    # (not more than context): all shown.
    assert [r.kind for r in d.lines].count("fold") == 0
    d = text_diff(old, new, context=2)
    assert [r.kind for r in d.lines].count("fold") == 2
    assert numbers(d, left=True) == list(range(1, 13))


def test_large_fold_carries_no_hidden_lines() -> None:
    old = "".join(paragraph(i) for i in range(300))
    new = old.replace("number 150 ", "number one-fifty ")
    d = text_diff(old, new, fold_limit=50)
    folds = [r for r in d.lines if r.kind == "fold"]
    assert folds and all(not f.expandable and f.hidden == () for f in folds)
    assert reconstruct(d, left=True, source=old) == old
    assert reconstruct(d, left=False, source=new) == new


def test_inserted_and_deleted_lines() -> None:
    old = "".join(paragraph(i) for i in range(6))
    new = old.replace(paragraph(2), "") + "A brand new closing line.\n"
    d = text_diff(old, new)
    kinds = [r.kind for r in d.lines]
    assert "delete" in kinds and "insert" in kinds
    deleted = next(r for r in d.lines if r.kind == "delete")
    assert deleted.left == (Segment(paragraph(2), "delete"),) and deleted.left_no == 3
    assert reconstruct(d, left=True) == old and reconstruct(d, left=False) == new


def test_missing_final_newline_is_a_change() -> None:
    old = "".join(paragraph(i) for i in range(6))
    d = text_diff(old, old.rstrip("\n"))
    row = next(r for r in d.lines if r.kind != "equal" and r.kind != "fold")
    assert Segment("\n", "delete") in row.left
    assert reconstruct(d, left=False) == old.rstrip("\n")


def test_unicode_emoji_and_control_characters_pass_through() -> None:
    old = "héllo wörld 👋🏽 tab\there \x00 nul \u2028 sep\r\n" * 3 + "日本語のテキスト\n"
    new = old.replace("wörld", "мир").replace("👋🏽", "👩‍👩‍👧")
    d = text_diff(old, new)
    assert reconstruct(d, left=True) == old and reconstruct(d, left=False) == new
    check_rows(d)
    short = text_diff("café ☕", "cafe ☕☕")
    assert reconstruct(short, left=True) == "café ☕"
    assert reconstruct(short, left=False) == "cafe ☕☕"


def test_markup_is_plain_data() -> None:
    d = text_diff("<b>hi</b>", "<script>alert(1)</script>")
    row = d.lines[0]
    assert reconstruct(d, left=False) == "<script>alert(1)</script>"
    assert any("<" in s.text for s in row.right)
    assert display_value("<script>") == "<script>"


def big_text(seed: int, size: int = 1_000_000) -> tuple[list[str], list[str]]:
    rnd = random.Random(seed)
    words = ["".join(rnd.choices("abcdefghijklmnop", k=rnd.randint(2, 9))) for _ in range(3000)]
    lines: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rnd.choices(words, k=rnd.randint(5, 14))) + ".\n"
        lines.append(line)
        total += len(line)
    return lines, words


def test_one_megabyte_with_scattered_edits_stays_small() -> None:
    lines, words = big_text(1)
    rnd = random.Random(2)
    edited = list(lines)
    for _ in range(200):
        k = rnd.randrange(len(edited))
        edited[k] = rnd.choice(words) + " " + edited[k]
    old, new = "".join(lines), "".join(edited)
    d = text_diff(old, new)
    assert not d.coarse and d.granularity == "word" and d.truncated == 0
    visible = sum(len(r.left_text) + len(r.right_text) for r in d.lines)
    hidden = sum(len(h.left_text) for r in d.lines for h in r.hidden)
    assert visible < len(old) // 5 and hidden <= 200_000 // 4
    assert reconstruct(d, left=True, source=old) == old
    assert reconstruct(d, left=False, source=new) == new


def test_two_unrelated_megabytes_finish_coarse_and_bounded() -> None:
    old = "".join(big_text(1)[0])
    new = "".join(big_text(2)[0])
    d = text_diff(old, new, max_chars=200_000)
    assert d.coarse and d.note and d.truncated > 0
    check_rows(d)
    assert sum(len(r.left_text) + len(r.right_text) for r in d.lines) <= 200_000 + 2
    assert all(r.kind in ("change", "insert", "delete") for r in d.lines)
    # What is shown is the true start of both texts.
    shown = "".join(r.left_text for r in d.lines[:-1])
    assert old.startswith(shown)


def test_one_huge_line_is_clipped_not_dropped() -> None:
    old = "x" * 1_000_000
    new = "y" * 1_000_000
    d = text_diff(old, new, max_chars=1000)
    assert d.coarse and len(d.lines) == 1
    row = d.lines[0]
    assert row.left_text.endswith("…") and len(row.left_text) <= 501


def test_small_budget_falls_back_to_lines() -> None:
    old = "".join(paragraph(i) for i in range(20))
    new = old.replace("topic", "theme")
    d = text_diff(old, new, max_chars=100, context=0)
    assert d.coarse and d.note
    d = text_diff(old, new, time_budget=0.0)
    assert d.coarse and d.granularity == "line" and d.note
    assert reconstruct(d, left=True) == old and reconstruct(d, left=False) == new


lines_st = st.lists(
    st.sampled_from(["a\n", "b\n", "c c\n", "d, e!\n", "\n", "ünï 👍\n", "x y z", "\t\x01\n"]),
    max_size=40,
).map("".join)
texts_st = st.one_of(st.text(max_size=300), lines_st)


@settings(max_examples=300, deadline=None)
@given(texts_st, texts_st, st.integers(min_value=0, max_value=4))
def test_sides_reconstruct_both_texts(old: str, new: str, context: int) -> None:
    d = text_diff(old, new, context=context, **EXACT)
    assert not d.coarse and d.truncated == 0
    check_rows(d)
    assert reconstruct(d, left=True) == old
    assert reconstruct(d, left=False) == new
    assert numbers(d, left=True) == list(range(1, len(split_lines(old)) + 1))
    assert numbers(d, left=False) == list(range(1, len(split_lines(new)) + 1))


many_lines_st = st.lists(
    st.integers(min_value=0, max_value=40).map(lambda k: f"w{k % 7} x{k}\n" if k else "\n"),
    max_size=500,
).map("".join)


@settings(max_examples=60, deadline=None)
@given(many_lines_st, many_lines_st)
def test_long_repetitive_texts_reconstruct(old: str, new: str) -> None:
    # Big enough for the patience split and for giving up on ranges: still an exact diff.
    d = text_diff(old, new, **EXACT)
    assert d.truncated == 0
    check_rows(d)
    assert reconstruct(d, left=True) == old and reconstruct(d, left=False) == new


@settings(max_examples=150, deadline=None)
@given(
    many_lines_st,
    many_lines_st,
    st.integers(min_value=1, max_value=400),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=3),
)
def test_rows_show_true_lines_under_any_budget(
    old: str, new: str, max_chars: int, fold_limit: int, context: int
) -> None:
    # Coarse or truncated, every row shown is still a real line at its line number.
    d = text_diff(old, new, max_chars=max_chars, fold_limit=fold_limit, context=context)
    check_rows(d)
    left, right = split_lines(old), split_lines(new)
    for k, row in enumerate(d.lines):
        if row.kind == "fold":
            for h in row.hidden:
                assert h.left_no is not None
                assert side_text(h.left, left=True) == left[h.left_no - 1]
            continue
        if d.truncated and k == len(d.lines) - 1:
            continue  # the last row may be clipped
        if row.left_no is not None:
            assert side_text(row.left, left=True) == left[row.left_no - 1]
        if row.right_no is not None:
            assert side_text(row.right, left=False) == right[row.right_no - 1]
    if d.truncated == 0:
        assert reconstruct(d, left=True, source=old) == old
        assert reconstruct(d, left=False, source=new) == new


@settings(max_examples=100, deadline=None)
@given(lines_st, lines_st)
def test_fold_and_context_rules(old: str, new: str) -> None:
    d = text_diff(old, new, context=1, **EXACT)
    rows = d.lines
    for k, row in enumerate(rows):
        if row.kind == "fold":
            # A fold never touches another fold, and keeps context next to changes.
            assert k == 0 or rows[k - 1].kind == "equal"
            assert k == len(rows) - 1 or rows[k + 1].kind == "equal"
    if old == new:
        assert len(rows) <= 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_short_default_budget_is_exact(old: str, new: str) -> None:
    d = text_diff(old, new)
    assert reconstruct(d, left=True) == old and reconstruct(d, left=False) == new


# --- json_diff ---------------------------------------------------------------------------


def test_json_nested_by_key() -> None:
    old = {"a": {"b": [1, 2, 3], "c": "x"}, "gone": 1, "same": {"k": [1]}}
    new = {"a": {"b": [1, 5, 3, 4], "c": "x"}, "same": {"k": [1]}, "new key": True}
    diffs = {d.path: d for d in json_diff(old, new)}
    assert diffs["a.b[1]"] == KeyDiff("a.b[1]", "changed", 2, 5)
    assert diffs["a.b[3]"].kind == "added"
    assert diffs["a.b[0]"].kind == "equal" and diffs["a.c"].kind == "equal"
    assert diffs["gone"] == KeyDiff("gone", "removed", 1, None)
    assert diffs['["new key"]'] == KeyDiff('["new key"]', "added", None, True)
    assert diffs["same"].kind == "equal" and "same.k[0]" not in diffs


def test_json_list_insertion_does_not_shift_everything() -> None:
    old = [{"id": 1}, {"id": 2}, {"id": 3}]
    new = [{"id": 0}, {"id": 1}, {"id": 2}, {"id": 3}]
    kinds = [d.kind for d in json_diff(old, new)]
    assert kinds.count("added") == 1 and kinds.count("equal") == 3


def test_json_types_are_strict() -> None:
    assert json_diff({"a": 1}, {"a": True}) == (KeyDiff("a", "changed", 1, True),)
    assert json_diff({"a": 1}, {"a": 1.0})[0].kind == "changed"
    assert json_diff(None, {"a": 1}) == (KeyDiff("a", "added", None, 1),)
    assert json_diff("x", "x") == (KeyDiff("", "equal", "x", "x"),)


json_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=3), kids, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_st, json_st)
def test_json_diff_equal_iff_no_change(old: Any, new: Any) -> None:
    diffs = json_diff(old, new)
    same = json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)
    assert same == all(d.kind == "equal" for d in diffs)


# --- diff_states -------------------------------------------------------------------------


def test_states_in_column_order_with_added_and_removed_columns() -> None:
    old = {"id": 1, "title": "Old", "legacy": "x"}
    new = {"id": 1, "title": "New", "legacy": "x", "body": "text"}
    out = diff_states(old, new, fields=["id", "title", "body", "rating"])
    assert [f.name for f in out] == ["id", "title", "body", "rating", "legacy"]
    by = {f.name: f for f in out}
    assert by["id"].changed is False and by["id"].kind == "scalar"
    assert by["title"].kind == "text" and by["title"].text is not None
    assert by["body"].status == "added_column" and by["body"].old is None and by["body"].changed
    assert by["rating"].status == "added_column" and not by["rating"].changed
    assert by["legacy"].status == "removed_column" and not by["legacy"].changed
    assert by["title"].label == "Title"


def test_labels_and_default_labels() -> None:
    out = diff_states({"created_at": 1}, {"created_at": 2}, labels={})
    assert out[0].label == "Created at"
    out = diff_states({"created_at": 1}, {"created_at": 2}, labels={"created_at": "Made"})
    assert out[0].label == "Made"


def test_no_previous_version_means_everything_is_new() -> None:
    out = diff_states(None, {"a": 1, "b": "text", "c": None})
    assert all(f.changed and f.old is None and f.status == "present" for f in out)
    assert changed_fields(None, {"a": 1, "b": 2}) == ["a", "b"]
    assert diff_states(None, None) == [] and changed_fields(None, None) == []


def test_text_filled_only_when_changed() -> None:
    by = {f.name: f for f in diff_states({"a": "x", "b": "y"}, {"a": "x", "b": "z"})}
    assert by["a"].kind == "text" and by["a"].text is None and not by["a"].changed
    assert by["b"].text is not None and by["b"].text.lines[0].kind == "change"
    by = {f.name: f for f in diff_states({"a": None}, {"a": "now"})}
    assert by["a"].kind == "text" and by["a"].changed


def test_json_and_collection_fields() -> None:
    old = {"meta": {"a": 1}, "tags": ["red", "green"], "ids": {3, 1}}
    new = {"meta": {"a": 2}, "tags": ["green", "blue"], "ids": {1, 3}}
    by = {f.name: f for f in diff_states(old, new, collections=["tags"])}
    assert by["meta"].kind == "json" and by["meta"].keys == (KeyDiff("a", "changed", 1, 2),)
    tags = by["tags"]
    assert tags.kind == "collection" and tags.changed
    assert (tags.added, tags.removed, tags.unchanged) == (("blue",), ("red",), ("green",))
    ids = by["ids"]  # sets are collections even when not named
    assert ids.kind == "collection" and not ids.changed and ids.unchanged == (1, 3)
    # Reordering a collection is not a change.
    assert changed_fields({"t": ["a", "b"]}, {"t": ["b", "a"]}, collections=["t"]) == []
    assert changed_fields({"t": ["a", "b"]}, {"t": ["b", "a"]}) == ["t"]


def test_collection_diff_counts_repeats_and_unhashables() -> None:
    assert collection_diff(["a", "a", "b"], ["a", "c"]) == (("c",), ("a", "b"), ("a",))
    assert collection_diff([{"x": 1}], [{"x": 1}, {"y": 2}]) == (({"y": 2},), (), ({"x": 1},))
    assert collection_diff(None, ["a"]) == (("a",), (), ())


def test_values_equal_is_strict_where_it_matters() -> None:
    assert not values_equal(1, True) and not values_equal(0, False) and not values_equal(1, 1.0)
    assert values_equal(float("nan"), float("nan"))
    assert values_equal([1, {"a": (2,)}], (1, {"a": [2]}))
    assert values_equal(Decimal("1.0"), Decimal("1.00"))
    assert not values_equal({"a": 1}, [("a", 1)])


state_st = st.dictionaries(st.sampled_from("abcdef"), json_st, max_size=6)


@settings(max_examples=200, deadline=None)
@given(state_st)
def test_changed_fields_of_equal_states_is_empty(state: dict[str, Any]) -> None:
    assert changed_fields(state, dict(state)) == []
    assert not any(f.changed for f in diff_states(state, dict(state)))


@settings(max_examples=200, deadline=None)
@given(state_st, state_st)
def test_changed_exactly_where_values_differ(old: dict[str, Any], new: dict[str, Any]) -> None:
    def differs(key: str) -> bool:
        dump = json.dumps
        return dump(old.get(key), sort_keys=True) != dump(new.get(key), sort_keys=True)

    expected = {k for k in {*old, *new} if differs(k)}
    out = diff_states(old, new)
    assert {f.name for f in out} == {*old, *new}
    assert {f.name for f in out if f.changed} == expected
    assert set(changed_fields(old, new)) == expected
    assert changed_fields(old, new) == [f.name for f in out if f.changed]


# --- display_value and preview -----------------------------------------------------------


class Color(enum.Enum):
    RED = "r"


def test_display_value() -> None:
    assert display_value(None) == EMPTY
    assert display_value(True) == "yes" and display_value(False) == "no"
    assert display_value(datetime(2024, 5, 1, 12, 0, tzinfo=UTC)) == "2024-05-01T12:00:00+00:00"
    assert display_value(date(2024, 5, 1)) == "2024-05-01"
    assert display_value(Decimal("1E+2")) == "100"
    assert display_value(Decimal("0.10")) == "0.10"
    assert display_value(b"abc") == "<3 bytes>"
    assert display_value(Color.RED) == "RED"
    assert display_value({"a": [1, None, "é"]}) == '{"a":[1,null,"é"]}'
    assert display_value({3, 1}) == "[1,3]"
    assert display_value(0.1) == "0.1" and display_value(7) == "7"
    assert display_value("x" * 10, limit=5) == "xxxx…"


def test_preview_centres_on_first_difference() -> None:
    old = "a" * 100 + "X" + "b" * 100
    new = "a" * 100 + "Y" + "b" * 100
    a, b = preview(old, new, width=30)
    assert len(a) <= 30 and len(b) <= 30
    assert "X" in a and "Y" in b and a.startswith("…") and a.endswith("…")
    assert preview("short", "text") == ("short", "text")
    assert preview("two\nlines", None) == ("two lines", EMPTY)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300), st.integers(min_value=3, max_value=80))
def test_preview_is_one_short_line(old: str, new: str, width: int) -> None:
    for part in preview(old, new, width=width):
        assert len(part) <= width and "\n" not in part


def test_dataclasses_are_frozen() -> None:
    row = DiffLine("equal", (), (), 1, 1)
    with pytest.raises(AttributeError):
        row.kind = "fold"  # type: ignore[misc]
