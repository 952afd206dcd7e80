"""Safety rules for untrusted patches, checked before anything is written.

Two passes. `check_names` looks only at the parsed patch: every file name
must be a plain relative path that cannot reach outside the worktree or into
`.git` under any spelling a filesystem might fold into `.git`. `check_tree`
runs after the patch was applied in memory (still nothing written) and looks
at what the result would contain: nothing written beyond a symlink, no
symlink pointing outside the tree or into `.git`. Changes to submodules and
`.gitmodules` are allowed but capped at human review.

git itself has most of these rules (verify_path, is_ntfs_dotgit,
is_hfs_dotgit); libgit2's apply is laxer, and errauto applies patches with
its own code, so the rules live here, in one place.
"""
from __future__ import annotations

import posixpath
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import pygit2

from errauto_daemon.errors import PatchRejected
from errauto_daemon.patchapply import MODE_TREE, Overlay
from errauto_daemon.patchfile import MODE_GITLINK, MODE_LINK, SUFFIXES, FilePatch, Patch, PatchCommit, ancestors

# Linux refuses a name longer than NAME_MAX bytes, and a path of PATH_MAX
# (4096) bytes or more; a file is written at the worktree's location plus its
# path in the repository, so the path may use PATH_MAX less what the
# worktree's own location may take.
MAX_NAME = 255
MAX_PATH = 4096 - 256

# Code points HFS+ ignores when comparing names: ".g\u200cit" is ".git" there.
_HFS_IGNORABLE = frozenset(
    [0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
     0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0xFEFF]
)
# Files git refuses to follow as symlinks (they are read by git itself), with
# the NTFS 8.3 short names git also recognises for them (is_ntfs_dot_generic):
# the first six characters or a hash-based fallback, then "~N".
_NO_SYMLINK = {
    ".gitmodules": ("gitmod", "gi7eba"),
    ".gitattributes": ("gitatt", "gi7d29"),
    ".gitignore": ("gitign", "gi250a"),
    ".mailmap": ("mailma", "maba30"),
}
# How many symlinks resolving one target may pass through (Linux's limit).
_MAX_LINK_HOPS = 40


@dataclass(frozen=True)
class GuardResult:
    review_only: tuple[str, ...] = ()  # reasons the patch may at most be reviewed


def _fold(component: str) -> str:
    """The name as the most forgiving filesystem would compare it.

    git's own rules (is_hfs_dotgit, is_ntfs_dotgit) fold ASCII case, skip the
    code points HFS+ ignores (U+200C and friends), cut an NTFS stream (".git::$INDEX_ALLOCATION") and drop the
    trailing dots and spaces NTFS drops. errauto folds further, as a
    normalising, case-insensitive filesystem (ZFS with formKC, a casefolding
    ext4, SMB servers) might: compatibility forms become their plain
    letters (fullwidth "．ｇｉｔ"), combining marks go (".gi\u0307t", and
    "İ", which decomposes into I and a dot above), and case is folded for all
    of Unicode. Only names that look like ".git" fold to it, so nobody loses
    a real file name to this.
    """
    name = component
    if not name.isascii():
        name = "".join(c for c in unicodedata.normalize("NFKD", name)
                       if ord(c) not in _HFS_IGNORABLE and not unicodedata.combining(c))
    name = name.casefold().split(":", 1)[0]  # NTFS alternate data streams
    return name.rstrip(". ")  # NTFS drops trailing dots and spaces


def is_dotgit(component: str) -> bool:
    name = _fold(component)
    return name == ".git" or re.fullmatch(r"git~\d+", name) is not None


def _is_special(component: str, dotname: str) -> bool:
    name = _fold(component)
    short = "|".join(_NO_SYMLINK[dotname])
    return name == dotname or re.fullmatch(rf"(?:{short})~\d+", name) is not None


def is_gitmodules(component: str) -> bool:
    return _is_special(component, ".gitmodules")


def path_problem(path: str) -> str | None:
    """Why `path` may not appear in a patch, or None when it is fine."""
    shown = repr(path) if any(ord(c) < 32 or ord(c) == 127 for c in path) else path
    if not path:
        return "an empty file name"
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
        return f"a file name longer than {MAX_PATH} bytes"
    if path.startswith("/"):
        return f"an absolute path ({shown})"
    if re.match(r"^[A-Za-z]:", path):
        return f"a drive-letter path ({shown})"
    if "\\" in path:
        return f"a backslash in a file name ({shown})"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return f"control characters in a file name ({shown})"
    for component in path.split("/"):
        if component == "":
            return f"an empty path component ({shown})"
        if component in (".", ".."):
            return f"'{component}' in a path ({shown})"
        if len(component.encode("utf-8", "surrogateescape")) > MAX_NAME:
            return f"a path component longer than {MAX_NAME} bytes ({_shortened(shown)})"
        if is_dotgit(component):
            return f"a path inside .git ({shown})"
    return None


def _shortened(path: str) -> str:
    return path if len(path) <= 80 else f"{path[:40]}...{path[-20:]}"


def check_names(patch: Patch) -> None:
    for fp in patch.files():
        names = list(fp.paths())
        names += [_strip_one(n) for n in fp.raw_names if n != "/dev/null"]
        for name in names:
            problem = path_problem(name)
            if problem:
                raise PatchRejected(f"unsafe patch: {problem}")


def check_inbox(patch: Patch, inbox: str) -> None:
    """Refuse a patch that writes into the inbox folder.

    What lies there is a submission or a submission's fate, never content:
    a file merged into it would be taken as a new submission, and the
    checkout left dirty by the moves that follow. A patch may not add,
    change, delete or rename anything in it.
    """
    folder = "/".join(c for c in inbox.split("/") if c not in ("", "."))
    for fp in patch.files():
        for path in fp.paths():
            if folder and (path == folder or path.startswith(folder + "/")):
                raise PatchRejected(f"touches the inbox folder {folder}/ ({path}): files there are "
                                    "submissions, never merged")
            if not folder and "/" not in path and path.lower().endswith(SUFFIXES):
                raise PatchRejected(f"touches a patch file in the inbox folder, the repository's root ({path})")


def _strip_one(name: str) -> str:
    # Raw names still carry their a/ b/ prefix; "a//etc/passwd" must read as
    # the absolute path libgit2 would see, and a name without a prefix is
    # checked whole.
    return name.split("/", 1)[1] if "/" in name and not name.startswith("/") else name


def check_base(patch: Patch, tree: pygit2.Tree) -> None:
    """Refuse paths beyond a symlink the target already has, before applying.

    `check_tree` catches these too, but only after the patch was applied in
    memory, where the applier would already have refused with a less
    telling reason ("does not exist", "is a symlink").
    """
    for path in dict.fromkeys(p for fp in patch.files() for p in fp.paths()):
        for ancestor in ancestors(path):
            try:
                mode = tree[ancestor].filemode
            except KeyError:
                break
            if mode == MODE_LINK:
                raise PatchRejected(f"unsafe patch: {path} is beyond a symlink ({ancestor}) in the target")
            if mode != MODE_TREE:
                break


def check_tree(before: Overlay, after: Overlay, commit: PatchCommit) -> GuardResult:
    """Rules that need the tree: symlinks, submodules. Raises PatchRejected."""
    review: list[str] = []
    for fp in commit.files:
        _check_not_beyond_links(before, after, fp)
        review += _review_reasons(before, fp)
    _check_link_targets(after)
    # symlink_problem reads each target alone, resolving ".." lexically; the
    # filesystem follows the links a target passes through ("up -> ." makes
    # "up/../x" leave the repository). When the patch adds, changes or removes
    # a symlink, resolve every symlink of the result as the filesystem would.
    if any(MODE_LINK in (before.mode(p), after.mode(p)) for p in after.changes):
        _check_resolved_links(before, after)
    _check_not_beyond_new_links(after)
    return GuardResult(tuple(dict.fromkeys(review)))


def _check_not_beyond_links(before: Overlay, after: Overlay, fp: FilePatch) -> None:
    """No path of the file patch lies beyond a symlink of the target, or one the patch creates."""
    for path in fp.paths():
        # Deleting what was there is fine when the patch replaces a directory with a link.
        deleted = path in after.changes and after.changes[path] is None
        for ancestor in ancestors(path):
            if before.mode(ancestor) == MODE_LINK:
                raise PatchRejected(
                    f"unsafe patch: {path} is beyond a symlink ({ancestor}) in the target")
            if after.mode(ancestor) == MODE_LINK and not deleted:
                raise PatchRejected(
                    f"unsafe patch: {path} is beyond the symlink {ancestor} the patch creates")


def _review_reasons(before: Overlay, fp: FilePatch) -> list[str]:
    """Why a person must look at this file patch: it changes a submodule, or .gitmodules."""
    reasons = []
    if MODE_GITLINK in (fp.old_mode, fp.new_mode) or any(
            before.mode(p) == MODE_GITLINK for p in fp.paths() if p):
        reasons.append(f"changes the submodule {fp.path}")
    if any(is_gitmodules(p.rsplit("/", 1)[-1]) for p in fp.paths()):
        reasons.append(f"changes {fp.path}")
    return reasons


def _check_link_targets(after: Overlay) -> None:
    """Each symlink the patch writes points somewhere safe, and is not a file git treats specially."""
    for path, val in after.changes.items():
        if val is None or val[0] != MODE_LINK:
            continue
        problem = symlink_problem(path, val[1])
        if problem:
            raise PatchRejected(f"unsafe patch: symlink {path} {problem}")
        if any(_is_special(path.rsplit("/", 1)[-1], name) for name in _NO_SYMLINK):
            raise PatchRejected(f"unsafe patch: {path} may not be a symlink")


def _check_resolved_links(before: Overlay, after: Overlay) -> None:
    for path in dict.fromkeys([*after.changes, *_tree_links(after.repo, after.tree)]):
        if after.mode(path) != MODE_LINK:
            continue
        problem = _resolved_problem(after, path)
        # A committed link that already left the repository is the user's own.
        new = path in after.changes or before.mode(path) != MODE_LINK
        if problem and (new or not _resolved_problem(before, path)):
            raise PatchRejected(f"unsafe patch: symlink {path} {problem}")


def _check_not_beyond_new_links(after: Overlay) -> None:
    """No path lies under a symlink that some other change of this commit made."""
    for path, val in after.changes.items():
        if val is not None and val[0] != MODE_TREE:
            for ancestor in ancestors(path):
                if after.mode(ancestor) == MODE_LINK:
                    raise PatchRejected(f"unsafe patch: {path} is beyond the symlink {ancestor}")


def symlink_problem(path: str, target_bytes: bytes) -> str | None:
    if not target_bytes:
        return "has an empty target"
    if b"\0" in target_bytes or b"\n" in target_bytes:
        return "has a target with control characters"
    if len(target_bytes) > MAX_PATH:
        return f"has a target longer than {MAX_PATH} bytes"
    target = target_bytes.decode("utf-8", "surrogateescape")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        return f"points to an absolute path ({target})"
    if "\\" in target:
        return f"has a backslash in its target ({target})"
    parts = [p for p in target.split("/") if p not in ("", ".")]
    if any(is_dotgit(p) for p in parts):
        return f"points into .git ({target})"
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if joined == ".." or joined.startswith("../"):
        return f"points outside the repository ({target})"
    return None


def _resolved_problem(tree: Overlay, path: str) -> str | None:
    """Why the symlink at `path`, followed through `tree` as the filesystem
    would, leads out of it; or None."""
    own = tree.read(path).decode("utf-8", "surrogateescape")
    resolved = path.split("/")[:-1]
    pending = own.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return f"points outside the repository once the symlinks in its way are followed ({own})"
            resolved.pop()
            continue
        resolved.append(part)
        here = "/".join(resolved)
        if tree.mode(here) != MODE_LINK:
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            return None  # a loop: the filesystem gives up (ELOOP) and follows nothing
        target = tree.read(here).decode("utf-8", "surrogateescape")
        if target.startswith("/"):
            return f"points outside the repository through the symlink {here} ({own})"
        resolved.pop()
        pending = target.split("/") + pending
    return None


def _tree_links(repo: pygit2.Repository, tree: pygit2.Tree | None, prefix: str = "") -> Iterable[str]:
    for entry in tree or ():
        if entry.filemode == MODE_TREE:
            yield from _tree_links(repo, repo[entry.id], f"{prefix}{entry.name}/")  # type: ignore[arg-type]
        elif entry.filemode == MODE_LINK:
            yield f"{prefix}{entry.name}"


# --------------------------------------------------------------------------
# protected paths

@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """gitignore-style glob: `*` stays within a component, `**` spans any.

    A pattern that names a directory also covers everything below it.
    Matching ignores case, so `.GitHub/` cannot slip past `.github/**` on a
    case-insensitive filesystem.
    """
    p = pattern.strip().lstrip("/")
    out = []
    i = 0
    while i < len(p):
        if p.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif p.startswith("**", i):
            out.append(".*")
            i += 2
        elif p[i] == "*":
            out.append("[^/]*")
            i += 1
        elif p[i] == "?":
            out.append("[^/]")
            i += 1
        elif p[i] == "[":
            end = p.find("]", i + 1)
            if end == -1:
                out.append(re.escape(p[i]))
                i += 1
            else:
                body = p[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(p[i]))
            i += 1
    return re.compile("".join(out).rstrip("/") + "(?:/.*)?", re.IGNORECASE)


# pyproject.toml's [project] keys that describe the project without changing
# what is built, installed or run: a release's version bump, its classifiers.
DESCRIPTIVE_KEYS = frozenset({"version", "description", "readme", "keywords", "classifiers", "authors",
                              "maintainers", "urls", "license", "license-files"})


def protected_changes(repo: pygit2.Repository, base: pygit2.Tree, result: pygit2.Tree, paths: Iterable[str],
                      patterns: Iterable[str]) -> list[str]:
    """The protected paths a patch changes, leaving out a `pyproject.toml`
    whose change touches only the project's descriptive metadata."""
    return [path for path in protected_hits(paths, patterns)
            if not (posixpath.basename(path) == "pyproject.toml"
                    and descriptive_only(_blob(repo, base, path), _blob(repo, result, path)))]


def descriptive_only(before: bytes | None, after: bytes | None) -> bool:
    """Whether two versions of a pyproject.toml differ only in `[project]`'s
    descriptive keys (DESCRIPTIVE_KEYS). Anything else, a file added or
    deleted, or a file that is not TOML, is a real change."""
    old, new = _toml_without_descriptive(before), _toml_without_descriptive(after)
    return old is not None and new is not None and old == new and before != after


def _toml_without_descriptive(data: bytes | None) -> dict[str, object] | None:
    if data is None:
        return None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    project = doc.get("project")
    if isinstance(project, dict):
        doc["project"] = {k: v for k, v in project.items() if k not in DESCRIPTIVE_KEYS}
    return doc


def _blob(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> bytes | None:
    try:
        entry = tree[path]
    except KeyError:
        return None
    blob = repo.get(entry.id)
    return blob.data if isinstance(blob, pygit2.Blob) else None


def protected_hits(paths: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The paths that match any protected pattern.

    A path is also matched as a filesystem folding names would see it
    (".git\\u200chub", ".github." are ".github" on HFS+ / NTFS), and as the
    directory it could become: a symlink `.github -> elsewhere` fills
    `.github/**` with whatever `elsewhere` holds.
    """
    compiled = [_glob_regex(p) for p in patterns]

    def spellings(path: str) -> set[str]:
        folded = "/".join(_fold(c) for c in path.split("/"))
        return {path, folded, path + "/", folded + "/"}

    return [path for path in paths
            if any(rx.fullmatch(s) for rx in compiled for s in spellings(path))]
