"""Whether a patch weakens the tests, read from the test files themselves.

The per-test comparison (`compare`) sees what the runner did; this sees
what the patch wrote, base file against patched file, so it names the line:
a test deleted, a skip or xfail added (decorator, call or `pytestmark`), a
test's assertions removed or made always true, a way out of the run
(`os._exit`, `sys.exit`), a conftest hook that changes what is collected or
reported, a change to the runner's configuration, a module that shadows the
runner. Only Python is read; for other files the per-test comparison is
the evidence.

Pure: it gets the texts, it reads nothing itself.
"""
from __future__ import annotations

import ast
import configparser
import fnmatch
import functools
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_TEST_GLOBS = ("test_*.py", "*_test.py", "tests/**/*.py", "test/**/*.py", "conftest.py")

# Markers and decorators that keep a test from giving a verdict.
_SKIP_MARKS = {"skip", "skipif", "xfail"}
_UNITTEST_SKIPS = {"skip", "skipIf", "skipUnless", "expectedFailure"}
# Calls inside a test that end it without a verdict, or end the whole run.
_SKIP_CALLS = {("pytest", "skip"), ("pytest", "xfail"), ("pytest", "importorskip"), ("self", "skipTest")}
_EXITS = {("os", "_exit"), ("sys", "exit"), ("os", "kill"), ("os", "abort")}
# conftest hooks that change which tests run or what their result is.
_HOOKS = {"pytest_collection_modifyitems", "pytest_ignore_collect", "pytest_deselected", "pytest_collect_file",
          "pytest_pycollect_makeitem", "pytest_runtest_makereport", "pytest_runtest_call", "pytest_runtest_setup",
          "pytest_runtest_protocol", "pytest_report_teststatus", "pytest_configure", "pytest_sessionstart",
          "pytest_sessionfinish", "pytest_collection", "pytest_generate_tests", "pytest_runtestloop",
          "pytest_terminal_summary", "pytest_unconfigure", "pytest_load_initial_conftests", "pytest_plugin_registered",
          "pytest_addhooks", "pytest_cmdline_main", "pytest_cmdline_parse", "pytest_pyfunc_call"}
_COLLECT_NAMES = {"collect_ignore", "collect_ignore_glob", "pytest_plugins", "pytestmark"}
# Files whose presence at the root replaces the runner or runs at interpreter start.
SHADOWS = {"pytest.py", "_pytest", "py.py", "sitecustomize.py", "usercustomize.py", "unittest.py", "coverage.py",
            "pytest_cov.py", "pytest_cov"}
# Files at the top of the tree that say how a check runs, when it runs this program:
# `make` and `nox` read only these; a Makefile below (the docs', a bundled C
# library's) runs no tests.
_RUNNERS = {"Makefile": ("make", "gmake"), "GNUmakefile": ("make", "gmake"), "makefile": ("make", "gmake"),
            "noxfile.py": ("nox",)}
# Sections of configuration files that tell the runner what to run and how.
_RUNNER_SECTIONS = {"pytest.ini": ("pytest",), ".pytest.ini": ("pytest",), "tox.ini": ("pytest", "tox", "testenv"),
                    "setup.cfg": ("tool:pytest",)}
_TOX_ONLY = {"tox", "testenv"}  # read by tox alone: they matter when a check runs tox
# Coverage's own settings (`omit`, `exclude_lines`) are not here: a file coverage
# does not measure counts as never imported, and an excluded line as not run, so
# they cannot hide a changed line (changed_lines.py).
_TOML_TABLES = (("tool", "pytest"),)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int | None
    what: str
    test: str | None = None  # the node id it weakens, when it is about one test

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where} {self.what}"


@dataclass(frozen=True)
class FileChange:
    """One file of the patch: its text on the base and with the patch (None: absent)."""

    path: str
    before: str | None
    after: str | None


def is_test_file(path: str, globs: Sequence[str] = DEFAULT_TEST_GLOBS) -> bool:
    """Whether `path` or its file name matches one of `globs` (as fnmatch reads them)."""
    if not globs:
        return False
    match = _matcher(tuple(globs))
    return match(path.rsplit("/", 1)[-1]) is not None or match(path) is not None


@functools.lru_cache(maxsize=32)
def _matcher(globs: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """One regular expression for all of `globs`: a patch's files are matched against
    the configured globs and every test file the runner reported, per file."""
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)).match


def findings(changes: Iterable[FileChange], globs: Sequence[str] = DEFAULT_TEST_GLOBS,
             runners: frozenset[str] | None = None) -> list[Finding]:
    """Everything in the patch that weakens the tests or changes how they run.

    `runners`: the programs the checks run (`runners_of`); a Makefile, a
    noxfile or tox's own sections count only when a check runs make, nox or
    tox. None: not known, so they always count."""
    out: list[Finding] = []
    for change in changes:
        out += _file(change, globs, runners)
    return out


def runners_of(commands: Iterable[Sequence[str]]) -> frozenset[str]:
    """Every program name a check's command line may run: each word's base name,
    words inside a shell line included, and `python -m X`'s X."""
    out: set[str] = set()
    for command in commands:
        words = [w for arg in command for w in re.split(r"[\s;&|()'\"]+", arg) if w]
        out.update(PurePosixPath(w).name for w in words)
    return frozenset(out)


def _runs(runners: frozenset[str] | None, *programs: str) -> bool:
    return runners is None or any(p in runners for p in programs)


def _file(change: FileChange, globs: Sequence[str], runners: frozenset[str] | None = None) -> list[Finding]:
    path = PurePosixPath(change.path)
    out: list[Finding] = []
    if change.before is None and change.after is not None and _shadows(path):
        out.append(Finding(change.path, None, f"adds {path.name} at the top of the tree, where it is "
                                              "imported in place of the test runner or at interpreter start"))
    if path.name in _RUNNER_SECTIONS:
        sections = _RUNNER_SECTIONS[path.name]
        if path.name == "tox.ini" and not _runs(runners, "tox"):
            sections = tuple(name for name in sections if name not in _TOX_ONLY)
        out += _ini(change, sections)
    elif path.name == "pyproject.toml":
        out += _toml(change)
    elif (len(path.parts) == 1 and path.name in _RUNNERS and change.before != change.after
          and _runs(runners, *_RUNNERS[path.name])):
        out.append(Finding(change.path, None, "changes how the checks run"))
    if path.suffix != ".py" or not is_test_file(change.path, globs):
        return out
    if change.after is None:
        return out + [Finding(change.path, None, "deletes a test file")]
    after = _parse(change.after)
    if after is None:
        return out  # the runner reports a file it cannot import; nothing to compare here
    before = _parse(change.before) if change.before is not None else None
    out += _module_level(change.path, before, after)
    out += _tests(change.path, (before, change.before) if before is not None and change.before is not None else None,
                  (after, change.after))
    return out


def _shadows(path: PurePosixPath) -> bool:
    top = path.parts[0]
    return top in SHADOWS or (len(path.parts) == 1 and path.suffix == ".pth")


# --------------------------------------------------------------------------
# test functions


@dataclass
class _Test:
    name: str  # Class::test or test
    line: int
    asserts: int
    skips: list[tuple[int, str]] = field(default_factory=list)
    exits: list[tuple[int, str]] = field(default_factory=list)


def _tests(path: str, before: tuple[ast.Module, str] | None, after: tuple[ast.Module, str]) -> list[Finding]:
    """Findings about the test functions; only those whose text changed are walked."""
    old = _defs(*before) if before is not None else {}
    new = _defs(*after)
    out: list[Finding] = []
    for name, d in old.items():
        if name not in new:
            out.append(Finding(path, d.node.lineno, f"deletes {name}", f"{path}::{name}"))
    for name, d in new.items():
        prior = old.get(name)
        if prior is not None and prior.text == d.text:
            continue
        test, was = d.analyse(), prior.analyse() if prior is not None else None
        node = f"{path}::{name}"
        for line, how in test.skips:
            # A skip on a new test hides no verdict the base had.
            if was is not None and how not in {h for _, h in was.skips}:
                out.append(Finding(path, line, f"adds {how} to {name}", node))
        for line, how in test.exits:
            if was is None or how not in {h for _, h in was.exits}:
                out.append(Finding(path, line, f"calls {how} in {name}, which ends the test run", node))
        if was is not None and test.asserts < was.asserts:
            what = "removes every assertion from" if test.asserts == 0 else \
                f"removes {was.asserts - test.asserts} of {was.asserts} assertions from"
            out.append(Finding(path, test.line, f"{what} {name}", node))
    return out


@dataclass(frozen=True)
class _Def:
    """A test function as written: its text (with its decorators, and its
    class's header for a method) tells an unchanged one without walking it."""

    name: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    owner: ast.ClassDef | None
    text: str

    def analyse(self) -> _Test:
        test = _test(self.name, self.node)
        if self.owner is not None:
            test.skips += [(d.lineno, s) for d in self.owner.decorator_list for s in [_skip_decorator(d)] if s]
            test.skips += [(line, f"{how} (the class's pytestmark)") for line, how in _class_marks(self.owner)]
        return test


def _class_marks(owner: ast.ClassDef) -> list[tuple[int, str]]:
    """Skip and xfail marks a class gives all its tests through `pytestmark = ...`."""
    out = []
    for node in owner.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in node.targets):
            out += [(node.lineno, how) for sub in ast.walk(node.value)
                    for how in [_skip_decorator(sub) if isinstance(sub, (ast.Attribute, ast.Call)) else None]
                    if how]
    return out


def _defs(module: ast.Module, source: str) -> dict[str, _Def]:
    lines = source.splitlines()

    def text(node: ast.stmt, header_only: bool = False) -> str:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        last = node.lineno if header_only else (node.end_lineno or node.lineno)
        return "\n".join(lines[first - 1:last])

    out: dict[str, _Def] = {}
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            out[node.name] = _Def(node.name, node, None, text(node))
        elif isinstance(node, ast.ClassDef):
            header = "\n".join([text(node, header_only=True), *(
                text(item) for item in node.body if isinstance(item, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in item.targets))])
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    name = f"{node.name}::{item.name}"
                    out[name] = _Def(name, item, node, header + "\n" + text(item))
    return out


def _test(name: str, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> _Test:
    test = _Test(name, fn.lineno, 0)
    for d in fn.decorator_list:
        how = _skip_decorator(d)
        if how:
            test.skips.append((d.lineno, how))
    for node in ast.walk(fn):
        test.asserts += _assertions(node)
        if isinstance(node, ast.Call):
            called = _dotted(node.func)
            if called in _SKIP_CALLS:
                test.skips.append((node.lineno, f"{'.'.join(called)}()"))
            elif called in _EXITS:
                test.exits.append((node.lineno, f"{'.'.join(called)}()"))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            raised = _dotted(node.exc.func if isinstance(node.exc, ast.Call) else node.exc)
            if raised and raised[-1] in ("SkipTest", "Skipped"):
                test.skips.append((node.lineno, f"raise {'.'.join(raised)}"))
    return test


def _assertions(node: ast.AST) -> int:
    """1 for an assertion that can fail: an `assert` of something not constant, a
    unittest `assert*` call, `pytest.raises`, `pytest.approx`, `pytest.fail`."""
    if isinstance(node, ast.Assert):
        return 0 if _always_true(node.test) else 1
    if isinstance(node, ast.Call):
        called = _dotted(node.func)
        if called and (called[-1].startswith("assert") or called[-1].startswith("fail")) and len(called) > 1:
            return 1
        if called in {("pytest", "raises"), ("pytest", "approx"), ("pytest", "warns"), ("pytest", "fail")}:
            return 1
    return 0


def _always_true(test: ast.expr) -> bool:
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, (ast.Tuple, ast.List, ast.Set)) and test.elts:
        return True  # `assert (x, "message")`: a non-empty tuple is always true
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return any(_always_true(v) for v in test.values)
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.Is)):
        return ast.dump(test.left) == ast.dump(test.comparators[0])  # assert x == x
    return False


def _skip_decorator(d: ast.expr) -> str | None:
    target = d.func if isinstance(d, ast.Call) else d
    called = _dotted(target)
    if not called:
        return None
    if len(called) >= 3 and called[-3:-1] == ("pytest", "mark") and called[-1] in _SKIP_MARKS:
        return f"@pytest.mark.{called[-1]}"
    if called[-2:-1] == ("mark",) and called[-1] in _SKIP_MARKS:
        return f"@mark.{called[-1]}"
    if called[-1] in _UNITTEST_SKIPS and (len(called) == 1 or called[-2] == "unittest"):
        return f"@{'.'.join(called)}"
    return None


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return tuple(reversed(parts))
    return ()


# --------------------------------------------------------------------------
# module level: pytestmark, collect_ignore, hooks, exits at import


def _module_level(path: str, before: ast.Module | None, after: ast.Module) -> list[Finding]:
    old = _module_facts(before) if before is not None else {}
    out = []
    for key, (line, fingerprint, added, changed) in _module_facts(after).items():
        if key not in old:
            out.append(Finding(path, line, added))
        elif old[key][1] != fingerprint:
            out.append(Finding(path, line, changed))
    return out


def _module_facts(module: ast.Module) -> dict[str, tuple[int, str, str, str]]:
    """What a module does at its top level that changes the run: by a key, its
    line, a fingerprint (to tell a changed one from an unchanged one), and
    the words for it added and for it changed."""
    facts: dict[str, tuple[int, str, str, str]] = {}
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in _HOOKS:
            why = "which changes what the test run collects, runs or reports"
            facts[f"hook:{node.name}"] = (node.lineno, ast.dump(node), f"defines the hook {node.name}, {why}",
                                          f"changes the hook {node.name}, {why}")
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
        else:
            targets, value = [], None
        for target in targets:
            if isinstance(target, ast.Name) and target.id in _COLLECT_NAMES:
                facts[f"name:{target.id}"] = (node.lineno, ast.dump(value) if value is not None else "",
                                              f"sets {target.id}", f"changes {target.id}")
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            called = _dotted(node.value.func)
            if called in _SKIP_CALLS or called in _EXITS:
                name = ".".join(called)
                facts[f"call:{name}"] = (node.lineno, ast.dump(node), f"calls {name}() when the module is imported",
                                         f"changes its call of {name}() when the module is imported")
    return facts


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


# --------------------------------------------------------------------------
# the runner's configuration


def _ini(change: FileChange, sections: Sequence[str]) -> list[Finding]:
    old, new = _ini_sections(change.before, sections), _ini_sections(change.after, sections)
    return [Finding(change.path, None, f"changes the [{name}] section, which tells the test run what to run")
            for name in sections if old.get(name) != new.get(name)]


def _ini_sections(text: str | None, sections: Sequence[str]) -> dict[str, object]:
    if text is None:
        return {}
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return {name: ("unreadable", text) for name in sections}
    return {name: sorted(parser.items(name)) for name in sections if parser.has_section(name)}


def _toml(change: FileChange) -> list[Finding]:
    old, new = _toml_tables(change.before), _toml_tables(change.after)
    return [Finding(change.path, None, f"changes [{'.'.join(key)}], which tells the test run what to run")
            for key in _TOML_TABLES if old.get(key) != new.get(key)]


def _toml_tables(text: str | None) -> dict[tuple[str, ...], object]:
    if text is None:
        return {}
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return {key: ("unreadable", text) for key in _TOML_TABLES}
    out: dict[tuple[str, ...], object] = {}
    for key in _TOML_TABLES:
        value: object = data
        for part in key:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            out[key] = value
    return out
