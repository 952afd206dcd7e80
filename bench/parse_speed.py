"""Parse + apply time against patch size, up to the 5 MB patch limit, beside `git apply --check`.

For each shape and size, builds a repository the patch was made for and the
patch itself, then times, in this process and interleaved run by run:

  errauto   patchfile.parse + patchapply.apply_patch in memory on the tip's
            tree (what the validator does before any worktree), under the
            default time budget (max_parse_seconds)
  git       `git apply --check` of the same file in the same repository

Shapes:

  header    a `diff --git` line of spaces (the names come from ---/+++)
  hunks     one file, a hunk every 7 lines (the file grows with the patch)
  files     1,000 files (max_files), the hunks spread over them

    python bench/parse_speed.py [--sizes 0.5 1 2 4.9] [--shapes header hunks files] [--runs 3]

Sizes are in MB. Nothing is asserted; docs/performance.md records results.
The per-MB column shows whether time grows linearly: it stays flat.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(("git", *args), cwd=cwd, capture_output=True, env=env)


def make_repo(root: Path, files: dict[str, bytes]) -> None:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    git(root, "add", "-A")
    git(root, "-c", "user.name=bench", "-c", "user.email=bench@example.org", "commit", "-q", "-m", "base")


def header_shape(size: int) -> tuple[dict[str, bytes], bytes]:
    tail = b"\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    return {"x": b"a\n"}, b"diff --git " + b" " * (size - len(tail) - 11) + tail


def _hunks(name: str, first: int, count: int) -> tuple[bytes, bytes]:
    """A file and `count` three-line hunks changing every 7th line of it."""
    lines = [b"%s line %d\n" % (name.encode(), i) for i in range(first, first + count * 7 + 3)]
    out = [b"diff --git a/%s b/%s\n--- a/%s\n+++ b/%s\n" % ((name.encode(),) * 4)]
    for k in range(count):
        i = k * 7 + 1  # 0-based index of the changed line
        out.append(b"@@ -%d,3 +%d,3 @@\n %s-%s+%s %s" % (
            i, i, lines[i - 1], lines[i], lines[i].upper(), lines[i + 1]))
    return b"".join(lines), b"".join(out)


def _scaled(build: Callable[[int], tuple[dict[str, bytes], bytes]], size: int,
            count: int) -> tuple[dict[str, bytes], bytes]:
    """`build(n)` with the `n` that makes a patch of about `size` bytes (not over), from a first guess."""
    files, patch = build(count)
    while True:
        count = max(1, int(count * size / len(patch) * 0.99))
        files, patch = build(count)
        if len(patch) <= size:
            break
    while len((bigger := build(count + 1))[1]) <= size:  # scaling rounds down: fill up to `size`
        count, (files, patch) = count + 1, bigger
    return files, patch


def hunks_shape(size: int) -> tuple[dict[str, bytes], bytes]:
    def build(count: int) -> tuple[dict[str, bytes], bytes]:
        content, patch = _hunks("f.txt", 0, count)
        return {"f.txt": content}, patch
    return _scaled(build, size, 100)


def files_shape(size: int) -> tuple[dict[str, bytes], bytes]:
    def build(count: int) -> tuple[dict[str, bytes], bytes]:
        files, patches = {}, []
        for n in range(1000):
            name = f"d{n % 20}/f{n}.txt"
            files[name], patch = _hunks(name, 0, count)
            patches.append(patch)
        return files, b"".join(patches)
    return _scaled(build, size, 1)


SHAPES: dict[str, Callable[[int], tuple[dict[str, bytes], bytes]]] = {
    "header": header_shape, "hunks": hunks_shape, "files": files_shape}


def time_errauto(repo_dir: Path, data: bytes) -> tuple[float, str]:
    import pygit2

    from errauto_daemon.errors import PatchRejected
    from errauto_daemon.patchapply import apply_patch
    from errauto_daemon.patchfile import Deadline, Limits, parse

    odb = pygit2.Repository(str(repo_dir))
    tree = odb.head.peel(pygit2.Commit).tree
    start = time.perf_counter()
    try:
        deadline = Deadline(Limits().max_parse_seconds)
        patch = parse(data, "bench.patch", deadline=deadline, exists=lambda p: p in tree)
        apply_patch(odb, tree, patch, deadline=deadline)
        outcome = "applies"
    except PatchRejected as exc:
        outcome = "rejected: " + exc.reason[:50]
    return time.perf_counter() - start, outcome


def time_git(repo_dir: Path, patch_file: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = git(repo_dir, "apply", "--check", str(patch_file))
    elapsed = time.perf_counter() - start
    last = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["applies"]
    return elapsed, "applies" if proc.returncode == 0 else "rejected: " + last[0][:50]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.5, 1, 2, 4.9])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"{'shape':7} {'size':>8} {'errauto':>10} {'per MB':>9} {'git':>10} {'ratio':>7}  outcome (errauto / git)")
    with tempfile.TemporaryDirectory(prefix="parse-speed-") as tmp:
        for shape in args.shapes:
            for mb in args.sizes:
                size = int(mb * MB)
                files, data = SHAPES[shape](size)
                repo_dir = Path(tmp) / f"{shape}-{mb}"
                make_repo(repo_dir, files)
                patch_file = Path(tmp) / f"{shape}-{mb}.patch"
                patch_file.write_bytes(data)
                ours, theirs = [], []
                for _ in range(args.runs):
                    ours.append(time_errauto(repo_dir, data))
                    theirs.append(time_git(repo_dir, patch_file))
                e = statistics.median(t for t, _ in ours)
                g = statistics.median(t for t, _ in theirs)
                print(f"{shape:7} {len(data) / MB:6.2f}MB {e * 1000:8.0f}ms {e * 1000 / (len(data) / MB):7.0f}ms "
                      f"{g * 1000:8.0f}ms {e / g:6.1f}x  {ours[0][1]} / {theirs[0][1]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
