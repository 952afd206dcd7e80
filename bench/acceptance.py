"""Acceptance run for confidence from evidence: real release changes and bad patches.

A held-out corpus of published, pure-Python projects whose sdists ship their
tests (CORPUS; the comment above it states how the release pairs are chosen:
the first corpus's pairs, and each project's last three patch-level steps
among its 15 newest releases). For each pair of consecutive releases
N -> N+1: release N is committed to a fresh git repository with a `tests`
check that runs pytest under coverage.py (one run: JUnit report and line
data), and the real release change N -> N+1 is validated with
`errauto apply --json`. Each real change is labelled with its release step
(major, minor or patch: the first release number that differs).

Then bad patches derived from the same corpus, on the newest release used:
  bug+skip, bug+delete, bug+unassert, bug+assert-true
        a bug the project's tests catch (a fixed mutation per project, checked
        to fail tests before use), with the failing tests tampered so the
        suite passes again: a skip marker, the tests deleted, their
        assertions removed, their assertions replaced by `assert True`;
  bug-unrun
        a `return <value>` that no test runs made `return None`, validated
        with `[evidence] min_changed_lines_covered = 1.0`.

None of the bad patches may be auto-merged; at least 90% of the real release
changes should be. Prints a table, the share of real changes auto-merged
overall and per release step, and, for every real change not merged, the
gates that held it.

Needs the network (pip downloads the sdists and installs pytest, coverage and
the projects' test dependencies into a venv of its own). errauto runs with
HOME, ERRAUTO_HOME and the XDG directories inside the work directory.

    python bench/acceptance.py [--projects toolz,idna] [--pairs N] [--bad-projects toolz] [--workdir DIR] [--json FILE]

--pairs N keeps only each project's N newest pairs (0: bad patches only).
Nothing is asserted; docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Project:
    name: str
    changes: tuple[tuple[str, str], ...]  # (release, the next published release), oldest first
    tests: str  # what pytest is given
    package: str  # the code under test, relative to the sdist root
    bug: tuple[str, str, str] | None = None  # (file, text, replacement) in the newest release: a bug the tests catch
    pythonpath: str = ""
    test_deps: tuple[str, ...] = ()
    pytest_args: str = ""  # what the project's own check would leave out, with the reason beside it
    env: tuple[tuple[str, str], ...] = ()

    @property
    def newest(self) -> str:
        return self.changes[-1][1]


def _chain(*versions: str) -> tuple[tuple[str, str], ...]:
    return tuple(zip(versions, versions[1:]))


# Which release pairs: the first corpus's (each project's three newest
# consecutive pairs) and, for every project, the last three patch-level steps
# (x.y.z -> x.y.z+1 between consecutive published releases) among its 15
# newest releases whose sdists both ship tests that run here (Python 3.11,
# current pytest). A test that fails on both sides of a pair in this
# environment is deselected, with the reason beside it.
CORPUS = {
    p.name: p for p in (
        # 11.2.0's sdist ships no tests, so 11.2.0 -> 11.2.1 is out.
        Project("more-itertools", _chain("11.0.0", "11.0.1", "11.0.2", "11.1.0"), "tests", "more_itertools",
                ("more_itertools/more.py", "return sum(compress(repeat(1), zip(iterable)))",
                 "return sum(compress(repeat(1), zip(iterable))) or 1")),
        # test_has_version reads the installed distribution's metadata; the checkout is not installed.
        # test_tlz fails on 0.11.0 to 0.11.2 on this Python (an AttributeError in tlz's import hook),
        # test_random_sample and test_introspect_builtin_modules on 0.11.0 and 0.11.1 (random.sample
        # no longer takes a set; builtins' signatures differ from the table the test expects).
        Project("toolz", (*_chain("0.11.0", "0.11.1", "0.11.2"), *_chain("0.12.0", "0.12.1", "1.0.0", "1.1.0", "1.2.0")),
                "toolz/tests", "toolz",
                ("toolz/itertoolz.py", "d[item] += 1", "d[item] = 1"),
                pytest_args="--deselect toolz/tests/test_package.py::test_has_version"
                            " --deselect toolz/tests/test_tlz.py::test_tlz"
                            " --deselect toolz/tests/test_itertoolz.py::test_random_sample"
                            " --deselect toolz/tests/test_inspect_args.py::test_introspect_builtin_modules"),
        Project("cachetools", _chain("7.3.2", "7.3.3", "8.0.0", "8.0.1", "8.0.2"), "tests", "src/cachetools",
                ("src/cachetools/__init__.py", "key = next(iter(self.__order))",
                 "key = next(reversed(self.__order))"), pythonpath="src"),
        # Two-part versions: no patch-level steps.
        Project("idna", _chain("3.17", "3.18", "3.19", "3.20"), "tests", "idna",
                ("idna/core.py", "return len(label) <= 63", "return len(label) <= 64"),
                test_deps=("hypothesis",)),
        # WCWIDTH_PYTHON: the pure-Python implementation (the C extension is optional and needs a build);
        # addopts asks for pytest-cov's --cov options, and the check measures with coverage.py itself;
        # test_package_version reads the installed distribution's metadata.
        Project("wcwidth", _chain("0.9.1", "0.9.2", "0.9.3", "0.9.4"), "tests", "wcwidth",
                ("wcwidth/_wcwidth.py", "if bisearch(ucs, _WIDE_EASTASIAN_TABLE):\n        return 2",
                 "if bisearch(ucs, _WIDE_EASTASIAN_TABLE):\n        return 1"),
                pytest_args="-o addopts= --deselect tests/test_core.py::test_package_version",
                env=(("WCWIDTH_PYTHON", "1"),)),
        # 1.0.0 -> 1.0.1 and 1.1.0 -> 1.1.1: their tests call py.test, which current pytest no longer has.
        Project("iniconfig", _chain("2.3.0", "2.3.1"), "testing", "src/iniconfig",
                ("src/iniconfig/_parse.py", 'COMMENTCHARS = "#;"', 'COMMENTCHARS = "#"'), pythonpath="src"),
        # 20.2.0 -> 20.2.1: the sdists ship no tests. The conftest's pytest_ignore_collect(path) is
        # rejected by current pytest; it only leaves out test files for other Pythons.
        Project("boltons", _chain("23.1.0", "23.1.1"), "tests", "boltons", pytest_args="--noconftest"),
        # 2.9.0 -> 2.9.0.post0 is a post release, not a patch-level step. The setup.cfg turns every
        # warning into an error, and current pytest warns about the suite's unregistered marks and
        # parametrize iterators; test_parser_parser_private_not_warns calls pytest.warns(None), removed.
        Project("python-dateutil", (*_chain("2.7.3", "2.7.4", "2.7.5"), ("2.8.1", "2.8.2")), "dateutil/test",
                "dateutil", ("dateutil/easter.py", "e = 10", "e = 11"), test_deps=("freezegun", "six"),
                pytest_args="-W ignore::pytest.PytestWarning"
                            " --deselect dateutil/test/test_internals.py::test_parser_parser_private_not_warns"),
        Project("pyparsing", _chain("3.3.0", "3.3.1", "3.3.2", "3.3.3"), "tests", "pyparsing",
                test_deps=("railroad-diagrams", "jinja2")),
    )
}
# Tried and left out: tomli and sortedcontainers (their sdists ship no tests), pluggy (its patch-level
# steps in the window are 0.13.0 -> 0.13.1 and 0.8.0 -> 0.8.1, and pytest imports pluggy itself: the
# checkout would replace the pluggy pytest runs on), packaging (two-part versions), attrs (no patch-level release), filelock (pip cannot build its sdist's
# metadata here).
TAMPERS = ("skip", "delete", "unassert", "assert-true")


@dataclass
class Case:
    project: str
    kind: str  # "release" or a bad kind
    change: str
    bad: bool
    step: str = ""  # a real change's release step: "patch", "minor" or "major"
    state: str = ""
    route: str = ""
    confidence: float | None = None
    gates_hit: list[str] = field(default_factory=list)
    gates: list[str] = field(default_factory=list)
    lines: str = ""
    note: str = ""
    seconds: float = 0.0

    @property
    def merged(self) -> bool:
        return self.state == "merged"


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.sdists = work / "sdists"
        self.home = work / "home"
        self.venv = work / "venv"
        self.sdists.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        for var in ("GITHUB_TOKEN", "SLACK_WEBHOOK_URL"):
            self.env.pop(var, None)
        self.env.update(HOME=str(self.home), ERRAUTO_HOME=str(self.home / "state"),
                        XDG_CACHE_HOME=str(self.home / ".cache"), XDG_CONFIG_HOME=str(self.home / ".config"),
                        XDG_DATA_HOME=str(self.home / ".local/share"), XDG_STATE_HOME=str(self.home / ".local/state"),
                        GIT_AUTHOR_NAME="Acceptance", GIT_AUTHOR_EMAIL="acceptance@example.com",
                        GIT_COMMITTER_NAME="Acceptance", GIT_COMMITTER_EMAIL="acceptance@example.com",
                        PYTHONDONTWRITEBYTECODE="1")
        self.home.mkdir(exist_ok=True)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def prepare(self, projects: list[Project]) -> None:
        if not self.python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        deps = sorted({"pytest", "coverage", *(d for p in projects for d in p.test_deps)})
        subprocess.run([str(self.python), "-m", "pip", "install", "-q", *deps], check=True)

    def sdist(self, project: Project, version: str) -> Path:
        """The release's sdist unpacked, without the metadata the sdist build generates."""
        out = self.work / "trees" / f"{project.name}-{version}"
        if out.exists():
            return out
        dest = self.sdists / f"{project.name}-{version}"
        if not dest.exists():
            subprocess.run([str(self.python), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            "-d", str(dest), f"{project.name}=={version}"], check=True, env=self.env)
        archive = next(dest.glob("*.tar.gz"))
        unpack = self.work / "unpack" / f"{project.name}-{version}"
        with tarfile.open(archive) as tar:
            tar.extractall(unpack, filter="data")
        (top,) = list(unpack.iterdir())
        for junk in [top / "PKG-INFO", *top.rglob("*.egg-info")]:
            shutil.rmtree(junk) if junk.is_dir() else junk.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
        top.rename(out)
        return out

    def config(self, project: Project, min_lines: float | None = None) -> str:
        py = str(self.python)
        run = (f"{py} -m coverage run -m pytest -q -p no:cacheprovider --junitxml=.errauto/junit.xml {project.tests}"
               f"{' ' + project.pytest_args if project.pytest_args else ''}; "
               f"s=$?; {py} -m coverage json -q -o .errauto/cov.json; exit $s")
        env = {"COVERAGE_FILE": ".errauto/coverage.data", **dict(project.env)}
        if project.pythonpath:
            env["PYTHONPATH"] = project.pythonpath
        text = (f"target = 'main'\n[checks.tests]\ncommand = ['sh', '-c', {json.dumps(run)}]\n"
                f"junit = '.errauto/junit.xml'\nline_data = '.errauto/cov.json'\n"
                f"env = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in env.items())} }}\n")
        if min_lines is not None:
            text += f"[evidence]\nmin_changed_lines_covered = {min_lines}\n"
        return text

    def git(self, repo: Path, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                              env=self.env).stdout.decode(errors="replace")

    def repository(self, name: str, tree: Path, config: str) -> Path:
        repo = self.work / "repos" / name
        if repo.exists():
            shutil.rmtree(repo)
        shutil.copytree(tree, repo)
        (repo / ".errauto.toml").write_text(config)
        (repo / ".gitignore").write_text(".errauto/\n.hypothesis/\n__pycache__/\n")
        self.git(repo, "init", "-q", "-b", "main")
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", f"{tree.name}")
        return repo

    def patch_to(self, repo: Path, tree: Path, name: str) -> Path:
        """The change from the repository's HEAD to `tree` (its own files kept) as a patch file."""
        for entry in repo.iterdir():
            if entry.name not in (".git", ".errauto.toml", ".gitignore"):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        for entry in tree.iterdir():
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, repo / entry.name)
        self.git(repo, "add", "-A")
        patch = self.work / "patches" / f"{name}.patch"
        patch.parent.mkdir(exist_ok=True)
        patch.write_bytes(subprocess.run(["git", "diff", "--cached", "--binary"], cwd=repo, check=True,
                                         capture_output=True, env=self.env).stdout)
        self.git(repo, "reset", "-q", "--hard", "HEAD")
        self.git(repo, "clean", "-qfdx")
        return patch

    def apply(self, repo: Path, patch: Path, case: Case) -> Case:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "errauto_daemon", "apply", str(patch), "--repo", str(repo),
                               "--json", "--quiet"], capture_output=True, text=True, env=self.env, cwd=ROOT)
        case.seconds = time.monotonic() - start
        try:
            sub = json.loads(proc.stdout)
        except json.JSONDecodeError:
            case.state, case.note = "error", (proc.stderr.strip() or proc.stdout.strip())[:200]
            return case
        ex = sub.get("explanation") or {}
        case.state, case.route, case.confidence = sub["state"], sub.get("route") or "", sub.get("confidence")
        case.gates_hit, case.gates = list(ex.get("gates_hit", [])), list(ex.get("gates", []))
        lines = (ex.get("evidence") or {}).get("lines") or {}
        if lines.get("changed"):
            case.lines = f"{lines.get('run')}/{lines.get('changed')}"
        if not case.gates and sub.get("reason"):
            case.gates = [sub["reason"]]
        return case

    def run_tests(self, tree: Path, project: Project) -> tuple[list[str], dict[str, Any]]:
        """(ids of failing tests, coverage JSON) of the project's suite on `tree`, as the check runs it."""
        (tree / ".errauto").mkdir(exist_ok=True)
        env = dict(self.env, COVERAGE_FILE=".errauto/coverage.data", **dict(project.env))
        if project.pythonpath:
            env["PYTHONPATH"] = project.pythonpath
        py = str(self.python)
        subprocess.run([py, "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--junitxml=.errauto/junit.xml", project.tests, *project.pytest_args.split()], cwd=tree, env=env, capture_output=True)
        subprocess.run([py, "-m", "coverage", "json", "-q", "-o", ".errauto/cov.json"], cwd=tree, env=env,
                       capture_output=True)
        failing = []
        from xml.etree import ElementTree
        for case in ElementTree.parse(tree / ".errauto/junit.xml").iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failing.append(f"{case.get('file') or ''}|{case.get('classname')}|{case.get('name')}")
        cov = json.loads((tree / ".errauto/cov.json").read_text())
        shutil.rmtree(tree / ".errauto")
        return failing, cov


# --- bad patches ----------------------------------------------------------------------------------

def _locate(tree: Path, failing: str, tests: str) -> tuple[Path, str | None, str]:
    """A JUnit test case (file|classname|name) as (test file, class or None, function name)."""
    _, classname, name = failing.split("|")
    name = re.sub(r"\[.*$", "", name)
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        path = tree / (Path(*parts[:cut]).as_posix() + ".py")
        if path.exists():
            rest = parts[cut:]
            return path, (rest[0] if rest else None), name
    raise LookupError(f"no test file for {failing}")


def _function(module: ast.Module, cls: str | None, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    body: list[ast.stmt] = module.body
    if cls is not None:
        body = next(n for n in module.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    return next(n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)


def _is_assertion(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name.startswith("assert")
    if isinstance(node, ast.With):
        for item in node.items:
            call = item.context_expr
            if isinstance(call, ast.Call):
                func = call.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("raises", "assertRaises", "assertRaisesRegex", "warns", "assertWarns"):
                    return True
    return False


def _assertions(fn: ast.AST) -> list[ast.stmt]:
    found: list[ast.stmt] = []

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if _is_assertion(node):
                found.append(node)
                continue
            for attr in ("body", "orelse", "finalbody"):
                sub = getattr(node, attr, None)
                if isinstance(sub, list):
                    walk([s for s in sub if isinstance(s, ast.stmt)])
            for handler in getattr(node, "handlers", []):
                walk(handler.body)

    walk(fn.body)  # type: ignore[attr-defined]
    return found


def tamper(tree: Path, failing: list[str], tests: str, how: str) -> None:
    """Hide the failing tests in `tree`, one way."""
    targets: dict[Path, list[tuple[str | None, str]]] = {}
    for f in failing:
        path, cls, name = _locate(tree, f, tests)
        if (cls, name) not in targets.setdefault(path, []):
            targets[path].append((cls, name))
    for path, tests_in_file in targets.items():
        source = path.read_text()
        module = ast.parse(source)
        lines = source.splitlines(keepends=True)
        edits: list[tuple[int, int, list[str]]] = []  # (first line, last line) 1-based, replaced by
        for cls, name in tests_in_file:
            fn = _function(module, cls, name)
            first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
            indent = re.match(r"\s*", lines[first - 1]).group(0)  # type: ignore[union-attr]
            if how == "skip":
                edits.append((first, first - 1, [f"{indent}@pytest.mark.skip(reason='flaky')\n"]))
            elif how == "delete":
                assert fn.end_lineno is not None
                edits.append((first, fn.end_lineno, [f"{indent}pass\n"] if cls else []))
            else:
                for node in _assertions(fn):
                    assert node.end_lineno is not None
                    pad = re.match(r"\s*", lines[node.lineno - 1]).group(0)  # type: ignore[union-attr]
                    edits.append((node.lineno, node.end_lineno,
                                  [f"{pad}pass\n" if how == "unassert" else f"{pad}assert True\n"]))
        for first, last, new in sorted(edits, reverse=True):
            lines[first - 1:last] = new
        text = "".join(lines)
        if how == "skip" and not re.search(r"^import pytest$", text, re.M):
            text = _add_import(text)
        path.write_text(text)


def _add_import(text: str) -> str:
    module = ast.parse(text)
    at = 0
    for node in module.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__" or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node is module.body[0]):
            at = node.end_lineno or at
    lines = text.splitlines(keepends=True)
    lines.insert(at, "import pytest\n")
    return "".join(lines)


def unrun_return(tree: Path, project: Project, cov: dict[str, Any]) -> str | None:
    """Make a `return <value>` no test ran `return None`; the place, or None if there is none."""
    for name in sorted(cov.get("files", {})):
        path = tree / name
        if not name.startswith(project.package + "/") or "/tests/" in f"/{name}" or not path.exists():
            continue
        missing = set(cov["files"][name].get("missing_lines", []))
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, ast.Return) and node.lineno in missing and node.lineno == node.end_lineno
                    and node.value is not None and not (isinstance(node.value, ast.Constant)
                                                        and node.value.value is None)):
                lines = source.splitlines(keepends=True)
                line = lines[node.lineno - 1]
                lines[node.lineno - 1] = line[:node.col_offset] + "return None\n"
                path.write_text("".join(lines))
                return f"{name}:{node.lineno}"
    return None


# --- the run --------------------------------------------------------------------------------------

def release_step(old: str, new: str) -> str:
    """"major", "minor" or "patch": the first release number that differs (x.y counts as x.y.0)."""
    def numbers(version: str) -> list[int]:
        match = re.match(r"\d+(\.\d+)*", version)
        assert match is not None, version
        return [int(n) for n in match.group(0).split(".")]
    a, b = numbers(old), numbers(new)
    width = max(len(a), len(b), 3)
    a, b = a + [0] * (width - len(a)), b + [0] * (width - len(b))
    first = next((i for i in range(width) if a[i] != b[i]), width)
    return ("major", "minor")[first] if first < 2 else "patch"


def releases(bench: Bench, project: Project, pairs: int | None) -> list[Case]:
    out = []
    chosen = project.changes if pairs is None else project.changes[max(len(project.changes) - pairs, 0):]
    for old, new in chosen:
        base = bench.sdist(project, old)
        repo = bench.repository(f"{project.name}-{old}", base, bench.config(project))
        patch = bench.patch_to(repo, bench.sdist(project, new), f"{project.name}-{old}-{new}")
        case = Case(project.name, "release", f"{old} -> {new}", bad=False, step=release_step(old, new))
        out.append(bench.apply(repo, patch, case))
        print(f"  {project.name} {old} -> {new}: {case.state} {case.confidence} ({case.seconds:.0f}s)", flush=True)
    return out


def bad_patches(bench: Bench, project: Project) -> list[Case]:
    version = project.newest
    base = bench.sdist(project, version)
    out: list[Case] = []
    if project.bug is None:
        return out
    work = bench.work / "bad" / f"{project.name}-{version}"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work / "bug")
    file, text, replacement = project.bug
    target = work / "bug" / file
    source = target.read_text()
    if text not in source:
        out.append(Case(project.name, "bug+*", version, bad=True, state="not built",
                        note=f"{file} has no {text!r}"))
    else:
        on_base, _ = bench.run_tests(work / "bug", project)
        target.write_text(source.replace(text, replacement, 1))
        failing = [f for f in bench.run_tests(work / "bug", project)[0] if f not in on_base]
        if not failing:
            out.append(Case(project.name, "bug+*", version, bad=True, state="not built",
                            note="the project's tests do not catch the bug"))
        repo = bench.repository(f"bad-{project.name}", base, bench.config(project))
        for how in TAMPERS if failing else ():
            tree = work / how
            shutil.copytree(work / "bug", tree)
            tamper(tree, failing, project.tests, how)
            still, _ = bench.run_tests(tree, project)
            case = Case(project.name, f"bug+{how}", f"{version}: {file} ({len(failing)} tests catch it)", bad=True,
                        note="suite passes" if not still else f"{len(still)} tests still fail")
            patch = bench.patch_to(repo, tree, f"bad-{project.name}-{how}")
            out.append(bench.apply(repo, patch, case))
            print(f"  {project.name} bug+{how}: {case.state} {case.confidence} ({case.note})", flush=True)
    tree = work / "unrun"
    shutil.copytree(base, tree)
    _, cov = bench.run_tests(tree, project)
    where = unrun_return(tree, project, cov)
    if where is None:
        out.append(Case(project.name, "bug-unrun", version, bad=True, state="not built",
                        note="no return statement that no test runs"))
        return out
    repo = bench.repository(f"bad-{project.name}-min", base, bench.config(project, min_lines=1.0))
    patch = bench.patch_to(repo, tree, f"bad-{project.name}-unrun")
    case = bench.apply(repo, patch, Case(project.name, "bug-unrun", f"{version}: {where} -> return None",
                                         bad=True, note="min_changed_lines_covered = 1.0"))
    print(f"  {project.name} bug-unrun: {case.state} {case.confidence}", flush=True)
    out.append(case)
    return out


def report(cases: list[Case]) -> str:
    rows = ["| project | patch | change | step | state (route) | confidence | changed lines run | gates hit / why held | note |",
            "|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        why = "; ".join(c.gates_hit or c.gates) if not c.merged else ""
        conf = f"{c.confidence:.2f}" if c.confidence is not None else "-"
        rows.append(f"| {c.project} | {c.kind} | {c.change} | {c.step or '-'} | {c.state} ({c.route or '-'}) | {conf} | "
                    f"{c.lines or '-'} | {why.replace('|', '/')} | {c.note} |")
    real = [c for c in cases if not c.bad]
    bad = [c for c in cases if c.bad and c.state != "not built"]
    rows += ["", f"bad patches auto-merged: {sum(c.merged for c in bad)} of {len(bad)}",
             f"real release changes auto-merged: {_rate(real)}"]
    rows += [f"  {step} releases: {_rate([c for c in real if c.step == step])}"
             for step in ("patch", "minor", "major") if any(c.step == step for c in real)]
    held = [c for c in real if not c.merged]
    if held:
        rows += ["", "real release changes not auto-merged:"]
        rows += [f"- {c.project} {c.change} ({c.step}): {'; '.join(c.gates) or c.note or c.state}" for c in held]
    return "\n".join(rows)


def _rate(cases: list[Case]) -> str:
    merged = sum(c.merged for c in cases)
    return f"{merged} of {len(cases)}" + (f" ({merged / len(cases):.0%})" if cases else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", default=",".join(CORPUS), help="comma-separated, from: " + ", ".join(CORPUS))
    parser.add_argument("--pairs", type=int, help="only the newest N release pairs of each project (default: all)")
    parser.add_argument("--bad-projects", help="the projects bad patches are made from (default: all of --projects;"
                        " '' for none)")
    parser.add_argument("--workdir", type=Path, help="kept after the run (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="write the cases here as JSON")
    args = parser.parse_args()
    projects = [CORPUS[name.strip()] for name in args.projects.split(",") if name.strip()]
    bad_from = {n.strip() for n in (args.projects if args.bad_projects is None else args.bad_projects).split(",")}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="errauto-acceptance-"))
    bench = Bench(work.resolve())
    bench.prepare(projects)
    cases: list[Case] = []
    for project in projects:
        print(f"{project.name}:", flush=True)
        cases += releases(bench, project, args.pairs)
        if project.name in bad_from:
            cases += bad_patches(bench, project)
    print()
    print(report(cases))
    if args.json:
        args.json.write_text(json.dumps([c.__dict__ for c in cases], indent=2))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
