"""Parse patch files: `git diff` output, `git format-patch` mail, plain `diff -u`.

The parser is errauto's own and deliberately strict. Patches are untrusted
input, and what a patch *means* (which paths, which modes, which lines) must
be decided by the same code that the guard inspects and the applier executes,
so that no other tool's leniency can make them disagree.

A parsed `Patch` is one or more `PatchCommit`s (a mailbox may carry a series),
each a tuple of `FilePatch`es. Nothing here touches a repository; resolving
the path prefix of a plain unified diff takes an optional `exists` callback.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from errauto_daemon.errors import PatchRejected
from errauto_daemon.limits import Limits as Limits  # re-exported: callers import it from here

if TYPE_CHECKING:
    from email.message import Message

# The email package is imported where mail is read or written: it costs a
# server's post-receive hook ~10 ms it otherwise does not need.

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_GITLINK = 0o160000
VALID_MODES = frozenset((MODE_FILE, MODE_EXEC, MODE_LINK, MODE_GITLINK))

# The names of files errauto takes for patches: in an inbox folder, or committed.
SUFFIXES = (".patch", ".diff", ".eml", ".mbox")


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    # (tag, content): tag is " ", "-" or "+"; content keeps its line ending,
    # which is missing only where the patch said "\ No newline at end of file".
    lines: tuple[tuple[str, bytes], ...]
    line: int = 0

    def preimage(self) -> list[bytes]:
        return [c for t, c in self.lines if t != "+"]

    def postimage(self) -> list[bytes]:
        return [c for t, c in self.lines if t != "-"]

    @property
    def leading_context(self) -> int:
        n = 0
        for tag, _ in self.lines:
            if tag != " ":
                break
            n += 1
        return n

    @property
    def trailing_context(self) -> int:
        n = 0
        for tag, _ in reversed(self.lines):
            if tag != " ":
                break
            n += 1
        return n

    def reversed(self) -> Hunk:
        swap = {" ": " ", "-": "+", "+": "-"}
        # Keep "-" before "+" within each change block, as diff does.
        out: list[tuple[str, bytes]] = []
        block_minus: list[tuple[str, bytes]] = []
        block_plus: list[tuple[str, bytes]] = []
        for tag, content in self.lines:
            if tag == " ":
                out += block_minus + block_plus
                block_minus, block_plus = [], []
                out.append((tag, content))
            elif swap[tag] == "-":
                block_minus.append(("-", content))
            else:
                block_plus.append(("+", content))
        out += block_minus + block_plus
        return Hunk(self.new_start, self.new_count, self.old_start, self.old_count,
                    tuple(out), self.line)


@dataclass(frozen=True)
class BinaryHunk:
    kind: str  # "literal" (the whole new content) or "delta" (git's delta format)
    size: int  # inflated size
    data: bytes


@dataclass(frozen=True)
class FilePatch:
    old_path: str | None  # None: the patch creates the file
    new_path: str | None  # None: the patch deletes the file
    old_mode: int | None = None  # None: unknown (plain diff) or unchanged
    new_mode: int | None = None
    old_id: str | None = None  # object ids from the "index" line, maybe abbreviated
    new_id: str | None = None
    hunks: tuple[Hunk, ...] = ()
    binary: tuple[BinaryHunk, BinaryHunk | None] | None = None
    is_copy: bool = False
    line: int = 0
    # Every spelling of a file name the input gave, before prefixes were
    # stripped; the guard checks these as well as the resolved paths.
    raw_names: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        path = self.new_path if self.new_path is not None else self.old_path
        assert path is not None
        return path

    @property
    def is_rename(self) -> bool:
        return (not self.is_copy and self.old_path is not None
                and self.new_path is not None and self.old_path != self.new_path)

    def reversed(self) -> FilePatch:
        if self.is_copy:
            raise ValueError("a copy cannot be reversed")
        binary = None
        if self.binary is not None:
            forward, backward = self.binary
            if backward is None:
                raise ValueError("binary patch has no reverse hunk")
            binary = (backward, forward)
        return replace(
            self,
            old_path=self.new_path, new_path=self.old_path,
            old_mode=self.new_mode, new_mode=self.old_mode,
            old_id=self.new_id, new_id=self.old_id,
            hunks=tuple(h.reversed() for h in self.hunks),
            binary=binary,
        )

    def paths(self) -> tuple[str, ...]:
        return tuple(p for p in (self.old_path, self.new_path) if p is not None)

    def stats(self) -> tuple[int, int]:
        added = sum(1 for h in self.hunks for t, _ in h.lines if t == "+")
        removed = sum(1 for h in self.hunks for t, _ in h.lines if t == "-")
        return added, removed


@dataclass(frozen=True)
class PatchCommit:
    title: str
    message: str
    files: tuple[FilePatch, ...]
    author_name: str | None = None
    author_email: str | None = None
    author_date: str | None = None  # as the mail gave it (RFC 2822)
    # The commit the mail was made from (format-patch's `From <id>` line). Only
    # a claim: merge.pushed_tip trusts it after checking the object itself.
    commit_id: str | None = None


@dataclass(frozen=True)
class Patch:
    format: str  # "git-diff", "mbox" or "unified"
    commits: tuple[PatchCommit, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        first = self.commits[0].title
        if len(self.commits) == 1:
            return first
        return f"{first} (+{len(self.commits) - 1} more commits)"

    @property
    def author(self) -> str | None:
        c = self.commits[0]
        if c.author_name and c.author_email:
            return f"{c.author_name} <{c.author_email}>"
        return c.author_name or c.author_email

    def files(self) -> list[FilePatch]:
        return [f for c in self.commits for f in c.files]

    def patch_id(self) -> str:
        """A content id stable under line-number, context and file-order changes.

        Like `git patch-id --stable`: per file, hash the paths and the changed
        lines with whitespace removed; sum the per-file hashes so file order
        does not matter. Series are hashed commit by commit, in order.
        """
        outer = hashlib.sha1()
        for commit in self.commits:
            total = 0
            for fp in commit.files:
                h = hashlib.sha1()
                h.update(f"{fp.old_path}\0{fp.new_path}\0{fp.old_mode}\0{fp.new_mode}\0".encode(
                    "utf-8", "surrogateescape"))
                for hunk in fp.hunks:
                    for tag, content in hunk.lines:
                        if tag != " ":
                            h.update(tag.encode() + b"".join(content.split()) + b"\n")
                if fp.binary is not None:
                    h.update(b"binary\0" + (fp.new_id or "").encode())
                total = (total + int.from_bytes(h.digest(), "big")) % (1 << 160)
            outer.update(total.to_bytes(20, "big"))
        return outer.hexdigest()


# --------------------------------------------------------------------------
# entry point

_MBOX_SENDER = re.compile(rb"From \S+ ")
_MBOX_TIME = re.compile(rb"\d\d:\d\d(?::\d\d)? ")
_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_MAIL_HEADER = re.compile(rb"^(From|Subject|Date|To|Cc|Message-I[Dd]|MIME-Version|Content-Type"
                          rb"|Return-Path|Received|Delivered-To|X-[\w-]+): ", re.IGNORECASE)
_ED_COMMAND = re.compile(rb"^\d+(,\d+)?[acdi]\s*$")
_NORMAL_DIFF = re.compile(rb"^\d+(,\d+)?[acd]\d+(,\d+)?\s*$")
_HUNK_HEADER = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def parse(
    data: bytes,
    name: str = "patch",
    *,
    limits: Limits = Limits(),
    exists: Callable[[str], bool] | None = None,
    deadline: Deadline | None = None,
) -> Patch:
    """Parse `data` (the bytes of a patch file called `name`).

    Raises PatchRejected with a reason a person can act on, also when it
    takes longer than `deadline` allows (by default, limits.max_parse_seconds).
    """
    return _parse(data, name, limits, exists, deadline or Deadline(limits.max_parse_seconds))[0]


def _parse(
    data: bytes, name: str, limits: Limits, exists: Callable[[str], bool] | None, deadline: Deadline,
) -> tuple[Patch, bool]:
    """The patch, and whether `exists` decided what it means (a plain unified diff's strip level)."""
    if len(data) > limits.max_patch_bytes:
        raise PatchRejected(
            f"patch is {len(data):,} bytes; the limit is {limits.max_patch_bytes:,} "
            "(max_patch_bytes)")
    if not data.strip():
        raise PatchRejected("patch is empty")
    if b"\0" in data:
        raise PatchRejected("patch contains NUL bytes: it is not a text patch "
                            "(binary changes must use `git diff --binary`)")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    budget = _Budget(limits)
    reader = _Reader(limits, exists, budget, deadline)

    if _looks_like_mail(data):
        commits = _parse_mailbox(data, name, reader)
        fmt = "mbox"
    else:
        files, kind = _parse_diff(data, 0, reader)
        if not files:
            raise PatchRejected(_why_no_diff(data, name))
        fmt = "git-diff" if kind == "git" else "unified"
        commits = [PatchCommit(title=title_from_filename(name), message="", files=tuple(files))]

    total = sum(len(c.files) for c in commits)
    if total > limits.max_files:
        raise PatchRejected(f"patch changes {total:,} files; the limit is {limits.max_files:,} (max_files)")
    deadline.check()
    return Patch(format=fmt, commits=tuple(commits)), reader.used_exists


def parse_once(
    data: bytes,
    name: str = "patch",
    *,
    limits: Limits = Limits(),
    exists: Callable[[str], bool] | None = None,
    deadline: Deadline | None = None,
) -> Patch:
    """`parse`, reusing this process's last parse of the same bytes.

    Intake parses a patch to name it (its patch id), and validation needs it
    again; in the daemon and in `errauto apply` both happen in one process.
    A parse that asked `exists` (a plain unified diff's strip level) is not
    reused: the tree it asked about may have moved.
    """
    key = (hashlib.sha256(data).hexdigest(), name, limits)
    found = _RECENT.get(key)
    if found is not None:
        return found
    patch, used_exists = _parse(data, name, limits, exists, deadline or Deadline(limits.max_parse_seconds))
    if not used_exists:
        _RECENT.put(key, patch, len(data))
    return patch


class _RecentPatches:
    """The last few parsed patches by (content, name, limits); shared by threads."""

    def __init__(self, max_bytes: int, max_entries: int) -> None:
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str, Limits], tuple[Patch, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, str, Limits]) -> Patch | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[str, str, Limits], patch: Patch, size: int) -> None:
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (patch, size)
            self._bytes += size
            while self._entries and (self._bytes > self.max_bytes or len(self._entries) > self.max_entries):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped


# Parsed, a patch takes several times its size in memory: keep a few.
_RECENT = _RecentPatches(max_bytes=16 * 1024 * 1024, max_entries=32)


class Deadline:
    """When reading one patch must be done. Parsing and applying look at it as
    they go (cooperatively: no signal, no thread), so that no input, however
    hostile, holds the thread reading it for longer."""

    # Steps (lines, hunks, candidates) between two looks at the clock.
    EVERY = 512

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._steps = 0

    def check(self) -> None:
        if time.monotonic() >= self.at:
            raise PatchRejected(
                f"took more than {self.seconds:g} s to parse and apply (max_parse_seconds); "
                "split the patch, or make it smaller")

    def step(self, steps: int = 1) -> None:
        self._steps += steps
        if self._steps >= self.EVERY:
            self._steps = 0
            self.check()


@dataclass
class _Reader:
    """What every part of one parse shares: its limits and budgets, and whether
    the `exists` callback was asked (then the result depends on the tree)."""

    limits: Limits
    exists: Callable[[str], bool] | None
    budget: _Budget
    deadline: Deadline
    used_exists: bool = False


def as_mail(commit: str, author_name: str, author_email: str, date: str, message: str, diff: bytes) -> bytes:
    """A diff as a one-commit `git format-patch` mail (how refs become submissions)."""
    import email.utils

    summary, _, body = message.partition("\n")
    head = (
        f"From {commit} Mon Sep 17 00:00:00 2001\n"
        f"From: {email.utils.formataddr((author_name, author_email))}\n"
        f"Date: {date}\n"
        f"Subject: [PATCH] {' '.join(summary.split())}\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n"
    )
    body = body.strip("\n")
    return (head + (body + "\n" if body else "") + "---\n\n").encode("utf-8", "surrogateescape") + diff


def title_from_filename(name: str) -> str:
    stem = PurePosixPath(name.replace("\\", "/")).name
    for suffix in (*SUFFIXES, ".txt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = re.sub(r"^\d{4}-", "", stem)  # format-patch numbering
    title = re.sub(r"[-_]+", " ", stem).strip()
    return title or "untitled patch"


def _looks_like_mail(data: bytes) -> bool:
    first = data.lstrip(b"\r\n").split(b"\n", 1)[0]
    if _is_mbox_from(first):
        return True
    if not _MAIL_HEADER.match(first):
        return False
    head = data.split(b"\n\n", 1)[0]
    return re.search(rb"^Subject:", head, re.MULTILINE | re.IGNORECASE) is not None


def _why_no_diff(data: bytes, name: str) -> str:
    lines = data.splitlines()
    if any(_NORMAL_DIFF.match(l) for l in lines) and any(l.startswith((b"< ", b"> ")) for l in lines):
        return "normal (non-unified) diffs are not accepted; send a unified diff (`git diff` or `diff -u`)"
    if any(_ED_COMMAND.match(l) for l in lines):
        return "ed-style scripts are not accepted; send a unified diff (`git diff` or `diff -u`)"
    if any(l.startswith(b"*** ") for l in lines) and any(l.startswith(b"***************") for l in lines):
        return "context diffs are not accepted; send a unified diff (`git diff` or `diff -u`)"
    if any(l.startswith(b"diff --git ") for l in lines):
        return "the diff --git header is not followed by a file change"
    return f"no diff found in {name}: expected `git diff`, `git format-patch` or `diff -u` output"


# --------------------------------------------------------------------------
# mail

def _is_mbox_from(line: bytes) -> bool:
    """An mbox separator: `From <sender> <date>`, the date with a time and a year.

    The regex `From \\S+ .*\\d\\d:\\d\\d(:\\d\\d)? .*\\d{4}\\s*$`, without its
    backtracking (quadratic on a long line of times)."""
    sender = _MBOX_SENDER.match(line)
    if sender is None:
        return False
    text = line.rstrip()
    year = len(text) - 4
    if year < sender.end() or not text[year:].isdigit():
        return False
    time_ = _MBOX_TIME.search(text, sender.end())
    return time_ is not None and time_.end() <= year


def _split_mbox(data: bytes) -> list[tuple[int, bytes, str | None]]:
    """The mails in `data`, each with the number of lines of `data` before it
    and the commit id its `From <id> <date>` separator names, if any."""
    lines = data.split(b"\n")
    first = _first_nonblank(lines)
    starts = [i for i, l in enumerate(lines) if _is_mbox_from(l)
              and (i == 0 or not lines[i - 1].strip() or i == first)]
    if not starts:
        return [(0, data, None)]
    if starts[0] != first:
        starts.insert(0, 0)
    chunks = []
    for a, b in zip(starts, starts[1:] + [len(lines)], strict=True):
        chunk = lines[a:b]
        commit_id = None
        if _is_mbox_from(chunk[0]):
            named = chunk[0].split()[1].decode("ascii", "replace").lower()
            commit_id = named if _COMMIT_ID.fullmatch(named) else None
            chunk = chunk[1:]
            a += 1
        chunks.append((a, b"\n".join(chunk), commit_id))
    return chunks


def _header_lines(raw: bytes) -> int:
    """The lines of a mail before its body: the headers and the blank line."""
    for i, line in enumerate(raw.split(b"\n")):
        if not line.rstrip(b"\r"):
            return i + 1
    return 0


def _first_nonblank(lines: Sequence[bytes]) -> int:
    for i, line in enumerate(lines):
        if line.strip():
            return i
    return 0


_SUBJECT_PREFIX = re.compile(r"^(\s*((re|fwd?|aw)\s*:|\[[^\]]*\]))+\s*", re.IGNORECASE)
def _is_cover_letter(subject: str) -> bool:
    """Whether a bracket in `subject` ends with patch number zero: `[PATCH v2 0/3]`.

    What the regex `\\[[^\\]]*?\\b0+/\\d+\\s*\\]` finds, without its
    backtracking (quadratic on a subject of many `[`)."""
    for piece in subject.split("]")[:-1]:
        opening = piece.find("[")
        if opening >= 0 and _ends_with_number_zero(piece[opening + 1:]):
            return True
    return False


def _ends_with_number_zero(text: str) -> bool:
    """`text` ends with `0/N` (any zeros, then digits, then white space), the zeros a word of their own."""
    text = text.rstrip()
    i = len(text)
    while i > 0 and text[i - 1].isdecimal():
        i -= 1
    if i == len(text) or i == 0 or text[i - 1] != "/":
        return False
    slash = k = i - 1
    while k > 0 and text[k - 1] == "0":
        k -= 1
    if k == slash:
        return False
    return k == 0 or not (text[k - 1].isalnum() or text[k - 1] == "_")


def _parse_mailbox(data: bytes, name: str, reader: _Reader) -> list[PatchCommit]:
    import email
    import email.policy
    import email.utils

    commits: list[PatchCommit] = []
    for index, (offset, raw, commit_id) in enumerate(_split_mbox(data), 1):
        reader.deadline.check()
        if not raw.strip():
            continue
        try:
            # compat32 builds the message's structure without parsing every
            # header (ten times faster on a mail of many MIME parts); the
            # three headers read are parsed as the default policy would.
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            headers = _mail_headers(msg, index)
            subject_raw = headers.get("subject", "")
            from_raw = headers.get("from", "")
            date_raw = headers.get("date", "") or None
        except PatchRejected:
            raise
        except Exception as exc:  # the email package raises many types on hostile headers
            raise PatchRejected(f"mail {index}: cannot read its headers ({type(exc).__name__})") from None
        subject_oneline = " ".join(subject_raw.split())
        body = _mail_body(msg)
        if body is None:
            raise PatchRejected(f"mail {index} ({subject_oneline or 'no subject'}): no text part")
        # Line numbers count from the top of the mailbox; they are exact
        # where the body is not transfer-encoded.
        offset += _header_lines(raw)
        # git am honours "From:" / "Subject:" / "Date:" lines at the top of the body.
        lines_before = body.count(b"\n")
        body, in_body = _in_body_headers(body)
        offset += lines_before - body.count(b"\n")
        subject_oneline = in_body.get("subject", subject_oneline)
        from_raw = in_body.get("from", from_raw)
        date_raw = in_body.get("date", date_raw)

        files, _ = _parse_diff(body, offset, reader)
        if not files:
            if _is_cover_letter(subject_oneline):
                continue  # a cover letter: [PATCH 0/N]
            raise PatchRejected(f"mail {index} ({subject_oneline or 'no subject'}) has no diff")

        title = _SUBJECT_PREFIX.sub("", subject_oneline).strip() or title_from_filename(name)
        message_body = _commit_message_body(body)
        message = title + ("\n\n" + message_body if message_body else "") + "\n"
        author_name, author_email = email.utils.parseaddr(from_raw)
        commits.append(PatchCommit(
            title=title, message=message, files=tuple(files),
            author_name=author_name or None, author_email=author_email or None,
            author_date=date_raw, commit_id=commit_id,
        ))
    if not commits:
        raise PatchRejected(f"no diff found in {name}: the mail carries no patch")
    return commits


# The email package parses these headers in time that grows faster than
# their length (about 40 ms per KiB of an address list); longer ones are
# not what git or a person writes.
_MAX_HEADER_CHARS = {"subject": 16 * 1024, "from": 2 * 1024, "date": 1024}


def _mail_headers(msg: Message, index: int) -> dict[str, str]:
    """The first Subject, From and Date of `msg`, as `email.policy.default` reads them."""
    import email.policy

    found: dict[str, str] = {}
    for name, raw in msg.raw_items():
        key = name.lower()
        limit = _MAX_HEADER_CHARS.get(key)
        if limit is None or key in found:
            continue
        value = str(raw)  # both policies keep a header's source the same way
        if len(value) > limit:
            raise PatchRejected(f"mail {index}: its {name} header is over {limit:,} characters")
        found[key] = str(email.policy.default.header_fetch_parse(name, value) or "")
    return found


def _mail_body(msg: Message) -> bytes | None:
    if not msg.is_multipart():
        payload = msg.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else None
    parts: list[bytes] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if not (ctype.startswith("text/") or ctype in ("application/x-patch", "application/x-diff")):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if not parts or b"\n@@ " in payload or payload.startswith(b"diff --git") or b"\ndiff --git " in payload:
            parts.append(payload)
    return b"\n".join(parts) if parts else None


_IN_BODY_HEADER = re.compile(rb"(From|Subject|Date):")


def _in_body_headers(body: bytes) -> tuple[bytes, dict[str, str]]:
    found: dict[str, str] = {}
    lines = body.split(b"\n")
    i = 0
    while i < len(lines):
        # The value is stripped by hand: `:\s*(.*?)\s*$` backtracks quadratically over spaces.
        m = _IN_BODY_HEADER.match(lines[i])
        if not m:
            break
        found[m.group(1).decode().lower()] = lines[i][m.end():].strip().decode("utf-8", "replace")
        i += 1
    if found and i < len(lines) and not lines[i].strip():
        return b"\n".join(lines[i + 1:]), found
    return body, {}


def _commit_message_body(body: bytes) -> str:
    out: list[bytes] = []
    for line in body.split(b"\n"):
        stripped = line.rstrip(b"\r")
        if stripped == b"---" or stripped.startswith(b"diff --git ") or stripped.startswith(b"Index: "):
            break
        if stripped.startswith(b"--- ") or stripped.startswith(b"-- "):
            break
        out.append(stripped)
    return b"\n".join(out).decode("utf-8", "replace").strip()


def author_time(date: str | None) -> tuple[int, int] | None:
    """(seconds since the epoch, UTC offset in minutes) from a mail Date header."""
    import email.utils

    if not date:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    offset = parsed.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    return int(parsed.timestamp()), minutes


# --------------------------------------------------------------------------
# diffs

class _Budget:
    """What the binary hunks of one patch may inflate to, all together.

    Each hunk is held to max_blob_bytes; without a total, a few megabytes of
    well-compressed hunks (or of deltas copying one source over and over)
    could still demand gigabytes. Twice max_blob_bytes lets one file at the
    limit carry both its forward and its reverse hunk.
    """

    def __init__(self, limits: Limits) -> None:
        self.total = 2 * limits.max_blob_bytes
        self.left = self.total

    def spend(self, size: int, line: int) -> None:
        self.left -= size
        if self.left < 0:
            raise PatchRejected(
                f"line {line}: the binary hunks of this patch inflate to more than {self.total:,} bytes "
                "together (twice max_blob_bytes)")


def _parse_diff(data: bytes, line_offset: int, reader: _Reader) -> tuple[list[FilePatch], str]:
    parser = _DiffParser(data, line_offset, reader.limits, reader.budget, reader.deadline)
    files = parser.run()
    kind = "git" if parser.saw_git else "unified"
    if parser.traditional:
        reader.used_exists = reader.used_exists or reader.exists is not None
        files = _resolve_traditional(files, reader.exists)
    seen: set[str] = set()
    deleted: set[str] = set()  # may be created once more: git writes a type change that way
    for fp in files:
        for path in dict.fromkeys(fp.paths()):
            if fp.is_copy and path == fp.old_path:
                continue
            if path in seen and not (fp.old_path is None and path in deleted):
                raise PatchRejected(f"the patch changes {path} more than once")
            seen.add(path)
            deleted.discard(path)
        if fp.new_path is None and fp.old_path is not None:
            deleted.add(fp.old_path)
    return files, kind


def _binary_differs(line: bytes) -> tuple[bytes, bytes] | None:
    """The two names of `Binary files A and B differ`, split at the last ` and `
    that leaves both non-empty (what a greedy regex would pick, in linear time)."""
    head, tail = b"Binary files ", b" differ"
    if not (line.startswith(head) and line.endswith(tail)):
        return None
    names = line[len(head):len(line) - len(tail)]
    end = len(names)
    while (at := names.rfind(b" and ", 0, end)) > 0:
        if at + 5 < len(names):
            return names[:at], names[at + 5:]
        end = at + 4
    return None


def _strip_cr(line: bytes) -> bytes:
    line = line[:-1] if line.endswith(b"\n") else line
    return line[:-1] if line.endswith(b"\r") else line


_C_ESCAPES = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13, b'"': 34, b"\\": 92}


def _unquote(text: bytes) -> tuple[bytes, bytes]:
    """Split a leading C-quoted name (as git writes unusual names) off `text`."""
    assert text.startswith(b'"')
    out = bytearray()
    i = 1
    while i < len(text):
        ch = text[i:i + 1]
        if ch == b'"':
            return bytes(out), text[i + 1:]
        if ch == b"\\":
            nxt = text[i + 1:i + 2]
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                i += 2
                continue
            octal = text[i + 1:i + 4]
            if re.fullmatch(rb"[0-3][0-7][0-7]", octal):
                out.append(int(octal, 8))
                i += 4
                continue
            raise PatchRejected(f"bad escape in quoted file name {text[:80]!r}")
        out += ch
        i += 1
    raise PatchRejected(f"unterminated quoted file name {text[:80]!r}")


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # git trees can hold such a name, but pygit2 cannot write one.
        raise PatchRejected(f"file name {raw[:80]!r} is not UTF-8; errauto cannot write it") from None


def _name_field(text: bytes, *, timestamps: bool) -> str:
    """The file name from a `---`/`+++`/`rename from` line's argument."""
    if text.startswith(b'"'):
        name, _ = _unquote(text)
        return _decode_name(name)
    if timestamps and b"\t" in text:
        text = text.split(b"\t", 1)[0]
    elif not timestamps:
        text = text.rstrip(b"\t")
    return _decode_name(text)


def _strip_prefix(name: str) -> str | None:
    """Strip the a/ or b/ style first component (git apply's -p1)."""
    if "/" not in name:
        return None
    return name.split("/", 1)[1]


def _git_header_names(rest: bytes) -> tuple[str | None, str | None]:
    if rest.startswith(b'"'):
        first, tail = _unquote(rest)
        tail = tail.lstrip(b" ")
        second = _unquote(tail)[0] if tail.startswith(b'"') else tail
        return _decode_name(first), _decode_name(second)
    # Unquoted names may contain spaces: split at the first space where both
    # halves name the same file once their prefixes are stripped (as git does).
    # A quoted second name ends the search at the space before it.
    space = rest.find(b" ")
    if space < 0:
        return None, None
    quoted = rest.find(b' "')
    if quoted != space:
        _decode_name(rest[:space]), _decode_name(rest[space + 1:])  # either half not UTF-8: rejected
    same = _same_name_split(rest)
    if quoted >= 0 and (same is None or quoted <= same):
        return _decode_name(rest[:quoted]), _decode_name(_unquote(rest[quoted + 1:])[0])
    if same is not None:
        return _decode_name(rest[:same]), _decode_name(rest[same + 1:])
    return None, None


def _same_name_split(rest: bytes) -> int | None:
    """The space in `rest` between `P/NAME` and `Q/NAME`, in time linear in its length.

    For a split at space `i`, the left name is stripped at the first slash of
    `rest` (`s`), the right one at the first slash after `i` (`j`); the two
    names have the same length only if `i + j == len(rest) + s`. As `i` grows,
    so does `j`, so at most one space fits, and walking the slashes finds it:
    for the slash `j`, `i` is fixed, and `j` is the first slash after `i`
    exactly when the slash before `j` lies before `i`.
    """
    s = rest.find(b"/")
    if s < 0:
        return None
    previous = s
    j = rest.find(b"/", s + 1)
    while j >= 0:
        i = len(rest) + s - j
        if previous < i < j and rest[i] == 0x20 and rest[s + 1:i] == rest[j + 1:]:
            return i
        previous, j = j, rest.find(b"/", j + 1)
    return None


def _parse_mode(text: bytes, line: int) -> int:
    try:
        mode = int(text.strip(), 8)
    except ValueError:
        raise PatchRejected(f"line {line}: bad file mode {text.strip()[:20]!r}") from None
    if mode == 0o100664:  # old git wrote group-writable files this way
        mode = MODE_FILE
    if mode not in VALID_MODES:
        raise PatchRejected(f"line {line}: unsupported file mode {mode:o}")
    return mode


def delta_header(delta: bytes) -> tuple[int, int, int] | None:
    """A git binary delta's header: the source's size, the result's size, and
    where the copy and insert opcodes start. None: truncated, or a size over 64 bits."""
    sizes = []
    i = 0
    for _ in range(2):
        value = shift = 0
        while True:
            if i >= len(delta) or shift > 63:
                return None
            byte = delta[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        sizes.append(value)
    return sizes[0], sizes[1], i


def ancestors(path: str) -> Iterator[str]:
    """The directories above `path`, outermost first: `a/b/c` gives `a`, then `a/b`."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


_INDEX_LINE = re.compile(rb"index ([0-9a-f]{4,64})\.\.([0-9a-f]{4,64})(?: ([0-7]{6}))?")


@dataclass
class _GitSection:
    """What the lines of one `diff --git` section say, gathered as the parser
    reads them (hence not frozen), then checked and made a `FilePatch`."""

    start: int  # the line of `diff --git`
    a_name: str | None  # the names on that line
    b_name: str | None
    old_mode: int | None = None
    new_mode: int | None = None
    old_id: str | None = None
    new_id: str | None = None
    is_new: bool = False
    is_deleted: bool = False
    is_rename: bool = False
    is_copy: bool = False
    from_name: str | None = None  # rename or copy from
    to_name: str | None = None
    minus: str | None = None  # the name on `---`
    plus: str | None = None
    hunks: list[Hunk] = field(default_factory=list)
    binary: tuple[BinaryHunk, BinaryHunk | None] | None = None
    # Every name as written, in the order read (the guard inspects them all).
    raw_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.raw_names = [n for n in (self.a_name, self.b_name) if n is not None]

    # -- reading -------------------------------------------------------------

    def take_extended_header(self, line: bytes, ln: int) -> bool:
        """Mode, rename, copy, similarity and index lines; False: `line` is none of them."""
        return self._take_mode(line, ln) or self._take_rename_or_copy(line) or self._take_index(line, ln)

    def _take_mode(self, line: bytes, ln: int) -> bool:
        if line.startswith(b"old mode "):
            self.old_mode = _parse_mode(line[9:], ln)
        elif line.startswith(b"new mode "):
            self.new_mode = _parse_mode(line[9:], ln)
        elif line.startswith(b"deleted file mode "):
            self.is_deleted, self.old_mode = True, _parse_mode(line[18:], ln)
        elif line.startswith(b"new file mode "):
            self.is_new, self.new_mode = True, _parse_mode(line[14:], ln)
        else:
            return False
        return True

    def _take_rename_or_copy(self, line: bytes) -> bool:
        if line.startswith((b"rename from ", b"rename old ")):
            self.is_rename, self.from_name = True, _name_field(line.split(b" ", 2)[2], timestamps=False)
        elif line.startswith((b"rename to ", b"rename new ")):
            self.is_rename, self.to_name = True, _name_field(line.split(b" ", 2)[2], timestamps=False)
        elif line.startswith(b"copy from "):
            self.is_copy, self.from_name = True, _name_field(line[10:], timestamps=False)
        elif line.startswith(b"copy to "):
            self.is_copy, self.to_name = True, _name_field(line[8:], timestamps=False)
        else:
            return False
        return True

    def _take_index(self, line: bytes, ln: int) -> bool:
        if line.startswith((b"similarity index ", b"dissimilarity index ")):
            return True
        if not line.startswith(b"index "):
            return False
        m = _INDEX_LINE.fullmatch(line)
        if not m:
            raise PatchRejected(f"line {ln}: malformed index line")
        self.old_id, self.new_id = m.group(1).decode(), m.group(2).decode()
        if m.group(3):
            self.old_mode = self.new_mode = _parse_mode(m.group(3), ln)
        return True

    def take_names(self, minus: str, plus: str) -> None:
        """The names on the `---` and `+++` lines."""
        self.minus, self.plus = minus, plus
        self.raw_names += [minus, plus]

    # -- what it means ---------------------------------------------------------

    def file_patch(self) -> FilePatch:
        renamed = [n for n in (self.from_name, self.to_name) if n is not None]
        old_path, new_path = self._paths()
        self._check_content(new_path or old_path)
        new_mode = MODE_FILE if self.is_new and self.new_mode is None else self.new_mode
        return FilePatch(
            old_path=old_path, new_path=new_path,
            old_mode=self.old_mode, new_mode=new_mode if new_mode is not None else self.old_mode,
            old_id=self.old_id, new_id=self.new_id,
            hunks=tuple(self.hunks), binary=self.binary, is_copy=self.is_copy,
            line=self.start, raw_names=tuple(self.raw_names + renamed),
        )

    def _paths(self) -> tuple[str | None, str | None]:
        """The file before and after: from rename or copy lines, else `---`/`+++`, else the header."""
        old_path = self.from_name if self.from_name is not None else self._stripped(self.minus, "old")
        new_path = self.to_name if self.to_name is not None else self._stripped(self.plus, "new")
        head_old, head_new = self._stripped(self.a_name, "old"), self._stripped(self.b_name, "new")
        if old_path is None and not self.is_new:
            old_path = head_old
        if new_path is None and not self.is_deleted:
            new_path = head_new
        old_path, new_path = self._created_or_deleted(old_path, new_path)
        self._check_names(old_path, new_path, head_old, head_new)
        return old_path, new_path

    def _stripped(self, name: str | None, what: str) -> str | None:
        if name is None or name == "/dev/null":
            return None
        stripped = _strip_prefix(name)
        if stripped is None:
            raise PatchRejected(f"line {self.start}: {what} name {name!r} has no a/ or b/ prefix to strip")
        return stripped

    def _created_or_deleted(self, old_path: str | None, new_path: str | None) -> tuple[str | None, str | None]:
        """A new file has no old name, a deleted one no new name, and /dev/null means exactly that."""
        if self.is_new:
            if self.minus not in (None, "/dev/null") or self.from_name is not None:
                raise PatchRejected(f"line {self.start}: new file has an old name")
            old_path = None
        if self.is_deleted:
            if self.plus not in (None, "/dev/null") or self.to_name is not None:
                raise PatchRejected(f"line {self.start}: deleted file has a new name")
            new_path = None
        if self.minus == "/dev/null" and not self.is_new:
            raise PatchRejected(f"line {self.start}: '--- /dev/null' without 'new file mode'")
        if self.plus == "/dev/null" and not self.is_deleted:
            raise PatchRejected(f"line {self.start}: '+++ /dev/null' without 'deleted file mode'")
        return old_path, new_path

    def _check_names(self, old_path: str | None, new_path: str | None,
                     head_old: str | None, head_new: str | None) -> None:
        """The names agree with each other and with the `diff --git` line."""
        if old_path is None and new_path is None:
            raise PatchRejected(f"line {self.start}: cannot tell which file this diff changes")
        if head_old is not None and old_path is not None and head_old != old_path:
            raise PatchRejected(f"line {self.start}: inconsistent old file name ({head_old} vs {old_path})")
        if head_new is not None and new_path is not None and head_new != new_path:
            raise PatchRejected(f"line {self.start}: inconsistent new file name ({head_new} vs {new_path})")
        if (self.is_rename or self.is_copy) and (old_path is None or new_path is None):
            raise PatchRejected(f"line {self.start}: rename or copy without both names")
        if not self.is_rename and not self.is_copy and old_path and new_path and old_path != new_path:
            raise PatchRejected(f"line {self.start}: file names differ but this is not a rename")

    def _check_content(self, path: str | None) -> None:
        """Text hunks or a binary patch, not both; and some change at all."""
        if self.binary is not None and self.hunks:
            raise PatchRejected(f"line {self.start}: both text hunks and a binary patch for one file")
        mode_changed = self.new_mode is not None and self.old_mode is not None and self.new_mode != self.old_mode
        if not (self.hunks or self.binary or self.is_new or self.is_deleted or self.is_rename or self.is_copy
                or mode_changed):
            raise PatchRejected(f"line {self.start}: the diff for {path} changes nothing")


class _DiffParser:
    def __init__(self, data: bytes, line_offset: int, limits: Limits, budget: _Budget,
                 deadline: Deadline) -> None:
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        self.lines = [l + b"\n" for l in lines]
        self.offset = line_offset
        self.limits = limits
        self.budget = budget
        self.deadline = deadline
        self.i = 0
        self.saw_git = False
        self.traditional = False

    def lineno(self, i: int | None = None) -> int:
        return self.offset + (self.i if i is None else i) + 1

    def header(self, i: int) -> bytes:
        return _strip_cr(self.lines[i])

    def run(self) -> list[FilePatch]:
        files: list[FilePatch] = []
        n = len(self.lines)
        while self.i < n:
            self.deadline.step()
            line = self.header(self.i)
            if line.startswith(b"diff --git "):
                self.saw_git = True
                files.append(self._git_file())
            elif names := _binary_differs(line):
                name = _name_field(names[1], timestamps=False)
                if name == "/dev/null":  # a deleted file
                    name = _name_field(names[0], timestamps=False)
                raise PatchRejected(
                    f"line {self.lineno()}: binary change to {_strip_prefix(name) or name} has no content; "
                    "make the patch with `git diff --binary` or `git format-patch`")
            elif (line.startswith(b"--- ") and self.i + 2 < n
                  and self.header(self.i + 1).startswith(b"+++ ")
                  and self.header(self.i + 2).startswith(b"@@ ")):
                self.traditional = True
                files.append(self._traditional_file())
            else:
                self.i += 1  # commit message, diffstat, "Index:" lines, signature
            if len(files) > self.limits.max_files:
                raise PatchRejected(
                    f"patch changes more than {self.limits.max_files:,} files (max_files)")
        return files

    # -- git style -----------------------------------------------------------

    def _git_file(self) -> FilePatch:
        names = _git_header_names(self.header(self.i)[len(b"diff --git "):])
        section = _GitSection(self.lineno(), *names)
        self.i += 1
        while self.i < len(self.lines) and self._git_section_line(section):
            self.deadline.step()
        return section.file_patch()

    def _git_section_line(self, section: _GitSection) -> bool:
        """Read the next line of a `diff --git` section into it; False: the section ended before it."""
        line, ln = self.header(self.i), self.lineno()
        if section.take_extended_header(line, ln):
            self.i += 1
        elif line.startswith(b"--- "):
            minus = _name_field(line[4:], timestamps=True)
            if self.i + 1 >= len(self.lines) or not self.header(self.i + 1).startswith(b"+++ "):
                raise PatchRejected(f"line {ln}: '---' line not followed by '+++'")
            section.take_names(minus, _name_field(self.header(self.i + 1)[4:], timestamps=True))
            self.i += 2
        elif line.startswith(b"@@ "):
            if section.minus is None:
                raise PatchRejected(f"line {ln}: hunk before the '---'/'+++' file names")
            section.hunks.append(self._hunk())
        elif line == b"GIT binary patch":
            self.i += 1
            section.binary = self._binary()
        elif line.startswith(b"Binary files ") and line.endswith(b" differ"):
            name = section.b_name or section.a_name or "a file"
            raise PatchRejected(
                f"binary change to {_strip_prefix(name) or name} has no content; "
                "make the patch with `git diff --binary` or `git format-patch`")
        else:
            return False
        return True

    def _hunk(self) -> Hunk:
        start = self.lineno()
        m = _HUNK_HEADER.match(self.header(self.i))
        if not m:
            raise PatchRejected(f"line {start}: malformed hunk header")
        old_start, new_start = int(m.group(1)), int(m.group(3))
        old_count = int(m.group(2)) if m.group(2) is not None else 1
        new_count = int(m.group(4)) if m.group(4) is not None else 1
        limit = self.limits.max_hunk_lines
        if old_start > 10**9 or new_start > 10**9:
            raise PatchRejected(f"line {start}: hunk starts at line {max(old_start, new_start):,}")
        if old_count > limit or new_count > limit:
            raise PatchRejected(
                f"line {start}: hunk claims {max(old_count, new_count):,} lines; "
                f"the limit is {limit:,} (max_hunk_lines)")
        self.i += 1
        old_left, new_left = old_count, new_count
        body: list[tuple[str, bytes]] = []
        n = len(self.lines)
        while old_left > 0 or new_left > 0:
            self.deadline.step()
            if self.i >= n:
                raise PatchRejected(f"line {start}: hunk is truncated "
                                    f"(header promises {old_count} old and {new_count} new lines)")
            raw = self.lines[self.i]
            if raw.startswith(b"\\"):
                self._no_newline(body)
                self.i += 1
                continue
            if raw in (b"\n", b"\r\n"):
                tag, content = " ", raw  # mailers strip the space of empty context lines
            else:
                tag, content = chr(raw[0]), raw[1:]
            if tag == " ":
                old_left -= 1
                new_left -= 1
            elif tag == "-":
                old_left -= 1
            elif tag == "+":
                new_left -= 1
            else:
                raise PatchRejected(
                    f"line {self.lineno()}: unexpected line in hunk "
                    f"(header promises {old_count} old and {new_count} new lines)")
            if old_left < 0 or new_left < 0:
                raise PatchRejected(
                    f"line {start}: hunk body does not match its header "
                    f"(-{old_start},{old_count} +{new_start},{new_count})")
            body.append((tag, content))
            self.i += 1
        if self.i < n and self.lines[self.i].startswith(b"\\"):
            self._no_newline(body)
            self.i += 1
        if self.i < n and self._continues_hunk(self.header(self.i)):
            # git and patch would silently drop these lines; a reader would not.
            raise PatchRejected(
                f"line {start}: hunk body does not match its header "
                f"(-{old_start},{old_count} +{new_start},{new_count}): line {self.lineno()} "
                "is past its end")
        return Hunk(old_start, old_count, new_start, new_count, tuple(body), start)

    @staticmethod
    def _continues_hunk(line: bytes) -> bool:
        if line.startswith(b"--- ") or line in (b"--", b"-- "):  # the next file, a mail signature
            return False
        return line.startswith((b"+", b"-", b" "))

    def _no_newline(self, body: list[tuple[str, bytes]]) -> None:
        if not body:
            raise PatchRejected(f"line {self.lineno()}: '\\ No newline' marker without a line before it")
        tag, content = body[-1]
        if content.endswith(b"\r\n") and not self.lines[self.i].rstrip(b"\n").endswith(b"\r"):
            content = content[:-1]  # the file's own CR stays; only the LF was missing
        elif content.endswith(b"\n"):
            content = content[:-1]
        body[-1] = (tag, content)

    def _binary(self) -> tuple[BinaryHunk, BinaryHunk | None]:
        forward = self._binary_hunk()
        if forward is None:
            raise PatchRejected(f"line {self.lineno()}: 'GIT binary patch' without a literal or delta")
        backward = self._binary_hunk()
        return forward, backward

    def _binary_hunk(self) -> BinaryHunk | None:
        n = len(self.lines)
        if self.i >= n:
            return None
        line = self.header(self.i)
        m = re.fullmatch(rb"(literal|delta) (\d+)", line)
        if not m:
            return None
        start = self.lineno()
        kind, size = m.group(1).decode(), int(m.group(2))
        if size > self.limits.max_blob_bytes:
            raise PatchRejected(f"line {start}: binary hunk of {size:,} bytes is over the limit "
                                f"of {self.limits.max_blob_bytes:,} (max_blob_bytes)")
        self.budget.spend(size, start)
        self.i += 1
        encoded = bytearray()
        while self.i < n:
            self.deadline.step()
            line = self.header(self.i)
            self.i += 1
            if not line:
                break
            length_char = line[0]
            if 65 <= length_char <= 90:
                length = length_char - 64
            elif 97 <= length_char <= 122:
                length = length_char - 96 + 26
            else:
                raise PatchRejected(f"line {self.lineno() - 1}: corrupt binary patch line")
            chunk = line[1:]
            if len(chunk) != (length + 3) // 4 * 5:
                raise PatchRejected(f"line {self.lineno() - 1}: corrupt binary patch line")
            try:
                encoded += base64.b85decode(chunk)[:length]
            except ValueError:
                raise PatchRejected(f"line {self.lineno() - 1}: corrupt binary patch line") from None
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(bytes(encoded), size + 1)
        except zlib.error:
            raise PatchRejected(f"line {start}: binary patch data is corrupt") from None
        if len(data) != size or not inflater.eof:
            raise PatchRejected(f"line {start}: binary patch inflates to a different size than it declares")
        if kind == "delta":
            header = delta_header(data)
            if header is None:
                raise PatchRejected(f"line {start}: binary delta is corrupt")
            result_size = header[1]
            if result_size > self.limits.max_blob_bytes:
                raise PatchRejected(
                    f"line {start}: binary delta makes a file of {result_size:,} bytes, over the limit "
                    f"of {self.limits.max_blob_bytes:,} (max_blob_bytes)")
            self.budget.spend(result_size, start)
        return BinaryHunk(kind, size, data)

    # -- plain unified diff ----------------------------------------------------

    def _traditional_file(self) -> FilePatch:
        start = self.lineno()
        minus_line = self.header(self.i)[4:]
        plus_line = self.header(self.i + 1)[4:]
        minus = _name_field(minus_line, timestamps=True)
        plus = _name_field(plus_line, timestamps=True)
        self.i += 2
        hunks: list[Hunk] = []
        while self.i < len(self.lines) and self.header(self.i).startswith(b"@@ "):
            hunks.append(self._hunk())
        creates = minus == "/dev/null" or (
            _is_epoch(minus_line) and len(hunks) == 1 and hunks[0].old_count == 0)
        deletes = plus == "/dev/null" or (
            _is_epoch(plus_line) and len(hunks) == 1 and hunks[0].new_count == 0)
        return FilePatch(
            old_path=None if creates else minus,
            new_path=None if deletes else plus,
            new_mode=MODE_FILE if creates else None,
            hunks=tuple(hunks), line=start, raw_names=(minus, plus),
        )


_TIMESTAMP = re.compile(rb"\t(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))? ([+-])(\d\d)(\d\d)$")


def _is_epoch(name_line: bytes) -> bool:
    """Whether a ---/+++ line carries the epoch, diff -N's mark of a missing file.

    diff writes it in the local time zone: `1969-12-31 19:00:00 -0500` too.
    """
    if name_line.endswith(b"\tThu Jan  1 00:00:00 1970"):
        return True
    m = _TIMESTAMP.search(name_line)
    if not m or (m.group(2) and m.group(2).strip(b"0")):
        return False
    try:
        local = datetime.datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    offset = datetime.timedelta(hours=int(m.group(4)), minutes=int(m.group(5)))
    utc = local - offset if m.group(3) == b"+" else local + offset
    return utc == datetime.datetime(1970, 1, 1)


def _resolve_traditional(files: list[FilePatch], exists: Callable[[str], bool] | None) -> list[FilePatch]:
    """Pick the strip level (-p0 or -p1) for plain unified diffs.

    GNU patch's rule, simplified: prefer the level at which the files being
    changed exist in the repository; with nothing to go on, strip one
    component when every name has one to strip (the `a/` `b/` convention).
    """
    def names(fp: FilePatch) -> list[str]:
        return [n for n in (fp.old_path, fp.new_path) if n is not None]

    def level_works(level: int) -> bool:
        for fp in files:
            for n in names(fp):
                if level and "/" not in n:
                    return False
            if exists is not None and fp.old_path is not None:
                candidates = [_strip(n, level) for n in names(fp)]
                if not any(exists(c) for c in candidates):
                    return False
        return True

    level = 1 if level_works(1) else 0 if level_works(0) else -1
    if level < 0:
        changed = next((n for fp in files for n in names(fp)), "?")
        raise PatchRejected(f"cannot find the files this diff changes (first: {changed})")
    out = []
    for fp in files:
        old = _strip(fp.old_path, level) if fp.old_path is not None else None
        new = _strip(fp.new_path, level) if fp.new_path is not None else None
        if old is not None and new is not None and old != new:
            # `diff -u foo.py.orig foo.py`: the file is the one that exists.
            if exists is not None and exists(old) and not exists(new):
                new = old
            else:
                old = new
        out.append(replace(fp, old_path=old, new_path=new))
    return out


def _strip(name: str, level: int) -> str:
    return name.split("/", level)[-1] if level else name
