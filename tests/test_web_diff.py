"""A patch as the submission page shows it: files, hunks, each line's old and new number, colours, folds."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from markupsafe import Markup
from pygments.lexer import Lexer
from pygments.lexers import PythonLexer
from pygments.token import Token

from errauto_daemon.web import diff, diffview, highlight

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

MAIL = """\
From 1234 Mon Sep 17 00:00:00 2001
From: A Person <a@example.org>
Subject: [PATCH] fix add, drop old notes

---
 calc.py | 3 ++-
 2 files changed

diff --git a/calc.py b/calc.py
index 1111111..2222222 100644
--- a/calc.py
+++ b/calc.py
@@ -1,4 +1,5 @@
 def add(a, b):
-    return a - b
+    return a + b
+
 
@@ -10,2 +11,2 @@ def neg(a):
--- a comment that starts like a file header
+-- a comment that starts like a signature
\\ No newline at end of file
diff --git a/old notes.txt b/old notes.txt
deleted file mode 100644
--- a/old notes.txt
+++ /dev/null
@@ -1 +0,0 @@
-gone
-- 
2.40.0
"""


def test_a_mail_is_read_as_its_message_and_files() -> None:
    view = diff.read(MAIL)
    assert view.message.startswith("From 1234") and "Subject: [PATCH] fix add" in view.message
    assert [f.name for f in view.files] == ["calc.py", "old notes.txt"]
    calc, notes = view.files
    assert calc.header[0] == "diff --git a/calc.py b/calc.py" and calc.old_name == calc.new_name == "calc.py"
    assert (calc.added, calc.removed) == (3, 2)
    assert notes.new_name is None and notes.old_name == "old notes.txt" and (notes.added, notes.removed) == (0, 1)


def test_each_line_has_its_old_and_new_number() -> None:
    calc = diff.read(MAIL).files[0]
    numbered = [(line.kind, line.old, line.new, line.text) for line in calc.lines]
    assert numbered == [
        ("hunk", None, None, "@@ -1,4 +1,5 @@"),
        ("context", 1, 1, "def add(a, b):"),
        ("del", 2, None, "    return a - b"),
        ("add", None, 2, "    return a + b"),
        ("add", None, 3, ""),
        ("context", 3, 4, ""),
        ("hunk", None, None, "@@ -10,2 +11,2 @@ def neg(a):"),
        ("del", 10, None, "-- a comment that starts like a file header"),
        ("add", None, 11, "-- a comment that starts like a signature"),
        ("note", None, None, "\\ No newline at end of file"),
    ]


def test_the_signature_after_the_last_hunk_is_not_a_removed_line() -> None:
    notes = diff.read(MAIL).files[1]
    assert [line.kind for line in notes.lines] == ["hunk", "del"]
    assert notes.header[-2:] == ["-- ", "2.40.0"]


def test_a_plain_diff_and_a_new_file() -> None:
    view = diff.read("--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+a\n+b\n"
                     "--- a/x.py\n+++ b/x.py\n@@ -3 +3 @@\n-x\n+y\n")
    assert view.message == ""
    assert [(f.old_name, f.new_name) for f in view.files] == [(None, "new.py"), ("x.py", "x.py")]
    assert [(line.new, line.text) for line in view.files[0].lines[1:]] == [(1, "a"), (2, "b")]
    assert [(line.old, line.new) for line in view.files[1].lines[1:]] == [(3, None), (None, 3)]


def test_text_that_is_no_diff_is_all_message() -> None:
    assert diff.read("just words\n<b>x</b>\n") == diff.PatchView("just words\n<b>x</b>", ())


def test_a_file_without_hunks_is_named_from_its_git_line() -> None:
    view = diff.read("diff --git a/logo.png b/logo.png\nnew file mode 100644\nBinary files /dev/null and b/logo.png differ\n")
    assert [f.name for f in view.files] == ["logo.png"] and view.files[0].lines == []


# -- colouring ---------------------------------------------------------------------------------


def one_file(name: str, lines: list[str], *, context: tuple[str, ...] | list[str] = ()) -> diff.FileDiff:
    body = "".join(f" {c}\n" for c in context) + "".join(f"+{line}\n" for line in lines)
    count = len(context) + len(lines)
    view = diff.read(f"--- a/{name}\n+++ b/{name}\n@@ -1,{len(context)} +1,{count} @@\n{body}")
    return view.files[0]


def test_a_python_file_is_coloured_with_token_classes() -> None:
    f = one_file("pkg/mod.py", ['    return add(1, "two")'], context=["def f():"])
    coloured = highlight.colour_file(f)
    assert coloured is not None and coloured[0] is None  # the @@ line stays as it is
    assert coloured[1] == Markup('<span class="k">def</span> <span class="nf">f</span><span class="p">():</span>')
    assert coloured[2] == Markup('    <span class="k">return</span> <span class="n">add</span><span class="p">(</span>'
                                 '<span class="mi">1</span><span class="p">,</span> '
                                 '<span class="s2">&#34;two&#34;</span><span class="p">)</span>')


def test_an_unknown_or_plain_text_name_is_not_coloured() -> None:
    for name in ("notes.zzz", "README.txt", "(unnamed)", "no-extension-at-all"):
        assert highlight.colour_file(one_file(name, ["def f(): return 1"])) is None, name


def test_a_string_over_several_lines_is_coloured_as_one() -> None:
    f = one_file("doc.py", ['TEXT = """first', "second line, still the string", '"""'])
    coloured = highlight.colour_file(f)
    assert coloured is not None
    assert coloured[2] == Markup('<span class="s2">second line, still the string</span>')


def test_removed_lines_are_coloured_from_the_old_side() -> None:
    f = diff.read('--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-s = """a\n-b"""\n+s = 1\n+b = 2\n').files[0]
    coloured = highlight.colour_file(f)
    assert coloured is not None
    assert coloured[2] == Markup('<span class="s2">b&#34;&#34;&#34;</span>')  # removed: the old text's string
    assert coloured[4] == Markup('<span class="n">b</span> <span class="o">=</span> <span class="mi">2</span>')


def test_script_tags_in_a_coloured_line_stay_text() -> None:
    script = "<script>alert(1)</script>"
    for name in ("x.py", "page.html", "a.js"):
        coloured = highlight.colour_file(one_file(name, [script, f'x = "{script}"']))
        assert coloured is not None, name
        text = "".join(str(m) for m in coloured if m is not None)
        assert "<script" not in text and "</script" not in text, name
        plain = re.sub(r'<span class="[\w-]+">|</span>', "", text)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in plain, name


def test_a_lexer_that_changes_its_text_leaves_the_file_plain() -> None:
    class Shouting(Lexer):
        def get_tokens_unprocessed(self, text: str) -> Iterator[tuple[int, Any, str]]:
            yield 0, Token.Keyword, text.upper()

    assert highlight.colour_text(Shouting(), ["quiet"]) is None
    assert highlight.colour_text(PythonLexer(stripnl=False), ["x = 1", "", "y"]) is not None


# -- what is shown: folding and bounds ----------------------------------------------------------


def changed_file(name: str, added: int) -> str:
    return f"--- /dev/null\n+++ b/{name}\n@@ -0,0 +1,{added} @@\n" + "".join(f"+x{i}\n" for i in range(added))


def test_a_file_with_many_changes_starts_closed() -> None:
    shown = diffview.shown(diff.read(changed_file("small.txt", diffview.FOLD_CHANGES)
                                     + changed_file("big.txt", diffview.FOLD_CHANGES + 1)))
    assert [(f.diff.name, f.open) for f in shown.files] == [("small.txt", True), ("big.txt", False)]


def test_a_long_run_of_context_is_folded_but_for_its_ends() -> None:
    run = diffview.FOLD_CONTEXT + 1
    text = f"--- a/f.txt\n+++ b/f.txt\n@@ -1,{run + 1} +1,{run + 1} @@\n-a\n+b\n" + "".join(
        f" c{i}\n" for i in range(run))
    parts = diffview.shown(diff.read(text)).files[0].parts
    kept = diffview.KEEP_CONTEXT
    assert [type(p).__name__ for p in parts] == ["Row"] * 3 + ["Row"] * kept + ["Fold"] + ["Row"] * kept
    fold = parts[3 + kept]
    assert isinstance(fold, diffview.Fold) and len(fold.rows) == run - 2 * kept
    assert (fold.first.text, fold.last.text) == (f"c{kept}", f"c{run - kept - 1}")
    short = text.replace(f" c{run - 1}\n", "").replace(f"{run + 1} @@", f"{run} @@")
    assert not any(isinstance(p, diffview.Fold) for p in diffview.shown(diff.read(short)).files[0].parts)


def test_the_files_shown_are_bounded_and_the_rest_counted() -> None:
    more = 3
    shown = diffview.shown(diff.read("".join(changed_file(f"f{i}.txt", 1)
                                             for i in range(diffview.MAX_FILES + more))))
    assert len(shown.files) == diffview.MAX_FILES and shown.more_files == more
    assert shown.total_files == diffview.MAX_FILES + more


def py(name: str, lines: int) -> str:
    """A new Python file whose diff has `lines` lines (its @@ line counts)."""
    return f"--- /dev/null\n+++ b/{name}\n@@ -0,0 +1,{lines - 1} @@\n" + "".join(
        f"+x{i} = {i}\n" for i in range(lines - 1))


def test_files_are_coloured_in_order_while_the_budget_lasts() -> None:
    budget = diffview.COLOUR_LINES
    shown = diffview.shown(diff.read(py("a.py", budget // 2) + py("notes.zzz", budget) + py("b.py", budget // 2 + 1)
                                     + py("c.py", budget // 2)))
    # a.py takes half; a plain file costs nothing; b.py is one line too long for the rest; c.py fits it.
    assert [(f.diff.name, f.coloured) for f in shown.files] == [
        ("a.py", True), ("notes.zzz", False), ("b.py", False), ("c.py", True)]
    assert shown.files[2].parts[1] == diffview.Row(shown.files[2].diff.lines[1])  # plain: no markup
    assert not diffview.shown(diff.read(py("long.py", budget + 1))).files[0].coloured


def test_the_lines_shown_are_bounded_and_the_rest_counted() -> None:
    size = diffview.MAX_LINES // 2 + 10
    shown = diffview.shown(diff.read(changed_file("a.txt", size - 1) + changed_file("b.txt", size - 1)
                                     + changed_file("c.txt", 4)))
    assert [(len(f.parts), f.left_out) for f in shown.files] == [
        (size, 0), (diffview.MAX_LINES - size, 2 * size - diffview.MAX_LINES), (0, 5)]
    assert not shown.files[1].coloured


def test_the_same_patch_text_is_laid_out_once() -> None:
    text = py("cached.py", 3)
    assert diffview.of_text(text) is diffview.of_text(text)
    assert diffview.of_text(text).files[0].coloured
