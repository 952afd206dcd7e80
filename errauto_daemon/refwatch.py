"""Refs as an intake: an update of a ref matching `submit_refs` is a submission.

The submission is the series of commits from the target to the new tip,
one format-patch style mail per commit (`From <commit id>` first, so the
merge can land those exact commits when it is a fast-forward: see
merge.pushed_tip). A merge commit in the range makes it the merge-base diff
as one mail instead. A ref named
`refs/for/<branch>` (Gerrit's convention) targets `<branch>` when that
branch exists; any other matching ref targets the configured target.

One implementation for both callers: the daemon's ref watch (`scan`) and the
server's post-receive hook (`submit_update`). It uses the git command line
only, no pygit2, because the hook runs on the pusher's clock.

After recording, the pushed tip is kept as `refs/errauto/submissions/<id>`
and a `refs/for/...` ref is deleted, so the next push to it needs no
`--force`. `refs_seen` in the store remembers the last tip submitted per
ref, so a restart does not submit the same update again, and a ref that
moves again is submitted again.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from pathlib import Path

from errauto_daemon import config as config_mod
from errauto_daemon import git, intake, patchfile
from errauto_daemon.config import Config
from errauto_daemon.errors import FatalError
from errauto_daemon.repo import normal_url
from errauto_daemon.store import Store, Submission

log = logging.getLogger("errauto.refs")


class NoSharedHistory(Exception):
    """The pushed tip has no merge-base with the target."""


def matching_refs(gitdir: Path, patterns: tuple[str, ...]) -> dict[str, str]:
    """Refs matching any pattern, with the commit each points to."""
    listing = git.output(("for-each-ref", "--format=%(refname)%00%(objecttype)%00%(objectname)%00%(*objectname)"),
                         gitdir)
    out = {}
    for line in listing.splitlines():
        name, kind, oid, peeled = line.split("\0")
        if any(fnmatchcase(name, p) for p in patterns) and kind in ("commit", "tag"):
            out[name] = oid if kind == "commit" else peeled
    return {k: v for k, v in out.items() if v}


def submit_update(store: Store, gitdir: Path, root: str, config: Config, ref: str, tip: str, *,
                  source: str, note: str | None = None,
                  workdir: Path | None = None) -> tuple[Submission, bool] | None:
    """Record one ref update as a submission (and in refs_seen), then retire the ref.

    Returns the submission and whether it is new, or None when the tip
    changes nothing against its target. Raises NoSharedHistory (the ref is
    then left as it is).
    """
    branch = ref[len("refs/for/"):].split("%", 1)[0] if ref.startswith("refs/for/") else None
    specs = [tip] + ([f"refs/heads/{branch}^{{commit}}"] if branch else [])
    found = git.read_objects(gitdir, specs)
    target = branch if branch and found[specs[-1]] is not None else config.target
    if target != config.target:
        config = config_mod.load_with_git(gitdir, target, workdir=workdir)
    data = _as_mails(gitdir, target, tip, found[tip])
    if data is None:
        store.set_ref_seen(root, ref, tip, None)
        _retire(gitdir, ref, tip, None)
        return None
    result = intake.record(store, root, config, data, source=source, name=ref, note=note,
                           remote=_remote(gitdir, config, workdir))
    store.set_ref_seen(root, ref, tip, result.submission.id)
    _retire(gitdir, ref, tip, result.submission.id)
    return result.submission, result.created


def _remote(gitdir: Path, config: Config, workdir: Path | None) -> str | None:
    """`repo.remote_name` with the git command line: on the git server, `remote_url` names the
    repository the workers clone (the server's own path names it to nobody else)."""
    base = workdir or gitdir
    if config.remote_url:
        return normal_url(config.remote_url, base)
    if not config.push:
        return None
    found = git.run(("config", "--get", f"remote.{config.push}.url"), gitdir, check=False)
    url = found.stdout.decode("utf-8", "surrogateescape").strip()
    return normal_url(url, base) if found.returncode == 0 and url else None


def kept_ref(sub_id: int) -> str:
    """Where the commits pushed for a submission stay reachable (gc keeps them)."""
    return f"refs/errauto/submissions/{sub_id}"


def _retire(gitdir: Path, ref: str, tip: str, sub_id: int | None) -> None:
    """Keep the pushed commits under errauto's namespace; remove a `refs/for/` ref.

    The kept ref is only created, never moved: the submission's stored mails
    name the commits of its first push. Removing the submit ref (only if it
    still points at `tip`) is what lets the next push to it go without
    `--force`, as with Gerrit; other submit refs (a user's branch) stay.
    """
    if sub_id is not None:
        git.run(("update-ref", "-m", "errauto: submitted", kept_ref(sub_id), tip, ""), gitdir, check=False)
    if ref.startswith("refs/for/"):
        git.run(("update-ref", "-d", ref, tip), gitdir, check=False)


def replacements_to_tell(store: Store, gitdir: Path, root: str, tips: Sequence[str]) -> list[str]:
    """What to tell the pusher of `tips` about their earlier commits errauto
    merged as a rewrite (`<pushed> was merged as <new>`); each told once.

    The pusher is known by the author (name and email) of the tips pushed
    now, matched with the author of the earlier submission.
    """
    found = store.unannounced_replacements(root)
    if not found or not tips:
        return []
    listing = git.output(("log", "--no-walk", "--format=%an <%ae>", *tips), gitdir)
    pushers = {line for line in listing.splitlines() if line}
    told: dict[int, list[str]] = {}
    for r in found:
        if r.author in pushers:
            told.setdefault(r.submission_id, []).append(f"{r.pushed} was merged as {r.merged}")
    for sub_id, lines in told.items():
        store.mark_announced(sub_id, "told the pusher: " + "; ".join(lines))
    out = [line for lines in told.values() for line in lines]
    if out:
        out.append("`git pull --rebase` drops those commits: the same changes are upstream")
    return out


def scan(store: Store, root: str) -> list[Submission]:
    """Submit every matching ref whose tip was not submitted before (the daemon's watch)."""
    try:
        gitdir = Path(git.output(("rev-parse", "--absolute-git-dir"), root))
        bare = git.output(("rev-parse", "--is-bare-repository"), root) == "true"
    except git.GitError as exc:
        raise FatalError(str(exc)) from None  # a watched repository that is one no more
    workdir = None if bare else Path(root)
    config = config_mod.load_with_git(gitdir, workdir=workdir)
    out = []
    for ref, tip in sorted(matching_refs(gitdir, config.submit_refs).items()):
        if store.ref_seen(root, ref) == tip:
            continue
        try:
            done = submit_update(store, gitdir, root, config, ref, tip, source="ref", workdir=workdir)
        except NoSharedHistory as exc:
            store.set_ref_seen(root, ref, tip, None)
            log.info("%s: %s", ref, exc)
            continue
        if done is None:
            log.info("%s at %s changes nothing against the target", ref, tip[:12])
            continue
        log.info("%s at %s: submission %d (%s)", ref, tip[:12], done[0].id, done[0].state)
        out.append(done[0])
    return out


def _as_mails(gitdir: Path, target: str, tip: str, commit: bytes | None) -> bytes | None:
    """The commits from `target` to `tip` as a format-patch mailbox, one mail each.

    Commits whose change is already on the target (same patch id, as `git
    rebase` decides) are left out: a push stacked on a commit errauto merged
    as a rewrite carries only what is new. Commits that change nothing are
    left out too. With a merge commit in the range there is no series to
    speak of: the merge-base diff to the tip becomes one mail, as a squash.
    """
    if commit is None:
        raise NoSharedHistory(f"{tip[:12]} is not a commit in the repository")
    base = git.run(("merge-base", f"refs/heads/{target}", tip), gitdir, check=False)
    if base.returncode != 0:
        raise NoSharedHistory(f"{tip[:12]} shares no history with {target}")
    commits = _commits_with_diffs(gitdir, f"refs/heads/{target}...{tip}")
    if not commits:
        return None
    if any(len(parents) != 1 for _sha, parents, _diff in commits):
        squashed = git.run(("diff", *_DIFF_OPTIONS, base.stdout.decode().strip(), tip), gitdir).stdout
        return _mail(tip, commit, squashed) if squashed.strip() else None
    objects = git.read_objects(gitdir, [sha for sha, _parents, _diff in commits])
    mails = [_mail(sha, raw, diff) for sha, _parents, diff in commits
             if diff.strip() and (raw := objects[sha]) is not None]
    return b"\n".join(mails) if mails else None


# A patch any git applies, whatever the repository's diff configuration says.
_DIFF_OPTIONS = ("--binary", "--full-index", "--no-color", "--no-ext-diff", "--no-textconv",
                 "--src-prefix=a/", "--dst-prefix=b/", "--submodule=short")


def _commits_with_diffs(gitdir: Path, symmetric: str) -> list[tuple[str, list[str], bytes]]:
    """Each commit of the right side of `symmetric` whose change is not on the left
    side, oldest first, with its parents and its diff against its parent.

    One `git log` for all of them. Its records are split at a NUL, which no
    text diff contains (a patch with one is rejected anyway).
    """
    data = git.run(("log", "-p", *_DIFF_OPTIONS, "--no-show-signature", "--reverse", "--topo-order",
                    "--cherry-pick", "--right-only", "--format=%x00%H %P", symmetric), gitdir).stdout
    out = []
    for record in data.split(b"\0")[1:]:
        header, _, diff = record.partition(b"\n")
        sha, *parents = header.decode().split()
        out.append((sha, parents, diff.removeprefix(b"\n")))
    return out


def _mail(sha: str, commit: bytes, diff: bytes) -> bytes:
    """One commit's mail, titled and authored from the commit object."""
    header, _, message = commit.decode("utf-8", "surrogateescape").partition("\n\n")
    author = next(line for line in header.splitlines() if line.startswith("author "))
    # "author Name <mail> 1700000000 +0100"
    who, _, stamp = author[len("author "):].rpartition("> ")
    name, _, mail = who.partition(" <")
    seconds, offset = stamp.split()
    sign = -1 if offset.startswith("-") else 1
    zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    date = datetime.fromtimestamp(int(seconds), zone).strftime("%a, %d %b %Y %H:%M:%S %z")
    return patchfile.as_mail(sha, name, mail, date, message.strip("\n"), diff)
