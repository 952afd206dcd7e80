"""Configuration: where it is read from, and one clear line for every mistake."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from errauto_daemon import config
from errauto_daemon.errors import ConfigError
from errauto_daemon.main import main
from tests.helpers.gitrepo import CALC, PYTHON, GitRepo, config_toml, python_project


def load(repo: GitRepo) -> config.Config:
    return config.load(repo.pygit2())


@pytest.mark.parametrize("text, key", [
    ("colour = 'blue'\n", "colour"),
    ("workers = 'two'\n", "workers"),
    ("workers = 0\n", "workers"),
    ("auto_merge_threshold = 1.5\n", "auto_merge_threshold"),
    ("pr_threshold = 0.99\nauto_merge_threshold = 0.9\n", "pr_threshold"),
    ("protected_paths = 'x'\n", "protected_paths"),
    ("submit_refs = ['heads/x']\n", "submit_refs"),
    ("max_patch_bytes = -1\n", "max_patch_bytes"),
    ("inbox = '/abs'\n", "inbox"),
    ("[checks.lint]\ncommand = 'ruff check .'\nweight = -0.1\n", "checks.lint.weight"),
    ("[checks.lint]\ncommand = 'ruff check .'\ntimeout = 0\n", "checks.lint.timeout"),
    ("[checks.lint]\nweight = 0.2\n", "checks.lint.command"),
    ("[checks.lint]\ncommand = ''\n", "checks.lint.command"),
    ("[checks.lint]\ncommand = 'x'\nretries = 3\n", "checks.lint.retries"),
    ("[checks.docs]\ncommand = 'x'\n", "checks.docs.weight"),
    ("[checks.lint]\ncommand = 'x'\ngate = 'yes'\n", "checks.lint.gate"),
    ("[checks.cov]\ncommand = 'x'\nweight = 1\nkind = 'magic'\n", "checks.cov.kind"),
    ("checks = 3\n", "checks"),
    ("this is not toml\n", "invalid TOML"),
    ("[checks.tests]\ncommand = 'x'\nweight = 0\n[checks.lint]\ncommand = 'y'\nweight = 0\n",
     "checks have no weight above 0"),
    ("[checks.coverage]\ncommand = 'x'\nreport = '../../etc/hostname'\n", "checks.coverage.report"),
    ("[checks.coverage]\ncommand = 'x'\nreport = 'build/../../x.json'\n", "checks.coverage.report"),
    ("[checks.coverage]\ncommand = 'x'\nreport = '/etc/hostname'\n", "checks.coverage.report"),
    ("[checks.coverage]\ncommand = 'x'\nreport = 'C:/cov.json'\n", "checks.coverage.report"),
    ("[checks.coverage]\ncommand = 'x'\nreport = '.git/config'\n", "checks.coverage.report"),
    ("[checks.coverage]\ncommand = 'x'\nreport = ''\n", "checks.coverage.report"),
    ("target = 'release'\n", "target names the branch 'release'"),
    ("[checks.tests]\ncommand = 'x'\njunit = '../junit.xml'\n", "checks.tests.junit"),
    ("[checks.tests]\ncommand = 'x'\nline_data = '/tmp/cov.json'\n", "checks.tests.line_data"),
    ("[checks.tests]\ncommand = 'x'\nreruns = 11\n", "checks.tests.reruns"),
    ("[checks.tests]\ncommand = 'x'\nreruns = 'twice'\n", "checks.tests.reruns"),
    ("[evidence]\nmin_changed_lines_covered = 1.5\n", "evidence.min_changed_lines_covered"),
    ("[evidence]\ntest_files = []\n", "evidence.test_files"),
    ("[evidence]\nstrict = true\n", "evidence.strict"),
    ("remote_url = ' '\n", "remote_url must be the URL the machines clone the repository from"),
    ("remote_url = 3\n", "remote_url must be"),
])
def test_bad_config_fails_with_one_line_naming_the_key(
        repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str) -> None:
    repo.commit("config", {".errauto.toml": text})
    with pytest.raises(ConfigError) as info:
        load(repo)
    assert key in str(info.value)
    assert "\n" not in str(info.value)

    patch = tmp_path / "p.patch"
    patch.write_bytes(repo.make_patch({"README": "hello there\n"}))
    code = main(["apply", str(patch), "--repo", str(repo.path)])
    err = capsys.readouterr().err
    assert code == 5
    assert err.count("\n") == 1 and key in err


@pytest.mark.parametrize("text, message", [
    ("[checks.tests]\ncommand = 'true'\nweight = 0\n", "checks have no weight above 0 (checks.tests)"),
    ("[checks.coverage]\ncommand = 'true'\nreport = '../../etc/hostname'\n",
     "checks.coverage.report must be a path inside the repository"),
    ("target = 'release'\n", "target names the branch 'release', which does not exist"),
])
def test_configuration_mistakes_exit_5_from_the_real_cli(
        repo: GitRepo, tmp_path: Path, text: str, message: str) -> None:
    repo.commit("config", {".errauto.toml": text})
    patch = tmp_path / "p.patch"
    patch.write_bytes(repo.make_patch({"README": "hello there\n"}))
    proc = subprocess.run([PYTHON, "-m", "errauto_daemon", "apply", str(patch), "--repo", str(repo.path)],
                          capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.startswith("errauto: config error in .errauto.toml on main: ")
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stdout == ""


def test_a_target_branch_named_on_the_command_line_that_does_not_exist_is_a_usage_error(
        repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = tmp_path / "p.patch"
    patch.write_bytes(repo.make_patch({"README": "hello there\n"}))
    code = main(["apply", str(patch), "--repo", str(repo.path), "--target", "release"])
    err = capsys.readouterr().err
    assert code == 2 and "target branch 'release' does not exist" in err


@pytest.mark.parametrize("report", ["coverage.json", "build/cov/coverage.json", "reports/..cov.json"])
def test_a_coverage_report_inside_the_repository_is_accepted(repo: GitRepo, report: str) -> None:
    repo.commit("config", {".errauto.toml": f"[checks.coverage]\ncommand = 'x'\nreport = '{report}'\n"})
    assert load(repo).checks[0].report == report


def test_one_check_of_weight_0_beside_weighted_ones_is_accepted(repo: GitRepo) -> None:
    repo.commit("config", {".errauto.toml": "[checks.tests]\ncommand = 'x'\n[checks.env]\ncommand = 'y'\n"
                                            "weight = 0\n"})
    assert [c.weight for c in load(repo).checks] == [0.40, 0.0]


def test_defaults_without_any_config(repo: GitRepo) -> None:
    cfg = load(repo)
    assert cfg.target == "main"
    assert cfg.auto_merge_threshold == 0.95 and cfg.pr_threshold == 0.80
    assert cfg.checks == ()
    assert cfg.source == "defaults"
    assert ".github/**" in cfg.protected_paths


def test_pyproject_tool_section(repo: GitRepo) -> None:
    repo.commit("pyproject", {"pyproject.toml": (
        "[project]\nname = 'x'\n\n[tool.errauto]\nworkers = 3\n"
        "[tool.errauto.checks.tests]\ncommand = 'python -m pytest -q'\n")})
    cfg = load(repo)
    assert cfg.workers == 3
    assert cfg.checks[0].name == "tests" and cfg.checks[0].weight == 0.40 and cfg.checks[0].gate
    assert cfg.checks[0].command == ("python", "-m", "pytest", "-q")
    assert cfg.source == "pyproject.toml on main"


def test_errauto_toml_wins_over_pyproject(repo: GitRepo) -> None:
    repo.commit("both", {"pyproject.toml": "[tool.errauto]\nworkers = 3\n", ".errauto.toml": "workers = 5\n"})
    assert load(repo).workers == 5


def test_committed_config_wins_over_working_tree(repo: GitRepo) -> None:
    repo.commit("config", {".errauto.toml": "workers = 4\n"})
    repo.write(".errauto.toml", "workers = 9\n")
    assert load(repo).workers == 4


def test_working_tree_is_the_fallback(repo: GitRepo) -> None:
    repo.write(".errauto.toml", "workers = 9\n")
    cfg = load(repo)
    assert cfg.workers == 9 and cfg.source == ".errauto.toml in the working tree"


def test_config_read_from_target_branch_not_from_head(repo: GitRepo) -> None:
    repo.commit("config", {".errauto.toml": "workers = 4\n"})
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("feature config", {".errauto.toml": "target = 'main'\nworkers = 7\n"})
    cfg = load(repo)  # HEAD is feature, whose config names main as the target
    assert cfg.target == "main" and cfg.workers == 4


def test_missing_target_branch_is_a_clear_error(repo: GitRepo) -> None:
    repo.commit("config", {".errauto.toml": "target = 'release'\n"})
    with pytest.raises(Exception) as info:
        load(repo)
    assert "release" in str(info.value) and "does not exist" in str(info.value)


def test_a_patch_cannot_change_the_rules_it_is_judged_by(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The committed config makes auto-merge impossible; the patch lowers the
    # threshold and fixes the bug. It must be judged by the committed rules.
    project = python_project(tmp_path / "p", config=config_toml(top="auto_merge_threshold = 1.0\npr_threshold = 1.0\n")
                             .replace("[checks.lint]", "[checks.lint]\nweight = 0.2\ngate = false\n").replace(
                                 'command = ["' + PYTHON + '", "tools/lint.py"]',
                                 'command = ["' + PYTHON + '", "-c", "raise SystemExit(1)"]'))
    lowered = project.read(".errauto.toml").replace("auto_merge_threshold = 1.0", "auto_merge_threshold = 0.1")
    patch = tmp_path / "p.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b"), ".errauto.toml": lowered}))

    code = main(["apply", str(patch), "--repo", str(project.path), "--json"])
    result = json.loads(capsys.readouterr().out)

    assert code == 1
    assert result["explanation"]["thresholds"]["auto_merge"] == 1.0
    assert any("protected" in g for g in result["explanation"]["gates"])


def test_command_line_thresholds_override(project: GitRepo, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    patch = tmp_path / "p.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b  " + "#" * 80)}))
    code = main(["apply", str(patch), "--repo", str(project.path), "--json",
                 "--auto-merge-threshold", "0.6", "--pr-threshold", "0.5"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["state"] == "merged"  # tests pass, lint fails: 0.67


def test_command_line_thresholds_are_validated(project: GitRepo, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    patch = tmp_path / "p.patch"
    patch.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    with pytest.raises(SystemExit) as info:
        main(["apply", str(patch), "--auto-merge-threshold", "2"])
    assert info.value.code == 2
    code = main(["apply", str(patch), "--repo", str(project.path),
                 "--auto-merge-threshold", "0.5", "--pr-threshold", "0.9"])
    assert code == 5
    assert "pr_threshold" in capsys.readouterr().err


def test_secret_env_values_are_redacted_once_the_config_is_read(
        repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    from errauto_daemon.redact import redact

    # A name of its own: a name is a secret for the rest of the process once a config declared it,
    # and this test may run after another (or after itself, on the other backend) in one process.
    name = f"DEPLOY_KEY_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(name, "s3cr3t-deploy-value")
    assert "s3cr3t-deploy-value" in redact("key=s3cr3t-deploy-value")  # not known as a secret yet
    repo.commit("config", {".errauto.toml": f"secret_env = ['{name}']\n"})
    cfg = load(repo)
    assert name in cfg.secrets()
    assert redact("key=s3cr3t-deploy-value") == "key=***"


def test_an_uncommitted_config_edit_is_named_once_on_stderr(project: GitRepo, tmp_path: Path) -> None:
    def apply(patch: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "errauto_daemon", "apply", str(patch), "--repo",
                               str(project.path)], capture_output=True, text=True, env=os.environ.copy())

    first, second = tmp_path / "first.patch", tmp_path / "second.patch"
    first.write_bytes(project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    second.write_bytes(project.make_patch({"NOTES.txt": "a note\n"}))
    # The working tree's config is the committed one: nothing to say.
    proc = apply(first)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    # Edited, not committed: the committed rules still apply, and the command says so, once.
    project.write(".errauto.toml", config_toml(top="auto_merge_threshold = 0.99"))
    proc = apply(second)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, proc.stderr
    assert ".errauto.toml in the working tree" in warnings[0]
    assert "differs from the committed .errauto.toml on main" in warnings[0]
    assert proc.stdout.startswith("#2 merged into main")


FULL = """
target = "main"
inbox = "incoming"
auto_merge_threshold = 0.9
pr_threshold = 0.7
workers = 3
push = "origin"
remote_url = "git@git.internal:team/app.git"
submit_refs = ["refs/for/*", "refs/fix/*"]
protected_paths = ["ci/**"]
secret_env = ["DEPLOY_KEY"]
max_revalidations = 0
[checks.tests]
command = "python -m pytest -q"
[checks.style]
command = ["ruff", "check", "."]
weight = 0.3
[github]
repo = "octo/project"
remote = " upstream "
labels = ["fix", "fix", "bot"]
rate_limit_wait = 5
[alerts]
disabled = ["rejected"]
[monitor]
backlog_warning = 2
[status]
minutes_per_manual_patch = 30
"""


def test_every_setting_survives_new_thresholds_unchanged() -> None:
    """`with_thresholds` passes the values of a built Config back through validation."""
    cfg = config.from_text(FULL, "a draft")
    assert cfg.github is not None and cfg.github.remote == "upstream" and cfg.github.labels == ("fix", "bot")
    assert [c.command for c in cfg.checks] == [("python", "-m", "pytest", "-q"), ("ruff", "check", ".")]
    again = config.with_thresholds(cfg, 0.95, None)
    assert again.auto_merge_threshold == 0.95 and again.pr_threshold == 0.7
    for name in config.Config.__dataclass_fields__:
        if name not in ("auto_merge_threshold", "source"):
            assert getattr(again, name) == getattr(cfg, name), name


@pytest.mark.parametrize("command, message", [
    ('"pytest \'unclosed"', "checks.tests.command cannot be split into words"),
    ("[]", "checks.tests.command is empty"),
    ('["pytest", 3]', "checks.tests.command must be a list of strings"),
])
def test_a_check_command_that_is_no_argv_names_the_key(command: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.from_text(f"target = \"main\"\n[checks.tests]\ncommand = {command}\n", "a draft")
    assert str(info.value).startswith(f"config error in a draft: {message}")


def test_evidence_settings_are_read(repo: GitRepo) -> None:
    repo.commit("config", {".errauto.toml": (
        "[checks.tests]\ncommand = 'pytest --junitxml=.errauto/junit.xml'\njunit = '.errauto/junit.xml'\n"
        "line_data = '.errauto/coverage.json'\nreruns = 0\n"
        "[evidence]\nmin_changed_lines_covered = 0.8\ntest_files = ['spec/*.py']\n")})
    cfg = load(repo)
    tests = cfg.checks[0]
    assert (tests.junit, tests.line_data, tests.reruns) == (".errauto/junit.xml", ".errauto/coverage.json", 0)
    assert cfg.evidence == config.EvidenceConfig(min_changed_lines_covered=0.8, test_files=("spec/*.py",))
    assert load_defaults_checks_have_no_reports()


def load_defaults_checks_have_no_reports() -> bool:
    check = config.CheckConfig("tests", ("pytest",), 1.0)
    return check.junit is None and check.line_data is None and check.reruns == 2


def test_a_remote_url_is_written_one_way_whichever_clone_reads_it(tmp_path: Path) -> None:
    """What names a repository among machines sharing one state (`remote_url`, or `push`'s URL)."""
    from errauto_daemon.repo import normal_url

    assert normal_url("git@git.internal:team/app.git", "/a") == normal_url("git@git.internal:team/app/", "/b") \
        == "git@git.internal:team/app"
    assert normal_url("https://git.internal/team/app.git", "/") == "https://git.internal/team/app"
    assert normal_url("ssh://git@git.internal:2222/team/app", "/") == "ssh://git@git.internal:2222/team/app"
    (tmp_path / "remote.git").mkdir()
    (tmp_path / "clone").mkdir()
    resolved = str((tmp_path / "remote.git").resolve())
    assert normal_url("../remote.git", tmp_path / "clone") == resolved  # as git resolves a relative remote
    assert normal_url(f"file://{tmp_path}/remote.git/", "/") == resolved
