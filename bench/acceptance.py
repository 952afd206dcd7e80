"""Acceptance run for confidence from evidence: real release changes and bad patches.

A held-out corpus of published, pure-Python projects whose sdists ship their
tests. For each project and each pair of consecutive releases N -> N+1:
release N is committed to a fresh git repository with a `tests` check that
runs pytest under coverage.py (one run: JUnit report and line data), and the
real release change N -> N+1 is validated with `errauto apply --json`.

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
changes should be. Prints a table, the two numbers and, for every real change
not merged, the gates that held it.

Needs the network (pip downloads the sdists and installs pytest, coverage and
the projects' test dependencies into a venv of its own). errauto runs with
HOME, ERRAUTO_HOME and the XDG directories inside the work directory.

    python bench/acceptance.py [--projects toolz,idna] [--pairs 3] [--bad-projects toolz] [--workdir DIR] [--json FILE]

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
    versions: tuple[str, ...]  # consecutive releases whose sdists ship their tests, oldest first
    tests: str  # what pytest is given
    package: str  # the code under test, relative to the sdist root
    bug: tuple[str, str, str]  # (file, text, replacement): a bug the tests catch
    pythonpath: str = ""
    test_deps: tuple[str, ...] = ()
    pytest_args: str = ""  # what the project's own check would leave out, with the reason beside it


CORPUS = {
    p.name: p for p in (
        # 11.2.0's sdist ships no tests, so the series stops at 11.1.0.
        Project("more-itertools", ("10.8.0", "11.0.0", "11.0.1", "11.0.2", "11.1.0"), "tests", "more_itertools",
                ("more_itertools/more.py", "return sum(compress(repeat(1), zip(iterable)))",
                 "return sum(compress(repeat(1), zip(iterable))) or 1")),
        # test_has_version reads the installed distribution's metadata; the checkout is not installed.
        Project("toolz", ("0.12.1", "1.0.0", "1.1.0", "1.2.0"), "toolz/tests", "toolz",
                ("toolz/itertoolz.py", "d[item] += 1", "d[item] = 1"),
                pytest_args="--deselect toolz/tests/test_package.py::test_has_version"),
        Project("cachetools", ("7.3.3", "8.0.0", "8.0.1", "8.0.2"), "tests", "src/cachetools",
                ("src/cachetools/__init__.py", "key = next(iter(self.__order))",
                 "key = next(reversed(self.__order))"), pythonpath="src"),
        Project("idna", ("3.17", "3.18", "3.19", "3.20"), "tests", "idna",
                ("idna/core.py", "return len(label) <= 63", "return len(label) <= 64"),
                test_deps=("hypothesis",)),
    )
}
TAMPERS = ("skip", "delete", "unassert", "assert-true")


@dataclass
class Case:
    project: str
    kind: str  # "release" or a bad kind
    change: str
    bad: bool
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
        env = {"COVERAGE_FILE": ".errauto/coverage.data"}
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
        env = dict(self.env, COVERAGE_FILE=".errauto/coverage.data")
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

def releases(bench: Bench, project: Project, pairs: int) -> list[Case]:
    out = []
    versions = project.versions[-(pairs + 1):]
    for old, new in zip(versions, versions[1:]):
        base = bench.sdist(project, old)
        repo = bench.repository(f"{project.name}-{old}", base, bench.config(project))
        patch = bench.patch_to(repo, bench.sdist(project, new), f"{project.name}-{old}-{new}")
        case = Case(project.name, "release", f"{old} -> {new}", bad=False)
        out.append(bench.apply(repo, patch, case))
        print(f"  {project.name} {old} -> {new}: {case.state} {case.confidence} ({case.seconds:.0f}s)", flush=True)
    return out


def bad_patches(bench: Bench, project: Project, pairs: int) -> list[Case]:
    version = project.versions[-1] if pairs > 0 else project.versions[-1]
    base = bench.sdist(project, version)
    out = []
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
    rows = ["| project | patch | change | state (route) | confidence | changed lines run | gates hit / why held | note |",
            "|---|---|---|---|---|---|---|---|"]
    for c in cases:
        why = "; ".join(c.gates_hit or c.gates) if not c.merged else ""
        conf = f"{c.confidence:.2f}" if c.confidence is not None else "-"
        rows.append(f"| {c.project} | {c.kind} | {c.change} | {c.state} ({c.route or '-'}) | {conf} | "
                    f"{c.lines or '-'} | {why.replace('|', '/')} | {c.note} |")
    real = [c for c in cases if not c.bad]
    bad = [c for c in cases if c.bad and c.state != "not built"]
    merged_real = sum(c.merged for c in real)
    rows += ["", f"bad patches auto-merged: {sum(c.merged for c in bad)} of {len(bad)}",
             f"real release changes auto-merged: {merged_real} of {len(real)}"
             + (f" ({merged_real / len(real):.0%})" if real else "")]
    held = [c for c in real if not c.merged]
    if held:
        rows += ["", "real release changes not auto-merged:"]
        rows += [f"- {c.project} {c.change}: {'; '.join(c.gates) or c.note or c.state}" for c in held]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", default=",".join(CORPUS), help="comma-separated, from: " + ", ".join(CORPUS))
    parser.add_argument("--pairs", type=int, default=3, help="newest release pairs per project")
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
            cases += bad_patches(bench, project, args.pairs)
    print()
    print(report(cases))
    if args.json:
        args.json.write_text(json.dumps([c.__dict__ for c in cases], indent=2))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
