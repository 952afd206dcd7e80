"""A patch as the submission page shows it: files, hunks, and each line's old and new number."""
from __future__ import annotations

from errauto_daemon.web import diff

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
