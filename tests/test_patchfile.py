"""errauto's own patch parser, fed with what real tools write.

Every patch here is produced by the real `git diff`, `git format-patch`, GNU
`diff` or Python's email package, then parsed with `patchfile.parse`; the
malformed ones are real output cut or bent in one precise way.
"""
from __future__ import annotations

import base64
import email.policy
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest

from errauto_daemon.errors import PatchRejected
from errauto_daemon.patchfile import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    FilePatch,
    Limits,
    Patch,
    author_time,
    parse,
    title_from_filename,
)
from tests.helpers.gitrepo import GitRepo

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

LINES = "".join(f"line {i}\n" for i in range(1, 31))


def sh(cwd: Path, *args: str, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run(args, cwd=cwd, capture_output=True,
                          env={**os.environ, **(env or {})})
    assert proc.returncode in ok, (args, proc.stderr.decode(errors="replace"))
    return proc.stdout


def gnu_diff(cwd: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    """GNU diff exits 1 when the inputs differ."""
    return sh(cwd, "diff", *args, ok=(1,), env=env)


def new_repo(tmp_path: Path, files: dict[str, str | bytes] | None = None) -> GitRepo:
    repo = GitRepo(tmp_path / "repo")
    repo.git("config", "core.autocrlf", "false")
    repo.commit("base", files if files is not None else {"f.py": LINES})
    return repo


def change(repo: GitRepo, message: str, edits: Mapping[str, str | bytes | None],
           *, author: str | None = None) -> str:
    for name, content in edits.items():
        path = repo.path / name
        if content is None:
            path.unlink()
        else:
            repo.write(name, content)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message, *(["--author", author] if author else []))
    return repo.head()


def staged(repo: GitRepo, edits: Mapping[str, str | bytes | None], *args: str) -> bytes:
    """`git diff --cached ARGS` of `edits`; the work tree is reset after."""
    repo.edit(edits)
    data = repo.diff("--cached", *args)
    repo.git("reset", "-q", "--hard", "HEAD")
    return data


def only(patch: Patch) -> FilePatch:
    files = patch.files()
    assert len(files) == 1, files
    return files[0]


def rejected(data: bytes, *, name: str = "patch", **kwargs: Any) -> str:
    with pytest.raises(PatchRejected) as info:
        parse(data, name, **kwargs)
    reason = info.value.reason
    assert reason and reason == str(info.value)
    return reason


# --------------------------------------------------------------------------
# titles from file names

@pytest.mark.parametrize("name, title", [
    ("0001-fix-off-by-one.patch", "fix off by one"),
    ("0012-Make_the_parser-strict.patch", "Make the parser strict"),
    ("fix-crash.diff", "fix crash"),
    ("some/dir/0003-add-tests.eml", "add tests"),
    ("C:\\Users\\me\\0004-windows-path.patch", "windows path"),
    ("Bug_1234.mbox", "Bug 1234"),
    ("notes.TXT", "notes"),
    ("12345-not-numbering.patch", "12345 not numbering"),
    ("plain", "plain"),
    (".patch", "untitled patch"),
    ("0001-.patch", "untitled patch"),
    ("---.diff", "untitled patch"),
])
def test_title_from_filename(name: str, title: str) -> None:
    assert title_from_filename(name) == title


def test_plain_git_diff_takes_its_title_from_the_file_name(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    data = repo.make_patch({"f.py": LINES.replace("line 7\n", "line seven\n")})

    patch = parse(data, "/incoming/0001-fix-off-by-one.patch")

    assert patch.format == "git-diff"
    assert patch.title == "fix off by one"
    assert patch.author is None
    assert [c.message for c in patch.commits] == [""]
    assert patch.commits[0].author_date is None


# --------------------------------------------------------------------------
# git diff

def test_git_diff_modification(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    new = LINES.replace("line 2\n", "line two\n").replace("line 20\n", "line 20\nextra\n")
    data = repo.make_patch({"f.py": new})

    fp = only(parse(data))

    assert (fp.old_path, fp.new_path, fp.path) == ("f.py", "f.py", "f.py")
    assert (fp.old_mode, fp.new_mode) == (MODE_FILE, MODE_FILE)
    old_id = repo.git("rev-parse", "HEAD:f.py").strip()
    assert fp.old_id is not None and old_id.startswith(fp.old_id) and len(fp.old_id) == 7
    assert not fp.is_rename and not fp.is_copy and fp.binary is None
    assert fp.raw_names == ("a/f.py", "b/f.py", "a/f.py", "b/f.py")
    assert fp.stats() == (2, 1)
    first, second = fp.hunks
    assert (first.old_start, first.old_count, first.new_start, first.new_count) == (1, 5, 1, 5)
    assert first.lines[:3] == ((" ", b"line 1\n"), ("-", b"line 2\n"), ("+", b"line two\n"))
    assert first.leading_context == 1 and first.trailing_context == 3
    assert (second.old_start, second.old_count, second.new_start, second.new_count) == (18, 6, 18, 7)
    assert b"".join(second.postimage()) == b"".join(f"line {i}\n".encode() for i in range(18, 21)) \
        + b"extra\n" + b"".join(f"line {i}\n".encode() for i in range(21, 24))
    assert first.line == 5 and fp.line == 1


def test_full_index_and_unidiff_zero(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    change(repo, "edit", {"f.py": LINES.replace("line 9\n", "nine\n") + "tail\n"})

    fp = only(parse(repo.diff("-U0", "--full-index", "HEAD~1", "HEAD")))

    assert fp.old_id == repo.git("rev-parse", "HEAD~1:f.py").strip()
    assert fp.new_id == repo.git("rev-parse", "HEAD:f.py").strip()
    assert [(h.old_start, h.old_count, h.new_start, h.new_count) for h in fp.hunks] == [
        (9, 1, 9, 1), (30, 0, 31, 1)]
    assert all(h.leading_context == 0 and h.trailing_context == 0 for h in fp.hunks)


def test_new_deleted_renamed_copied_and_mode_changed_files(tmp_path: Path) -> None:
    other = "".join(f"other {i}\n" for i in range(20))
    repo = new_repo(tmp_path, {"f.py": LINES, "gone.txt": "bye\n", "old/name.py": other,
                               "tool.sh": "#!/bin/sh\necho hi\n"})
    repo.write("tool.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    repo.write("new dir/new.txt", "hello\n")
    (repo.path / "gone.txt").unlink()
    (repo.path / "old/name.py").rename(repo.path / "renamed.py")
    repo.write("copy.py", LINES.replace("line 30\n", "line thirty\n"))
    repo.git("add", "-A")

    files = {fp.path: fp for fp in only_commit(parse(repo.diff("--cached", "-C", "-C", "-M")))}

    assert sorted(files) == ["copy.py", "gone.txt", "new dir/new.txt", "renamed.py", "tool.sh"]
    new = files["new dir/new.txt"]
    assert (new.old_path, new.new_path, new.new_mode) == (None, "new dir/new.txt", MODE_FILE)
    assert new.old_id == "0000000" and new.hunks[0].old_start == 0
    gone = files["gone.txt"]
    assert (gone.old_path, gone.new_path, gone.old_mode) == ("gone.txt", None, MODE_FILE)
    assert gone.path == "gone.txt" and gone.stats() == (0, 1)
    moved = files["renamed.py"]
    assert (moved.old_path, moved.new_path, moved.is_rename, moved.hunks) == (
        "old/name.py", "renamed.py", True, ())
    copy = files["copy.py"]
    assert (copy.old_path, copy.new_path, copy.is_copy, copy.is_rename) == ("f.py", "copy.py", True, False)
    assert copy.stats() == (1, 1)
    mode = files["tool.sh"]
    assert (mode.old_mode, mode.new_mode, mode.hunks) == (MODE_FILE, MODE_EXEC, ())


def only_commit(patch: Patch) -> list[FilePatch]:
    assert len(patch.commits) == 1
    return list(patch.commits[0].files)


def test_symlink_and_missing_trailing_newline(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, {"f.py": "a\nb"})
    (repo.path / "link").symlink_to("f.py")
    repo.write("f.py", "a\nb\nc")
    repo.git("add", "-A")

    files = {fp.path: fp for fp in parse(repo.diff("--cached")).files()}

    link = files["link"]
    assert link.new_mode == MODE_LINK and link.old_path is None
    assert link.hunks[0].lines == (("+", b"f.py"),)
    edit = files["f.py"]
    assert edit.hunks[0].lines == ((" ", b"a\n"), ("-", b"b"), ("+", b"b\n"), ("+", b"c"))
    assert edit.hunks[0].preimage() == [b"a\n", b"b"]
    assert edit.hunks[0].postimage() == [b"a\n", b"b\n", b"c"]


def test_crlf_content_keeps_its_carriage_returns(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, {"win.txt": b"one\r\ntwo\r\nthree\r"})
    data = repo.make_patch({"win.txt": b"one\r\n2\r\nthree\r\nfour\r\n"})

    hunk = only(parse(data)).hunks[0]

    assert hunk.preimage() == [b"one\r\n", b"two\r\n", b"three\r"]
    assert hunk.postimage() == [b"one\r\n", b"2\r\n", b"three\r\n", b"four\r\n"]


def test_patch_whose_every_line_ends_in_crlf_still_parses(tmp_path: Path) -> None:
    """A mailer or an editor on Windows turned every LF into CRLF."""
    repo = new_repo(tmp_path)
    data = repo.make_patch({"f.py": LINES.replace("line 4\n", "four\n")})

    fp = only(parse(data.replace(b"\n", b"\r\n")))

    assert fp.path == "f.py" and fp.old_mode == MODE_FILE
    assert ("+", b"four\r\n") in fp.hunks[0].lines


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    data = repo.make_patch({"f.py": LINES + "more\n"})
    assert only(parse(b"\xef\xbb\xbf" + data)).path == "f.py"


@pytest.mark.parametrize("name", [
    "with space.txt",
    "dir with space/two  spaces .txt",
    "tab\there.txt",
    "unicodé/naïve-文件.txt",
    'quote"d.txt',
    "back\\slash.txt",
    "newline\nin name.txt",
    "-leading-dash.txt",
    "a b/c d",
])
@pytest.mark.parametrize("quotepath", ["true", "false"])
def test_unusual_file_names_round_trip(tmp_path: Path, name: str, quotepath: str) -> None:
    repo = new_repo(tmp_path)
    repo.git("config", "core.quotepath", quotepath)
    repo.write(name, "first\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "add")
    other = name.replace(".txt", "") + " moved"
    repo.git("mv", "--", name, other)
    repo.write(other, "first\nsecond\n")
    repo.git("add", "-A")
    data = repo.diff("--cached", "HEAD~1")  # a new file, from before it existed
    data_rename = repo.diff("--cached", "-M10%")

    created = only(parse(data))
    renamed = only(parse(data_rename))

    assert (created.old_path, created.new_path) == (None, other)
    assert (renamed.old_path, renamed.new_path, renamed.is_rename) == (name, other, True)
    assert renamed.stats() == (1, 0)


def test_binary_literal_and_delta_are_decoded(tmp_path: Path) -> None:
    big = bytes(range(256)) * 64 + b"\0tail"
    repo = new_repo(tmp_path, {"blob.bin": big, "small.bin": b"\0\1\2"})
    data = repo.make_patch({"blob.bin": big[:5000] + b"X" + big[5001:],
                            "small.bin": b"\0\1\2\3\4"}, binary=True)

    files = {fp.path: fp for fp in parse(data).files()}

    delta, backward = files["blob.bin"].binary  # type: ignore[misc]
    assert delta.kind == "delta" and delta.size == len(delta.data)
    assert backward is not None and backward.kind == "delta"
    literal, back = files["small.bin"].binary  # type: ignore[misc]
    assert (literal.kind, literal.size, literal.data) == ("literal", 5, b"\0\1\2\3\4")
    assert back is not None and (back.kind, back.data) == ("literal", b"\0\1\2")
    assert len(files["small.bin"].old_id or "") == 40  # --binary implies --full-index
    assert files["small.bin"].hunks == ()


def test_binary_new_and_deleted_files(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, {"old.bin": b"\0old"})
    data = staged(repo, {"old.bin": None, "new.bin": b"\0new\xff"}, "--binary", "--no-renames")

    files = {fp.path: fp for fp in parse(data).files()}

    assert files["new.bin"].old_path is None
    assert files["new.bin"].binary[0].data == b"\0new\xff"  # type: ignore[index]
    assert files["old.bin"].new_path is None
    forward, backward = files["old.bin"].binary  # type: ignore[misc]
    assert forward.size == 0 and backward is not None and backward.data == b"\0old"


def test_file_name_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    (repo.path / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name\n")
    repo.git("add", "-A")
    data = repo.diff("--cached")
    assert b'"b/caf\\351.txt"' in data

    assert rejected(data) == "file name b'a/caf\\xe9.txt' is not UTF-8; errauto cannot write it"


def test_typechange_is_a_deletion_then_a_creation_of_one_path(tmp_path: Path) -> None:
    """git writes a file that became a symlink as two diffs of the same path."""
    repo = new_repo(tmp_path, {"f.py": LINES, "target": "t\n"})
    (repo.path / "f.py").unlink()
    (repo.path / "f.py").symlink_to("target")
    repo.git("add", "-A")

    gone, made = parse(repo.diff("--cached")).files()

    assert (gone.old_path, gone.new_path) == ("f.py", None)
    assert (made.old_path, made.new_path, made.new_mode) == (None, "f.py", MODE_LINK)


# --------------------------------------------------------------------------
# git format-patch and mail

def test_format_patch_single_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = new_repo(tmp_path)
    repo.git("config", "user.name", "Ada Lovelace")
    repo.git("config", "user.email", "ada@example.org")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2024-03-05T06:07:08+02:00")
    change(repo, "calc: fix off-by-one in add\n\nThe loop stopped one short.\n\n"
           "Signed-off-by: Ada Lovelace <ada@example.org>", {"f.py": LINES + "31\n"})
    data = sh(repo.path, "git", "format-patch", "-1", "--stdout")

    patch = parse(data, "0001-calc-fix-off-by-one-in-add.patch")

    assert patch.format == "mbox"
    assert patch.title == "calc: fix off-by-one in add"
    assert patch.author == "Ada Lovelace <ada@example.org>"
    commit = patch.commits[0]
    assert commit.message == ("calc: fix off-by-one in add\n\nThe loop stopped one short.\n\n"
                              "Signed-off-by: Ada Lovelace <ada@example.org>\n")
    assert commit.author_date == "Tue, 05 Mar 2024 06:07:08 +0200"
    assert author_time(commit.author_date) == (1709611628, 120)
    assert only(patch).hunks[0].lines[-1] == ("+", b"31\n")


def test_format_patch_series_with_cover_letter(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    base = repo.head()
    change(repo, "first: add a line", {"f.py": LINES + "31\n"})
    change(repo, "second: add a file", {"g.py": "g\n"})
    change(repo, "third: edit both", {"f.py": LINES + "thirty-one\n", "g.py": "G\n"})
    out = tmp_path / "series"
    sh(repo.path, "git", "format-patch", "-q", "--cover-letter", "-o", str(out), f"{base}..HEAD")
    mbox = b"".join(p.read_bytes() for p in sorted(out.iterdir()))
    assert mbox.count(b"\nFrom: ") + mbox.startswith(b"From: ") >= 4

    patch = parse(mbox, "series.mbox")

    assert [c.title for c in patch.commits] == [
        "first: add a line", "second: add a file", "third: edit both"]
    assert patch.title == "first: add a line (+2 more commits)"
    assert [[f.path for f in c.files] for c in patch.commits] == [["f.py"], ["g.py"], ["f.py", "g.py"]]
    assert all(c.author_name == "Test Author" for c in patch.commits)
    # The same file may change once per commit; line numbers count through the mailbox.
    lines = [f.line for f in patch.files()]
    assert lines == sorted(lines) and len(set(lines)) == 4


def test_line_numbers_in_a_mailbox_count_from_its_top(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, {"f.py": LINES, "g.py": LINES})
    base = repo.head()
    change(repo, "one", {"f.py": LINES.replace("line 4\n", "four\n"), "g.py": LINES + "end\n"})
    change(repo, "two", {"f.py": LINES.replace("line 4\n", "FOUR\n").replace("line 20\n", "20\n")},
           author="Someone Else <else@example.org>")
    data = sh(repo.path, "git", "format-patch", "--stdout", "--from=Sender <s@example.org>", f"{base}..HEAD")
    lines = data.split(b"\n")

    patch = parse(data)

    assert patch.commits[1].author_email == "else@example.org"  # from the in-body From:
    files = patch.files()
    assert [lines[fp.line - 1] for fp in files] == [
        b"diff --git a/f.py b/f.py", b"diff --git a/g.py b/g.py", b"diff --git a/f.py b/f.py"]
    hunks = [h for fp in files for h in fp.hunks]
    assert len(hunks) == 4
    for h in hunks:
        assert lines[h.line - 1].startswith(f"@@ -{h.old_start},{h.old_count} +{h.new_start}".encode())


def test_format_patch_stdout_series_is_split_on_from_lines(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    base = repo.head()
    for i in range(4):
        change(repo, f"step {i}", {f"s{i}.txt": f"{i}\n"})
    data = sh(repo.path, "git", "format-patch", "--stdout", "--numbered", f"{base}..HEAD")
    assert b"[PATCH 4/4] step 3" in data

    patch = parse(data)

    assert [c.title for c in patch.commits] == ["step 0", "step 1", "step 2", "step 3"]
    assert [c.files[0].path for c in patch.commits] == ["s0.txt", "s1.txt", "s2.txt", "s3.txt"]


def test_non_ascii_author_and_folded_subject(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    subject = "büg: a very long subject line that git will fold over more than one header line"
    change(repo, subject, {"f.py": LINES + "x\n"}, author="Ünï Cödé <u@example.org>")
    data = sh(repo.path, "git", "format-patch", "-1", "--stdout")
    assert b"=?UTF-8?q?" in data and b"\n " in data.split(b"\n\n", 1)[0]

    patch = parse(data)

    assert patch.title == subject
    assert patch.author == "Ünï Cödé <u@example.org>"


def test_in_body_from_overrides_the_sender(tmp_path: Path) -> None:
    """`git format-patch --from` sends as one person and keeps the author in the body."""
    repo = new_repo(tmp_path)
    change(repo, "fix it", {"f.py": LINES + "x\n"}, author="Real Author <real@example.org>")
    data = sh(repo.path, "git", "format-patch", "-1", "--stdout", "--from=Sender <sender@example.org>")
    assert data.count(b"From: ") == 2

    patch = parse(data)

    assert patch.author == "Real Author <real@example.org>"
    assert patch.commits[0].message == "fix it\n"


def test_in_body_subject_and_date_override_the_mail_headers(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    change(repo, "mail subject", {"f.py": LINES + "x\n"})
    data = sh(repo.path, "git", "format-patch", "-1", "--stdout")
    head, body = data.split(b"\n\n", 1)
    data = (head + b"\n\nFrom: Other <other@example.org>\nSubject: the real subject\n"
            b"Date: Mon, 1 Jan 2001 00:00:00 +0000\n\nThe real body.\n" + body)

    patch = parse(data)

    commit = patch.commits[0]
    assert commit.title == "the real subject"
    assert commit.message == "the real subject\n\nThe real body.\n"
    assert (commit.author_name, commit.author_email) == ("Other", "other@example.org")
    assert author_time(commit.author_date) == (978307200, 0)


def test_in_body_headers_need_a_blank_line_after_them(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    change(repo, "subject", {"f.py": LINES + "x\n"})
    data = sh(repo.path, "git", "format-patch", "-1", "--stdout")
    head, body = data.split(b"\n\n", 1)

    patch = parse(head + b"\n\nFrom: not a header block\nstill the message\n" + body)

    assert patch.title == "subject" and patch.author == "Test Author <test@example.com>"
    assert patch.commits[0].message.startswith("subject\n\nFrom: not a header block\nstill the message")


@pytest.mark.parametrize("subject, title", [
    ("[PATCH] plain", "plain"),
    ("[PATCH v2 03/10] numbered", "numbered"),
    ("Re: [PATCH] replied", "replied"),
    ("Fwd: RE: [RFC PATCH net-next] nested", "nested"),
    ("[PATCH]   spaced   out  ", "spaced out"),
    ("no prefix at all", "no prefix at all"),
    ("[PATCH]", "fallback name"),
])
def test_subject_prefixes_are_removed(tmp_path: Path, subject: str, title: str) -> None:
    repo = new_repo(tmp_path)
    diff = repo.make_patch({"f.py": LINES + "x\n"})
    msg = EmailMessage()
    msg["From"] = "A <a@example.org>"
    msg["Subject"] = subject
    msg.set_content(diff.decode())

    assert parse(msg.as_bytes(), "0001-fallback-name.patch").title == title


def _mail(diff: bytes, cte: str, *, subject: str = "[PATCH] encoded body") -> bytes:
    msg = MIMEText("", "plain", "utf-8")
    del msg["Content-Transfer-Encoding"]
    msg["From"] = "Zoë <zoe@example.org>"
    msg["Subject"] = subject
    msg["Date"] = "Wed, 02 Oct 2002 13:00:00 +0100"
    body = b"Why this is needed.\n---\n" + diff
    if cte == "base64":
        msg.set_payload(base64.encodebytes(body).decode())
    else:
        import quopri
        msg.set_payload(quopri.encodestring(body).decode())
    msg["Content-Transfer-Encoding"] = cte
    return msg.as_bytes()


@pytest.mark.parametrize("cte", ["quoted-printable", "base64"])
def test_eml_with_encoded_body(tmp_path: Path, cte: str) -> None:
    repo = new_repo(tmp_path, {"f.py": LINES, "naïve.txt": "café = 1\n"})
    long = "x = '" + "é" * 150 + "'\n"  # quoted-printable wraps it with soft line breaks
    diff = repo.make_patch({"f.py": LINES.replace("line 3\n", "line 3 = résumé\t\n" + long),
                            "naïve.txt": "café = 2\n"})
    data = _mail(diff, cte)
    assert b"line 3 = r" not in data  # really encoded

    patch = parse(data, "bug.eml")

    assert patch.format == "mbox"
    assert patch.title == "encoded body"
    assert patch.author == "Zoë <zoe@example.org>"
    assert patch.commits[0].message == "encoded body\n\nWhy this is needed.\n"
    files = {fp.path: fp for fp in patch.files()}
    assert ("+", "line 3 = résumé\t\n".encode()) in files["f.py"].hunks[0].lines
    assert ("+", long.encode()) in files["f.py"].hunks[0].lines
    assert ("+", "café = 2\n".encode()) in files["naïve.txt"].hunks[0].lines


@pytest.mark.parametrize("how", ["--attach", "--inline"])
def test_format_patch_attach_and_inline(tmp_path: Path, how: str) -> None:
    repo = new_repo(tmp_path)
    change(repo, "attached: edit", {"f.py": LINES.replace("line 8\n", "eight\n")})
    data = sh(repo.path, "git", "format-patch", "-1", "--stdout", how)
    assert b"multipart/mixed" in data

    patch = parse(data)

    assert (patch.title, patch.author) == ("attached: edit", "Test Author <test@example.com>")
    assert patch.commits[0].message == "attached: edit\n"
    assert only(patch).stats() == (1, 1)


def test_multipart_mail_with_the_patch_attached(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    diff = repo.make_patch({"f.py": LINES.replace("line 10\n", "ten\n")})
    msg = MIMEMultipart()
    msg["From"] = "Bob <bob@example.org>"
    msg["Subject"] = "[PATCH] attached fix"
    msg.attach(MIMEText("Please apply the attached patch.\n"))
    msg.attach(MIMEApplication(diff, "x-patch", Name="fix.patch"))
    msg.attach(MIMEApplication(b"\x89PNG\0\0", "octet-stream", Name="screenshot.png"))

    patch = parse(msg.as_bytes(policy=email.policy.SMTP))

    assert patch.title == "attached fix"
    assert only(patch).hunks[0].lines[3] == ("-", b"line 10\n")


def test_cover_letter_alone_is_not_a_patch(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    base = repo.head()
    change(repo, "one", {"f.py": LINES + "1\n"})
    change(repo, "two", {"f.py": LINES + "2\n"})
    out = tmp_path / "series"
    sh(repo.path, "git", "format-patch", "-q", "--cover-letter", "-o", str(out), f"{base}..HEAD")
    cover = next(out.glob("0000-*")).read_bytes()

    assert "carries no patch" in rejected(cover, name="0000-cover-letter.patch")


def test_mail_without_a_diff_is_rejected_with_its_subject() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Subject"] = "[PATCH 1/2] lost its diff"
    msg.set_content("Only prose here.\n")

    assert rejected(msg.as_bytes()) == "mail 1 ([PATCH 1/2] lost its diff) has no diff"


def test_mail_with_only_a_binary_part_has_no_text_part() -> None:
    msg = MIMEMultipart()
    msg["From"] = "a@example.org"
    msg["Subject"] = "[PATCH] image only"
    msg.attach(MIMEApplication(b"\x89PNG", "octet-stream"))

    assert "no text part" in rejected(msg.as_bytes())


# --------------------------------------------------------------------------
# plain unified diffs (GNU diff)

def test_p0_diff_of_an_orig_file(tmp_path: Path) -> None:
    (tmp_path / "foo.py.orig").write_text(LINES)
    (tmp_path / "foo.py").write_text(LINES.replace("line 15\n", "fifteen\n"))
    data = gnu_diff(tmp_path, "-u", "foo.py.orig", "foo.py")
    assert data.startswith(b"--- foo.py.orig\t")

    patch = parse(data, "foo.diff", exists=lambda p: p == "foo.py")

    assert patch.format == "unified" and patch.title == "foo"
    fp = only(patch)
    assert (fp.old_path, fp.new_path, fp.old_mode, fp.new_mode) == ("foo.py", "foo.py", None, None)
    assert fp.raw_names == ("foo.py.orig", "foo.py")
    assert fp.stats() == (1, 1)


def test_p0_diff_of_an_orig_file_in_a_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/foo.py.orig").write_text(LINES)
    (tmp_path / "src/foo.py").write_text(LINES + "end\n")
    data = gnu_diff(tmp_path, "-u", "src/foo.py.orig", "src/foo.py")

    fp = only(parse(data, exists=lambda p: p == "src/foo.py"))

    assert (fp.old_path, fp.new_path) == ("src/foo.py", "src/foo.py")


def test_p0_diff_where_only_the_old_name_exists(tmp_path: Path) -> None:
    (tmp_path / "foo.py").write_text(LINES)
    (tmp_path / "foo.py.new").write_text(LINES + "end\n")
    data = gnu_diff(tmp_path, "-u", "foo.py", "foo.py.new")

    fp = only(parse(data, exists=lambda p: p == "foo.py"))

    assert (fp.old_path, fp.new_path) == ("foo.py", "foo.py")


@pytest.mark.parametrize("tz", ["UTC", "EST5", "IST-5:30", "<+14>-14"])
def test_recursive_p1_diff_between_two_directories(tmp_path: Path, tz: str) -> None:
    """`diff -ruN a b`: new and deleted files carry the epoch, in the local time zone."""
    for side in ("a", "b"):
        (tmp_path / side / "pkg").mkdir(parents=True)
    (tmp_path / "a/pkg/mod.py").write_text(LINES)
    (tmp_path / "b/pkg/mod.py").write_text(LINES.replace("line 1\n", "first\n"))
    (tmp_path / "a/old.txt").write_text("old\n")
    (tmp_path / "b/new file.txt").write_text("new\n")
    data = gnu_diff(tmp_path, "-ruN", "a", "b", env={"TZ": tz})
    assert data.count(b"\ndiff -ruN ") + data.startswith(b"diff -ruN ") == 3

    existing = {"pkg/mod.py", "old.txt"}
    patch = parse(data, exists=existing.__contains__)

    files = {fp.path: fp for fp in patch.files()}
    assert sorted(files) == ["new file.txt", "old.txt", "pkg/mod.py"]
    assert (files["new file.txt"].old_path, files["new file.txt"].new_mode) == (None, MODE_FILE)
    assert (files["old.txt"].old_path, files["old.txt"].new_path) == ("old.txt", None)
    assert (files["pkg/mod.py"].old_path, files["pkg/mod.py"].new_path) == ("pkg/mod.py", "pkg/mod.py")


def test_plain_diff_against_dev_null(tmp_path: Path) -> None:
    (tmp_path / "new.py").write_text("print(1)\n")
    data = gnu_diff(tmp_path, "-u", "/dev/null", "new.py")

    fp = only(parse(data, exists=lambda p: False))

    assert (fp.old_path, fp.new_path, fp.new_mode) == (None, "new.py", MODE_FILE)


def test_plain_diff_with_a_real_timestamp_is_not_a_creation(tmp_path: Path) -> None:
    """An empty old file is not /dev/null: only the epoch marks a missing file."""
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    (tmp_path / "a/empty.txt").write_text("")
    (tmp_path / "b/empty.txt").write_text("now has text\n")

    fp = only(parse(gnu_diff(tmp_path, "-ru", "a", "b"), exists=lambda p: p == "empty.txt"))

    assert (fp.old_path, fp.new_path) == ("empty.txt", "empty.txt")


def test_plain_diff_strip_level_without_a_repository(tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    (tmp_path / "a/x.txt").write_text("1\n")
    (tmp_path / "b/x.txt").write_text("2\n")

    assert only(parse(gnu_diff(tmp_path, "-ru", "a", "b"))).path == "x.txt"


def test_plain_diff_of_files_that_do_not_exist_is_rejected(tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    (tmp_path / "a/x.txt").write_text("1\n")
    (tmp_path / "b/x.txt").write_text("2\n")

    reason = rejected(gnu_diff(tmp_path, "-ru", "a", "b"), exists=lambda p: False)
    assert reason == "cannot find the files this diff changes (first: a/x.txt)"


def test_plain_diff_with_quoted_names(tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    for name in ("sp ace.txt", "ta\tb.txt", "uni-é.txt"):
        (tmp_path / "a" / name).write_text("1\n")
        (tmp_path / "b" / name).write_text("2\n")
    data = gnu_diff(tmp_path, "-ru", "a", "b")
    assert b'"a/ta\\tb.txt"' in data

    patch = parse(data, exists=lambda p: True)

    assert sorted(fp.path for fp in patch.files()) == ["sp ace.txt", "ta\tb.txt", "uni-é.txt"]


# --------------------------------------------------------------------------
# rejected input

def _git_patch(tmp_path: Path, edits: Mapping[str, str | bytes | None] | None = None,
               binary: bool = False) -> bytes:
    repo = new_repo(tmp_path, {"f.py": LINES, "img.bin": b"\0\1\2\3" * 100})
    return repo.make_patch(edits or {"f.py": LINES.replace("line 5\n", "five\n")}, binary=binary)


def _binary_patch(tmp_path: Path) -> bytes:
    return _git_patch(tmp_path, {"img.bin": b"\0\1\2\3" * 99 + b"\0\1\2\4"}, binary=True)


def _dirs(tmp_path: Path) -> Path:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    (tmp_path / "a/f").write_text("a\nb\nc\nd\n")
    (tmp_path / "b/f").write_text("a\nc\nX\nd\n")
    return tmp_path


def _replace_line(data: bytes, old: bytes, new: bytes) -> bytes:
    lines = data.split(b"\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(old))
    lines[index] = new
    return b"\n".join(lines)


def _edit_binary_line(data: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """Change the first line of base85 data after 'GIT binary patch'."""
    lines = data.split(b"\n")
    i = lines.index(b"GIT binary patch") + 2
    assert re.fullmatch(rb"(literal|delta) \d+", lines[i - 1])
    lines[i] = edit(lines[i])
    return b"\n".join(lines)


def _corrupt_base85(data: bytes) -> bytes:
    """A character outside git's base85 alphabet."""
    return _edit_binary_line(data, lambda line: line[:3] + b'"' + line[4:])


def _flip_base85(data: bytes) -> bytes:
    """Valid base85 characters, wrong zlib stream."""
    return _edit_binary_line(data, lambda line: line[:6] + (b"0" if line[6:7] != b"0" else b"1") + line[7:])


def _bad_length_char(data: bytes) -> bytes:
    """The length character promises fewer bytes than the line carries."""
    return _edit_binary_line(data, lambda line: b"A" + line[1:])


def _text_and_binary(tmp_path: Path) -> bytes:
    data = _binary_patch(tmp_path)
    return data.replace(b"GIT binary patch\n",
                        b"--- a/img.bin\n+++ b/img.bin\n@@ -1 +1 @@\n-x\n+y\nGIT binary patch\n")


def _create_delete(tmp_path: Path, steps: str) -> bytes:
    """Diffs that create ("c") or delete ("d") new.py, concatenated."""
    repo = new_repo(tmp_path)
    create = repo.make_patch({"new.py": "a\n"})
    change(repo, "add", {"new.py": "a\n"})
    delete = repo.make_patch({"new.py": None})
    return b"".join(create if step == "c" else delete for step in steps)


def _many_files(tmp_path: Path, n: int) -> bytes:
    repo = new_repo(tmp_path)
    return repo.make_patch({f"d/f{i}.txt": f"{i}\n" for i in range(n)})


MALFORMED: list[tuple[str, Callable[[Path], bytes], dict[str, object], str]] = [
    ("empty", lambda p: b"", {}, "patch is empty"),
    ("whitespace only", lambda p: b" \n\t\r\n\n  ", {}, "patch is empty"),
    ("garbage", lambda p: b"this is not a patch\njust words\n", {},
     "no diff found in patch: expected `git diff`, `git format-patch` or `diff -u` output"),
    ("NUL bytes", lambda p: _git_patch(p).replace(b"line 5", b"line\0 5", 1), {},
     "patch contains NUL bytes"),
    ("over max_patch_bytes", lambda p: _git_patch(p), {"limits": Limits(max_patch_bytes=100)},
     "bytes; the limit is 100 (max_patch_bytes)"),
    ("absurd hunk counts", lambda p: _replace_line(_git_patch(p), b"@@ ", b"@@ -2,99999999 +2,7 @@"), {},
     "hunk claims 99,999,999 lines; the limit is 10,000 (max_hunk_lines)"),
    ("absurd hunk start", lambda p: _replace_line(_git_patch(p), b"@@ ", b"@@ -99999999999,7 +2,7 @@"), {},
     "hunk starts at line 99,999,999,999"),
    ("hunk over max_hunk_lines", lambda p: _git_patch(p), {"limits": Limits(max_hunk_lines=5)},
     "hunk claims 7 lines; the limit is 5 (max_hunk_lines)"),
    ("truncated hunk", lambda p: _git_patch(p).rsplit(b"\n", 3)[0] + b"\n", {},
     "hunk is truncated (header promises 7 old and 7 new lines)"),
    ("hunk body shorter than its header",
     lambda p: _replace_line(_git_patch(p), b"@@ ", b"@@ -2,8 +2,7 @@"), {},
     "hunk is truncated"),
    ("hunk body with an extra removed line",
     lambda p: _replace_line(_git_patch(p), b"@@ ", b"@@ -2,6 +2,7 @@"), {},
     "hunk body does not match its header (-2,6 +2,7)"),
    ("hunk body with lines beyond its header",
     lambda p: _replace_line(_git_patch(p), b"@@ ", b"@@ -2,5 +2,5 @@"), {},
     "hunk body does not match its header (-2,5 +2,5)"),
    ("hunk with an unknown line", lambda p: _replace_line(_git_patch(p), b" line 3", b"?line 3"), {},
     "unexpected line in hunk (header promises 7 old and 7 new lines)"),
    ("malformed hunk header", lambda p: _replace_line(_git_patch(p), b"@@ ", b"@@ -x,7 +2,7 @@"), {},
     "malformed hunk header"),
    ("no newline marker first",
     lambda p: _replace_line(_git_patch(p), b"@@ ", b"@@ -2,7 +2,7 @@\n\\ No newline at end of file"), {},
     "'\\ No newline' marker without a line before it"),
    ("git Binary files differ",
     lambda p: _git_patch(p, {"img.bin": b"changed\0"}), {},
     "binary change to img.bin has no content; make the patch with `git diff --binary`"),
    ("plain Binary files differ",
     lambda p: b"Binary files a/img.bin and b/img.bin differ\n" + gnu_diff(_dirs(p), "-ru", "a", "b"), {},
     "binary change to img.bin has no content"),
    ("binary literal with corrupt base85", lambda p: _corrupt_base85(_binary_patch(p)), {},
     "corrupt binary patch line"),
    ("binary literal with a corrupt zlib stream", lambda p: _flip_base85(_binary_patch(p)), {},
     "binary patch data is corrupt"),
    ("binary line length character wrong", lambda p: _bad_length_char(_binary_patch(p)), {},
     "corrupt binary patch line"),
    ("binary hunk size is a lie",
     lambda p: re.sub(rb"\n(literal|delta) (\d+)\n", lambda m: b"\n" + m.group(1) + b" " +
                      str(int(m.group(2)) + 1).encode() + b"\n", _binary_patch(p), count=1), {},
     "binary patch inflates to a different size than it declares"),
    ("GIT binary patch without content",
     lambda p: _binary_patch(p).split(b"GIT binary patch\n")[0] + b"GIT binary patch\n\n", {},
     "'GIT binary patch' without a literal or delta"),
    ("ed script", lambda p: gnu_diff(_dirs(p), "-e", "a/f", "b/f"), {},
     "ed-style scripts are not accepted"),
    ("normal diff", lambda p: gnu_diff(_dirs(p), "a/f", "b/f"), {},
     "normal (non-unified) diffs are not accepted"),
    ("context diff", lambda p: gnu_diff(_dirs(p), "-c", "a/f", "b/f"), {},
     "context diffs are not accepted"),
    ("inconsistent --- name",
     lambda p: _replace_line(_git_patch(p), b"--- a/f.py", b"--- a/other.py"), {},
     "inconsistent old file name (f.py vs other.py)"),
    ("inconsistent +++ name",
     lambda p: _replace_line(_git_patch(p), b"+++ b/f.py", b"+++ b/other.py"), {},
     "inconsistent new file name (f.py vs other.py)"),
    ("names differ but no rename",
     lambda p: _replace_line(_git_patch(p), b"diff --git", b"diff --git a/x.py b/y.py").replace(
         b"--- a/f.py\n+++ b/f.py", b"--- a/x.py\n+++ b/y.py"), {},
     "file names differ but this is not a rename"),
    ("a file changed twice",
     lambda p: _git_patch(p) + _git_patch(p / "again", {"f.py": LINES + "end\n"}), {},
     "the patch changes f.py more than once"),
    ("a file renamed and changed",
     lambda p: (lambda r: r.make_patch({"f.py": None, "g.py": LINES}) + r.make_patch(
         {"f.py": LINES + "x\n"}))(new_repo(p)), {},
     "the patch changes f.py more than once"),
    ("over max_files", lambda p: _many_files(p, 6), {"limits": Limits(max_files=5)},
     "patch changes more than 5 files (max_files)"),
    ("no prefix to strip",
     lambda p: _git_patch(p).replace(b"a/f.py", b"f.py").replace(b"b/f.py", b"f.py"), {},
     "has no a/ or b/ prefix to strip"),
    ("unterminated quoted name",
     lambda p: _replace_line(_git_patch(p), b"--- ", b'--- "a/f.py'), {},
     "unterminated quoted file name"),
    ("bad escape in quoted name",
     lambda p: _replace_line(_git_patch(p), b"--- ", b'--- "a/f\\q.py"'), {},
     "bad escape in quoted file name"),
    ("malformed index line",
     lambda p: _replace_line(_git_patch(p), b"index ", b"index nothex..123456 100644"), {},
     "malformed index line"),
    ("unsupported mode",
     lambda p: _replace_line(_git_patch(p), b"index ", b"old mode 100600\nnew mode 100644"), {},
     "unsupported file mode 100600"),
    ("--- without +++",
     lambda p: _replace_line(_git_patch(p), b"+++ ", b"+ + b/f.py"), {},
     "'---' line not followed by '+++'"),
    ("hunk before names",
     lambda p: _git_patch(p).replace(b"--- a/f.py\n+++ b/f.py\n", b""), {},
     "hunk before the '---'/'+++' file names"),
    ("dev/null without new file mode",
     lambda p: _replace_line(_git_patch(p), b"--- ", b"--- /dev/null"), {},
     "'--- /dev/null' without 'new file mode'"),
    ("diff --git header alone", lambda p: b"diff --git a/f.py b/f.py\n", {},
     "the diff for f.py changes nothing"),
    ("diff --git header without names", lambda p: b"diff --git\n", {},
     "no diff found"),
    ("both text hunks and binary", _text_and_binary, {},
     "both text hunks and a binary patch for one file"),
    ("diff --git header with unusable names", lambda p: b"diff --git x\nnew file mode 100644\n", {},
     "cannot tell which file this diff changes"),
    ("deleted then modified",
     lambda p: _git_patch(p, {"f.py": None}) + _git_patch(p / "again"), {},
     "the patch changes f.py more than once"),
    ("created then deleted", lambda p: _create_delete(p, "cd"), {},
     "the patch changes new.py more than once"),
    ("deleted, created, created again", lambda p: _create_delete(p, "dcc"), {},
     "the patch changes new.py more than once"),
    ("created then modified",
     lambda p: (lambda r: r.make_patch({"new.py": "a\n"}) + r.make_patch({"f.py": LINES + "x\n"}).replace(
         b"f.py", b"new.py"))(new_repo(p)), {},
     "the patch changes new.py more than once"),
]


@pytest.mark.parametrize("make, kwargs, reason", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_patch_is_rejected(tmp_path: Path, make: Callable[[Path], bytes],
                                     kwargs: dict[str, Any], reason: str) -> None:
    assert reason in rejected(make(tmp_path), **kwargs)


ESC = "\x1b[2J\x9b1m"  # clear the screen; a C1 control sequence introducer
SHOWN = "\\x1b[2J\\x9b1m"


@pytest.mark.parametrize("data, kwargs, shown", [
    (f"diff --git a/f.py{ESC} b/f.py{ESC}\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n".encode(), {},
     f"inconsistent old file name (f.py{SHOWN} vs f.py)"),
    (f"diff --git a/f.py b/f.py\n--- a/f.py\n+++ b/f.py{ESC}\n@@ -1 +1 @@\n-a\n+b\n".encode(), {},
     f"inconsistent new file name (f.py vs f.py{SHOWN})"),
    (f"diff --git a/x{ESC} b/x{ESC}\nold mode 100644\nnew mode 100644\n".encode(), {},
     f"the diff for x{SHOWN} changes nothing"),
    (f"diff --git a/x{ESC} b/x{ESC}\nBinary files a/x{ESC} and b/x{ESC} differ\n".encode(), {},
     f"binary change to x{SHOWN} has no content"),
    (f"Binary files a/x{ESC} and b/x{ESC} differ\n".encode(), {},
     f"binary change to x{SHOWN} has no content"),
    (f"diff --git a/x{ESC} b/x{ESC}\ndeleted file mode 100644\n".encode() * 2, {},
     f"the patch changes x{SHOWN} more than once"),
    (f"--- a/x{ESC}\n+++ b/x{ESC}\n@@ -1 +1 @@\n-a\n+b\n".encode(), {"exists": lambda p: False},
     f"cannot find the files this diff changes (first: a/x{SHOWN})"),
    (b"From: a@example.org\nSubject: =?utf-8?q?evil=1B=5B2J?=\n\nno diff\n", {},
     "mail 1 (evil\\x1b[2J) has no diff"),
    (b"just text\n", {"name": f"x{ESC}.patch"}, f"no diff found in x{SHOWN}.patch"),
])
def test_names_in_reasons_cannot_drive_a_terminal(data: bytes, kwargs: dict[str, Any], shown: str) -> None:
    reason = rejected(data, **kwargs)
    assert shown in reason
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", reason), reason


def test_rejections_name_the_line(tmp_path: Path) -> None:
    data = _git_patch(tmp_path)
    bad = _replace_line(data, b" line 3", b"?line 3")
    line = bad.split(b"\n").index(b"?line 3") + 1
    assert rejected(bad).startswith(f"line {line}: unexpected line in hunk")


def test_max_files_counts_the_whole_series(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    base = repo.head()
    change(repo, "one", {"a.txt": "a\n", "b.txt": "b\n"})
    change(repo, "two", {"c.txt": "c\n", "d.txt": "d\n"})
    data = sh(repo.path, "git", "format-patch", "--stdout", f"{base}..HEAD")

    assert len(parse(data, limits=Limits(max_files=4)).files()) == 4
    assert rejected(data, limits=Limits(max_files=3)) == "patch changes 4 files; the limit is 3 (max_files)"


def test_binary_literal_over_max_blob_bytes_is_rejected(tmp_path: Path) -> None:
    data = _git_patch(tmp_path, {"new.bin": b"\0" * 5000}, binary=True)
    line = data.split(b"\n").index(b"literal 5000") + 1
    assert parse(data, limits=Limits(max_blob_bytes=5000)).files()[0].binary is not None
    assert rejected(data, limits=Limits(max_blob_bytes=4999)) == (
        f"line {line}: binary hunk of 5,000 bytes is over the limit of 4,999 (max_blob_bytes)")


def test_binary_hunks_together_may_inflate_to_twice_max_blob_bytes(tmp_path: Path) -> None:
    """Each hunk under the limit is not enough: well-compressed hunks add up."""
    repo = new_repo(tmp_path)
    blobs = {f"{c}.bin": b"\0" + c.encode() * 899 for c in "abc"}
    two = staged(repo, {"a.bin": blobs["a.bin"], "b.bin": blobs["b.bin"]}, "--binary")
    three = staged(repo, blobs, "--binary")
    limits = Limits(max_blob_bytes=1000)

    assert len(parse(two, limits=limits).files()) == 2
    line = [i for i, l in enumerate(three.split(b"\n"), 1) if l == b"literal 900"][-1]
    assert rejected(three, limits=limits) == (
        f"line {line}: the binary hunks of this patch inflate to more than 2,000 bytes together "
        "(twice max_blob_bytes)")


def test_binary_budget_spans_the_mails_of_a_series(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    base = repo.head()
    for i in range(3):
        change(repo, f"blob {i}", {f"{i}.bin": b"\0" + bytes([65 + i]) * 899})
    data = sh(repo.path, "git", "format-patch", "--stdout", "--binary", f"{base}..HEAD")

    assert len(parse(data, limits=Limits(max_blob_bytes=1350)).commits) == 3
    assert "(twice max_blob_bytes)" in rejected(data, limits=Limits(max_blob_bytes=1349))


def test_hunk_at_the_limit_is_accepted(tmp_path: Path) -> None:
    data = _git_patch(tmp_path)
    assert len(only(parse(data, limits=Limits(max_hunk_lines=7))).hunks) == 1
    assert len(only(parse(data, limits=Limits(max_patch_bytes=len(data)))).hunks) == 1


# --------------------------------------------------------------------------
# patch ids and reversal

def test_patch_id_ignores_position_context_and_file_order(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, {"f.py": LINES, "g.py": LINES})
    edits = {"f.py": LINES.replace("line 12\n", "twelve\n"), "g.py": LINES.replace("line 3\n", "three\n")}
    plain = parse(staged(repo, edits))
    wide = parse(staged(repo, edits, "-U7", "--full-index")).patch_id()
    change(repo, "shift", {"f.py": "top\n" * 5 + LINES, "g.py": "top\n" + LINES})
    shifted = staged(repo, {"f.py": "top\n" * 5 + edits["f.py"], "g.py": "top\n" + edits["g.py"]}, "-U1")
    u1 = staged(repo, {"f.py": "top\n" * 5 + edits["f.py"]})

    files = shifted.split(b"diff --git ")
    swapped = b"diff --git " + files[2] + b"diff --git " + files[1]

    assert plain.patch_id() == wide == parse(shifted).patch_id() == parse(swapped).patch_id()
    assert parse(u1).patch_id() != plain.patch_id()
    other = repo.make_patch({"f.py": "top\n" * 5 + LINES.replace("line 12\n", "TWELVE\n"),
                             "g.py": "top\n" + edits["g.py"]})
    assert parse(other).patch_id() != plain.patch_id()
    # Whitespace inside changed lines does not count, as with `git patch-id`.
    spaced = shifted.replace(b"+twelve\n", b"+  twelve \n")
    assert parse(spaced).patch_id() == plain.patch_id()


def test_reversed_file_patch_swaps_sides(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    forward = only(parse(repo.make_patch({"f.py": LINES.replace("line 5\n", "a\nb\n")})))
    repo.write("f.py", LINES.replace("line 5\n", "a\nb\n"))
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "x")
    backward = only(parse(repo.diff("HEAD", "HEAD~1")))

    rev = forward.reversed()

    assert [h.lines for h in rev.hunks] == [h.lines for h in backward.hunks]
    assert (rev.old_id, rev.new_id) == (forward.new_id, forward.old_id)
    assert rev.reversed() == forward


def test_copy_cannot_be_reversed(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.write("copy.py", LINES)
    repo.git("add", "-A")
    fp = only(parse(repo.diff("--cached", "-C", "-C")))
    assert fp.is_copy
    with pytest.raises(ValueError, match="a copy cannot be reversed"):
        fp.reversed()


@pytest.mark.parametrize("date, expected", [
    ("Tue, 5 Mar 2024 06:07:08 +0200", (1709611628, 120)),
    ("Thu, 01 Jan 1970 00:00:00 -0500", (18000, -300)),
    ("not a date", None),
    ("", None),
    (None, None),
])
def test_author_time(date: str | None, expected: tuple[int, int] | None) -> None:
    assert author_time(date) == expected
