"""`errauto demo`: a temporary project, real patches, real decisions.

Builds a small Python project with its own tests (run by a small unittest
runner that writes a JUnit report, so each test is judged against the base
commit with nothing installed but errauto), a lint script and a docstring
check, commits an errauto config, starts the real daemon on it and drops
seven patches made with real git into its inbox, each saying what it shows
(SHOWS): an auto-merge, two held for review by their scores, one scored for
a pull request (held for review, as the demo has no GitHub: no pull request
is opened), two rejected at intake, and one that hides a bug by skipping
the test that catches it: every check passes, and it is held for review
because it weakens the tests. Waits for every decision, stops the daemon,
and prints the queue as a table and where the repository and state are.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

from errauto_daemon import bwrap, output, paths
from errauto_daemon import sandbox as sandbox_mod
from errauto_daemon.commands import daemon as daemon_cmd
from errauto_daemon.errors import FatalError
from errauto_daemon.inbox import ensure_inbox
from errauto_daemon.store import DECIDED, Store

STATS = '''\
"""Small statistics helpers."""


def mean(values):
    """The arithmetic mean of a non-empty sequence."""
    return sum(values) / len(values)


def median(values):
    """The middle value of a non-empty sequence."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return ordered[middle]
'''

TESTS = '''\
import unittest

from stats import mean, median


class StatsTest(unittest.TestCase):
    def test_mean(self):
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)

    def test_median_odd(self):
        self.assertEqual(median([3, 1, 2]), 2)

    def test_median_even(self):
        self.assertEqual(median([4, 1, 3, 2]), 2.5)
'''

LINT = '''\
"""The project's lint: short lines, no trailing spaces, no tabs."""
import pathlib
import sys

problems = 0
for path in sorted(pathlib.Path(".").rglob("*.py")):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if len(line) > 79 or line != line.rstrip() or "\\t" in line:
            print(f"{path}:{number}: style")
            problems += 1
sys.exit(1 if problems else 0)
'''

DOCS = '''\
"""The project's docs check: every public function has a docstring."""
import ast
import pathlib
import sys

missing = 0
for path in sorted(pathlib.Path(".").glob("*.py")):
    if path.name.startswith("test_"):
        continue
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            if ast.get_docstring(node) is None:
                print(f"{path}:{node.lineno}: {node.name} has no docstring")
                missing += 1
sys.exit(1 if missing else 0)
'''


# The tests as first committed: the even-count case comes with its fix.
FIRST_TESTS = TESTS.replace(
    "    def test_median_even(self):\n        self.assertEqual(median([4, 1, 3, 2]), 2.5)\n", "")

RUN_TESTS = '''\
"""The project's tests: unittest, and a JUnit report of each test's result.

python tools/tests.py REPORT
"""
import os
import sys
import unittest
from xml.etree import ElementTree


def each(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from each(item)
        else:
            yield item


def main(report):
    suite = unittest.defaultTestLoader.discover(".")
    tests = [t.id() for t in each(suite)]
    result = unittest.TextTestRunner().run(suite)
    found = {}
    for tag, pairs in (("failure", result.failures),
                       ("error", result.errors),
                       ("skipped", result.skipped)):
        for test, text in pairs:
            found[test.id()] = (tag, text)
            if test.id() not in tests:
                tests.append(test.id())
    top = ElementTree.Element("testsuite", name="unittest")
    for test in tests:
        where, _, name = test.rpartition(".")
        case = ElementTree.SubElement(
            top, "testcase", classname=where, name=name)
        if test in found:
            tag, text = found[test]
            lines = text.strip().splitlines() or [""]
            part = ElementTree.SubElement(case, tag, message=lines[-1])
            part.text = text
    os.makedirs(os.path.dirname(report) or ".", exist_ok=True)
    ElementTree.ElementTree(top).write(report, encoding="utf-8")
    return 0 if result.wasSuccessful() else 1


sys.exit(main(sys.argv[1]))
'''

JUNIT = ".errauto/junit.xml"


def _config(sandbox: str) -> str:
    py = sys.executable
    return f'''\
target = "main"
sandbox = "{sandbox}"
auto_merge_threshold = 0.95
pr_threshold = 0.80

[checks.tests]
command = ["{py}", "tools/tests.py", "{JUNIT}"]
junit = "{JUNIT}"   # each test judged against its result on the base commit
weight = 0.60
gate = true

[checks.lint]
command = ["{py}", "tools/lint.py"]
weight = 0.25

[checks.docs]
command = ["{py}", "tools/docs.py"]
weight = 0.15
'''


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="errauto demo", GIT_AUTHOR_EMAIL="demo@example.com",
               GIT_COMMITTER_NAME="errauto demo", GIT_COMMITTER_EMAIL="demo@example.com")
    return subprocess.run(("git", *args), cwd=cwd, env=env, check=True,
                          capture_output=True).stdout.decode()


def _patch(repo: Path, edits: dict[str, str]) -> bytes:
    for name, text in edits.items():
        (repo / name).write_text(text)
    _git(repo, "add", "-A")
    diff = _git(repo, "diff", "--cached").encode()
    _git(repo, "reset", "-q", "--hard", "HEAD")
    return diff


def build_project(root: Path, sandbox: str = "bwrap") -> Path:
    repo = root / "project"
    (repo / "tools").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "stats.py").write_text(STATS)
    (repo / "test_stats.py").write_text(FIRST_TESTS)
    (repo / "tools" / "tests.py").write_text(RUN_TESTS)
    (repo / "tools" / "lint.py").write_text(LINT)
    (repo / "tools" / "docs.py").write_text(DOCS)
    (repo / ".errauto.toml").write_text(_config(sandbox))
    (repo / ".gitignore").write_text(".errauto/\n")  # the reports the checks write
    (repo / "docs").symlink_to("/tmp")  # an old convenience link, pointing outside
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "A small statistics module")
    return repo


SHOWS = {
    "0001-median-of-an-even-count.patch": "passes every check → merged by itself",
    "0002-mean-of-nothing.patch": "fails lint: confidence 0.75, under the pull-request bar 0.80 → held for review",
    "0003-integer-mean.patch": "breaks the tests, a gate → held for review",
    "0004-value-range.patch": "fails only the docs check: 0.85 earns a pull request, "
                              "but the demo has no GitHub → held for review",
    "0005-stale-docstring.patch": "no longer applies to main → rejected",
    "0006-helper-script.patch": "writes through a symlink out of the repository → rejected, nothing written",
    "0007-rounded-mean.patch": "puts a bug in mean and skips the test that catches it: every check passes, "
                               "but it weakens the tests → held for review",
}


def sample_patches(repo: Path) -> list[tuple[str, bytes]]:
    """Seven patches, all made against the project's first commit."""
    even = ("    if len(ordered) % 2:\n        return ordered[middle]\n"
            "    return (ordered[middle - 1] + ordered[middle]) / 2\n")
    good = _patch(repo, {
        "stats.py": STATS.replace("    if len(ordered) % 2:\n        return ordered[middle]\n"
                                  "    return ordered[middle]\n", even),
        "test_stats.py": TESTS,
    })
    guard_empty = (
        "    if not values:\n"
        "        raise ValueError(\"mean() needs at least one value, got an empty sequence\")\n"
        "    return sum(values) / len(values)")
    lint_fail = _patch(repo, {"stats.py": STATS.replace("    return sum(values) / len(values)", guard_empty)})
    breaks = _patch(repo, {"stats.py": STATS.replace("sum(values) / len(values)",
                                                     "sum(values) // len(values)")})
    undocumented = _patch(repo, {"spread.py": (
        '"""Spread of a sample."""\n\n\ndef value_range(values):\n'
        "    return max(values) - min(values)\n")})
    stale = (b"diff --git a/stats.py b/stats.py\n--- a/stats.py\n+++ b/stats.py\n"
             b"@@ -1,3 +1,3 @@\n-\"\"\"Statistics helpers, version 0.\"\"\"\n"
             b"+\"\"\"Statistics helpers.\"\"\"\n \n \n")
    escape = (b"diff --git a/docs/errauto-demo.sh b/docs/errauto-demo.sh\nnew file mode 100755\n"
              b"--- /dev/null\n+++ b/docs/errauto-demo.sh\n@@ -0,0 +1,2 @@\n"
              b"+#!/bin/sh\n+echo written outside the repository\n")
    hidden = _patch(repo, {
        "stats.py": STATS.replace("return sum(values) / len(values)", "return round(sum(values) / len(values))"),
        "test_stats.py": FIRST_TESTS.replace("    def test_mean(self):",
                                             '    @unittest.skip("flaky")\n    def test_mean(self):'),
    })
    return [
        ("0001-median-of-an-even-count.patch", good),
        ("0002-mean-of-nothing.patch", lint_fail),
        ("0003-integer-mean.patch", breaks),
        ("0004-value-range.patch", undocumented),
        ("0005-stale-docstring.patch", stale),
        ("0006-helper-script.patch", escape),
        ("0007-rounded-mean.patch", hidden),
    ]


def _sandbox() -> str:
    """The demo's checks run in errauto's sandbox where the machine has one. Where it
    has none, the demo's own patches (errauto's, not a stranger's) run unsandboxed,
    and it says so: a project of the user's needs bubblewrap or its own `sandbox = "off"`."""
    why = bwrap.unavailable()
    if why is None:
        print(f"sandbox: {sandbox_mod.describe('bwrap')}")
        return "bwrap"
    print(f"sandbox: none here: {why}")
    print('  the demo\'s own patches run unsandboxed (its .errauto.toml says sandbox = "off"), and every '
          "explanation says so")
    return "off"


def demo(*, directory: str | None = None, timeout: float = 180.0) -> int:
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="errauto-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    # The demo's state is its own: the user's queue is not touched.
    with paths.home(root / "state"):
        return _show(root, timeout)


def _show(root: Path, timeout: float) -> int:
    repo = build_project(root, _sandbox())
    store = Store()
    store.add_repo(str(repo))
    inbox = ensure_inbox(str(repo))
    assert inbox is not None
    patches = sample_patches(repo)
    print(f"demo project: {repo}")
    daemon_cmd.start(workers=2, grace=10.0, verbose=False)
    try:
        elapsed = _drop_and_wait(store, inbox, patches, timeout, root)
    finally:
        daemon_cmd.stop()
    subs = sorted(store.submissions(limit=100), key=lambda s: s.id)
    rows = [[str(s.id), s.state, s.route or "-",
             f"{s.confidence:.2f}" if s.confidence is not None else "-",
             output.shorten(s.title, 28), output.shorten(s.reason or "", 70)] for s in subs]
    print()
    print(output.table(["ID", "STATE", "ROUTE", "CONF", "TITLE", "REASON"], rows))
    print()
    print(f"{len(subs)} patches decided by the daemon in {elapsed:.1f}s")
    print("not shown: an opened pull request (the demo has no GitHub; see docs/github.md)")
    print(f"repository: {repo}   (git log --oneline shows what was merged)")
    print(f"inbox:      {inbox}   (each file moved to the folder of its fate)")
    # The demo's state is its own SQLite file, whatever server this user's errauto is set to use.
    own = f"{paths.DATABASE_URL_ENV}=sqlite " if os.environ.get(paths.DATABASE_URL_ENV) else ""
    print(f"state:      {root / 'state'}   ({own}ERRAUTO_HOME={root / 'state'} errauto queue show 7)")
    return 0


def _drop_and_wait(store: Store, inbox: Path, patches: list[tuple[str, bytes]], timeout: float,
                   root: Path) -> float:
    """Drop each patch into the inbox; the seconds until the daemon decided them all."""
    started = time.monotonic()
    for name, data in patches:
        # Write elsewhere, then rename in: the way to drop a file safely.
        staging = inbox / f".{name}.part"
        staging.write_bytes(data)
        staging.rename(inbox / name)
        print(f"  dropped {name}: {SHOWS[name]}")
    while time.monotonic() - started < timeout:
        subs = store.submissions(limit=100)
        if len(subs) >= len(patches) and all(s.state in DECIDED for s in subs):
            return time.monotonic() - started
        time.sleep(0.1)
    raise FatalError(f"the daemon did not decide every patch within {timeout:g}s; "
                     f"see {root / 'state' / 'log' / 'daemon.log'}")


# -- the command line (main.py dispatches each parsed command here) --------------

def cli(args: Namespace) -> int:
    """`errauto demo`."""
    return demo(directory=args.dir)
