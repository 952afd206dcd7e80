"""What per-test evidence costs beyond the checks themselves, and how often the base runs.

1. Per patch, on a large project, in this process (median of --runs):
     junit     the patch's JUnit report of --tests tests parsed and compared with the
               base's outcomes (as the cache keeps them: the base report is parsed once
               per base tree, not per patch)
     lines     a coverage.py JSON report of --files files read, and the changed lines measured
     tamper    the changed test files compared base against patch through the AST
   printed in milliseconds and as a share of the 50 ms budget per patch.

2. --patches patches validated on one base tree by the real Validator (a
   check that writes a JUnit report), counting how many times the check ran
   on the base: the base run is paid once per base tree, whatever the
   number of patches.

    python bench/evidence_cost.py [--tests 5000] [--files 500] [--patches 100] [--runs 7]

Nothing is asserted; docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_MS = 50.0


def junit(tests: int, failing: set[int]) -> bytes:
    cases = []
    for i in range(tests):
        module, name = f"tests.test_mod{i // 250}", f"test_{i}"
        if i in failing:
            cases.append(f'<testcase classname="{module}" name="{name}" time="0.01"><failure message="assert 1 == 2">'
                         f"E   assert 1 == 2\n\ntests/test_mod{i // 250}.py:{i % 250 + 3}: AssertionError"
                         "</failure></testcase>")
        else:
            cases.append(f'<testcase classname="{module}" name="{name}" time="0.01"/>')
    return (f'<testsuites><testsuite name="pytest" tests="{tests}">' + "".join(cases)
            + "</testsuite></testsuites>").encode()


def coverage_json(files: int) -> bytes:
    table = {f"pkg/mod{i}.py": {"executed_lines": list(range(1, 180)), "missing_lines": list(range(180, 200)),
                                "excluded_lines": []} for i in range(files)}
    return json.dumps({"meta": {"version": "7"}, "files": table}).encode()


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_module(n: int, skip: bool = False) -> str:
    body = []
    for k in range(25):
        deco = "@pytest.mark.skip(reason='later')\n" if skip and k == 3 else ""
        body.append(f"{deco}def test_{n}_{k}():\n    assert f({k}) == {k}\n    assert g({k}) > -1\n")
    return "import pytest\n\nfrom pkg import f, g\n\n\n" + "\n\n".join(body)


def project(root: Path, files: int, test_files: int) -> tuple[str, str]:
    """A repository of `files` modules and 20 test modules; a patch changing 50 modules and `test_files`
    test files (a skip added to one test of each)."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "b@example.com")
    git(root, "config", "user.name", "B")
    for i in range(files):
        (root / "pkg").mkdir(exist_ok=True)
        (root / "pkg" / f"mod{i}.py").write_text("".join(f"def f{k}(x):\n    return x + {k}\n" for k in range(100)))
    (root / "tests").mkdir()
    for n in range(20):
        (root / "tests" / f"test_mod{n}.py").write_text(test_module(n))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    base = git(root, "rev-parse", "HEAD^{tree}").strip()
    for i in range(50):
        path = root / "pkg" / f"mod{i}.py"
        path.write_text(path.read_text().replace("return x + 7\n", "return x + 7 + 0\n"))
    for n in range(test_files):
        (root / "tests" / f"test_mod{n}.py").write_text(test_module(n, skip=True))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "patch")
    return base, git(root, "rev-parse", "HEAD^{tree}").strip()


def per_patch(tmp: Path, tests: int, files: int, test_files: int, runs: int) -> dict[str, float]:
    """The evidence path a validation takes (`evidence.run.Found`), timed in its two parts:
    `read`, once the check ran (the JUnit report and the coverage report read from the
    worktree, the report compared with the base's outcomes to pick tests to rerun), and
    `evidence`, once every check ran (the per-test comparison, the tamper check of the
    changed test files through the AST, and the changed lines measured)."""
    import pygit2

    from errauto_daemon.checks import CheckResult
    from errauto_daemon.config.keys import validated
    from errauto_daemon.domain import CheckStatus
    from errauto_daemon.evidence import gather
    from errauto_daemon.evidence.junit import parse_report
    from errauto_daemon.evidence.run import Found

    root = tmp / f"proj{test_files}"
    base_tree, result_tree = project(root, files, test_files)
    (root / ".errauto").mkdir()
    (root / ".errauto" / "junit.xml").write_bytes(junit(tests, {10, 30, 4000}))
    (root / ".errauto" / "coverage.json").write_bytes(coverage_json(files))
    base = gather.report_to_json(parse_report(junit(tests, {10, 20}), module_exists=lambda rel: (root / rel).is_file()))
    config = validated({"target": "main", "checks": {"tests": {
        "command": ["pytest"], "junit": ".errauto/junit.xml", "line_data": ".errauto/coverage.json",
        "reruns": 0}}}, "bench")
    check = config.checks[0]
    result = CheckResult("tests", CheckStatus.FAILED, 1, 1.0, "", "")
    repo = pygit2.Repository(str(root))
    times: dict[str, list[float]] = {"read": [], "evidence": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        found = Found()
        found.bases["tests"] = base
        found.read(root, check, result, lambda command, k: result)
        t1 = time.perf_counter()
        ev = found.evidence(repo, config, base_tree, result_tree)
        t2 = time.perf_counter()
        times["read"].append((t1 - t0) * 1000)
        times["evidence"].append((t2 - t1) * 1000)
    got = ev.checks["tests"]
    assert len(got.newly_failing) == 2 and ev.lines is not None and ev.lines.changed == 50 \
        and len(ev.weakened) == test_files and not got.not_run, (got.newly_failing, ev.weakened, ev.lines)
    return {k: statistics.median(v) for k, v in times.items()}


CHECK = textwrap.dedent("""\
    import pathlib, sys
    pathlib.Path(".errauto").mkdir(exist_ok=True)
    pathlib.Path(".errauto/junit.xml").write_text(
        '<testsuite><testcase classname="tests.test_a" name="test_one"/></testsuite>')
""")


def base_runs(tmp: Path, patches: int) -> tuple[int, int, float]:
    """Validate `patches` patches on one base; how many base runs and patch runs, and seconds per patch."""
    os.environ["ERRAUTO_HOME"] = str(tmp / "home")
    os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
    from errauto_daemon import intake, paths
    from errauto_daemon.store import Store
    from errauto_daemon.validate import Validator

    root = tmp / "small"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "b@example.com")
    git(root, "config", "user.name", "B")
    (root / "check.py").write_text(CHECK)
    (root / ".errauto.toml").write_text(
        f"target = 'main'\n[checks.tests]\ncommand = ['{sys.executable}', 'check.py']\n"
        "junit = '.errauto/junit.xml'\ngate = false\n")  # no gate check: held, so main stays put
    (root / "data.txt").write_text("".join(f"line {i}\n" for i in range(patches)))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    store = Store()
    validator = Validator(store, use_cache=False)
    started = time.perf_counter()
    for i in range(patches):
        lines = (root / "data.txt").read_text().splitlines(keepends=True)
        lines[i] = f"changed {i}\n"
        (root / "data.txt").write_text("".join(lines))
        diff = git(root, "diff")
        git(root, "checkout", "-q", "--", "data.txt")
        sub = intake.submit(store, root, diff.encode(), source="cli", name=f"p{i}.patch").submission
        decided = validator.process(sub.id)
        assert decided.state == "awaiting_review", (decided.state, decided.reason)
    took = time.perf_counter() - started
    logs = list(paths.check_logs_dir().rglob("*.log"))
    return sum(1 for p in logs if p.name.endswith("-base.log")), len(logs), took / patches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--patches", type=int, default=100)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--test-files", type=int, nargs="+", default=[3, 20],
                        help="changed test files per patch (one run each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.test_files:
            costs = per_patch(Path(tmp), args.tests, args.files, n, args.runs)
            total = sum(costs.values())
            print(f"per patch ({args.tests} tests, {args.files} files in the coverage report, {n} test files "
                  f"and 50 modules changed), median of {args.runs}:")
            for name, ms in costs.items():
                print(f"  {name:<7} {ms:7.1f} ms")
            print(f"  total   {total:7.1f} ms  = {total / BUDGET_MS:.2f} of the {BUDGET_MS:.0f} ms budget")
        base, runs, per = base_runs(Path(tmp), args.patches)
        print(f"{args.patches} patches on one base tree: the check ran {base} time(s) on the base and "
              f"{runs - base} times on patches ({per * 1000:.0f} ms per validation)")


if __name__ == "__main__":
    main()
