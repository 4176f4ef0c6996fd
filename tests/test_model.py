from __future__ import annotations

from bot.model import ChangedFile


def test_added_lines_keep_text_that_looks_like_a_header() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -1,2 +1,3 @@\n ctx\n+++counter\n---gone\n+x = 1\n\\ No newline\n"
    changed = ChangedFile("x", "x", diff=diff)
    assert changed.added_lines() == [(2, "++counter"), (3, "x = 1")]
    assert changed.line_counts() == (2, 1)


def test_added_lines_follow_each_hunk() -> None:
    diff = "@@ -1 +1 @@\n-a\n+b\n@@ -10,2 +10,2 @@\n c\n+d\n"
    assert ChangedFile("x", "x", diff=diff).added_lines() == [(1, "b"), (11, "d")]
