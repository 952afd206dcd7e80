"""What the evidence of one validation came to, as plain data: what scoring
reads, what the explanation shows, what the validation cache keeps."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # this module is read by output (hooks among its users): it imports no parser
    from errauto_daemon.evidence.changed_lines import ChangedLines
    from errauto_daemon.evidence.compare import TestDiff
    from errauto_daemon.evidence.junit import TestReport

SHOWN = 10  # tests named per kind in an explanation


@dataclass(frozen=True)
class Failure:
    id: str
    message: str = ""


@dataclass(frozen=True)
class Flake:
    id: str
    runs: int
    failures: int

    def __str__(self) -> str:
        return f"{self.id} failed {self.failures} of {self.runs} runs"


@dataclass(frozen=True)
class CheckEvidence:
    """One check's per-test evidence, against the base's."""

    check: str
    problem: str | None = None  # why there is no per-test evidence (the report is missing or broken)
    newly_failing: tuple[Failure, ...] = ()
    fixed: tuple[str, ...] = ()
    still_failing: tuple[str, ...] = ()
    not_run: tuple[str, ...] = ()  # "tests/x.py::t is now skipped (flaky)"
    flaky: tuple[Flake, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)
    base_missing: bool = False  # no base report to compare with: failures are all counted

    @classmethod
    def from_diff(cls, check: str, diff: TestDiff, report: TestReport, flakes: Sequence[Flake]) -> CheckEvidence:
        return cls(check, None,
                   tuple(Failure(t.id, t.message) for t in diff.newly_failing),
                   tuple(t.id for t in diff.fixed),
                   tuple(t.id for t in diff.still_failing),
                   tuple(f"{n.id} {n.how}" for n in diff.not_run),
                   tuple(flakes), report.counts())

    @property
    def usable(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "problem": self.problem,
                "newly_failing": [{"id": f.id, "message": f.message} for f in self.newly_failing],
                "fixed": list(self.fixed), "still_failing": list(self.still_failing),
                "not_run": list(self.not_run),
                "flaky": [{"id": f.id, "runs": f.runs, "failures": f.failures} for f in self.flaky],
                "counts": dict(self.counts), "base_missing": self.base_missing}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CheckEvidence:
        return cls(str(d["check"]), d.get("problem"),
                   tuple(Failure(str(f["id"]), str(f.get("message", ""))) for f in d.get("newly_failing", ())),
                   tuple(d.get("fixed", ())), tuple(d.get("still_failing", ())), tuple(d.get("not_run", ())),
                   tuple(Flake(str(f["id"]), int(f["runs"]), int(f["failures"])) for f in d.get("flaky", ())),
                   dict(d.get("counts", {})), bool(d.get("base_missing", False)))


@dataclass(frozen=True)
class LinesEvidence:
    changed: int
    run: int
    not_run: tuple[str, ...]  # "app.py:12-15 not run by any test"
    problem: str | None = None

    @property
    def share(self) -> float | None:
        return self.run / self.changed if self.changed else None

    @classmethod
    def of(cls, lines: ChangedLines) -> LinesEvidence:
        return cls(lines.changed, lines.run, tuple(lines.not_run()))

    def to_json(self) -> dict[str, Any]:
        return {"changed": self.changed, "run": self.run, "not_run": list(self.not_run), "problem": self.problem,
                "share": None if self.share is None else round(self.share, 4)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LinesEvidence:
        return cls(int(d["changed"]), int(d["run"]), tuple(d.get("not_run", ())), d.get("problem"))


@dataclass(frozen=True)
class Evidence:
    """Everything beyond exit codes that one validation found."""

    checks: Mapping[str, CheckEvidence] = field(default_factory=dict)
    weakened: tuple[str, ...] = ()  # "tests/test_app.py:14 adds @pytest.mark.skip to test_clamp"
    lines: LinesEvidence | None = None

    def readable(self) -> list[tuple[int, str]]:
        """What a person reads about the evidence, as (depth, text): what the
        patch fixed first, then what it broke with the first lines of each
        failure, what failed on the base too, what was flaky, what no longer
        runs, and the changed lines the tests did not run."""
        out: list[tuple[int, str]] = []
        for ev in self.checks.values():
            if not ev.usable:
                continue
            counts = ", ".join(f"{n} {word}" for word, n in ev.counts.items() if n)
            out.append((0, f"{ev.check}: {counts or 'no tests'}"))
            out += [(1, f"fixes {t}") for t in ev.fixed[:SHOWN]]
            for f in ev.newly_failing[:SHOWN]:
                out.append((1, f"{'fails' if ev.base_missing else 'breaks'} {f.id}"))
                out += [(2, line) for line in f.message.splitlines()[:6]]
            out += [(1, f"fails on the base too: {t}") for t in ev.still_failing[:SHOWN]]
            out += [(1, f"flaky: {f}") for f in ev.flaky[:SHOWN]]
            out += [(1, f"no verdict: {t}") for t in ev.not_run[:SHOWN]]
        if self.lines is not None and not self.lines.problem and self.lines.changed:
            out.append((0, f"changed lines: the tests ran {self.lines.run} of {self.lines.changed}"))
            out += [(1, t) for t in self.lines.not_run]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"checks": {k: v.to_json() for k, v in self.checks.items()}, "weakened": list(self.weakened),
                "lines": self.lines.to_json() if self.lines else None}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Evidence:
        if not d:
            return cls()
        lines = d.get("lines")
        return cls({k: CheckEvidence.from_json(v) for k, v in d.get("checks", {}).items()},
                   tuple(d.get("weakened", ())), LinesEvidence.from_json(lines) if lines else None)


NONE = Evidence()
