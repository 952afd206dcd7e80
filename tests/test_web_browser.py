"""`errauto web` in a real browser: Playwright driving the system's Chromium.

Each test serves a real state database, filled by real validations
(`errauto apply` on a real project), with a real `errauto web` on
127.0.0.1, and looks at the pages as a reviewer does: it clicks, types,
and checks what git and the store say afterwards. Screenshots of each page
are saved under the test's temporary directory.

Chromium is Debian's `chromium` package, which `.ci/run` installs. Where it
is missing the tests are skipped, except in CI, where that is a failure.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Locator, Page, sync_playwright
from playwright.sync_api import expect as playwright_expect
from playwright.sync_api._generated import LocatorAssertions

from errauto_daemon.store import Store
from tests.helpers import web as web_server
from tests.helpers.gitrepo import CALC, GitRepo, python_project
from tests.test_web import LINT_FAILS, TESTS_FAIL, XSS, apply, cli, xss_patch

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As root in a container Chromium's own sandbox cannot start; the rest keeps it from reaching
# for Google's services at every start (this machine's network is closed).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000  # for what the page shows after a validation or a poll


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium of the test's own: Playwright's threads end with it, as every test's must."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return python_project(tmp_path / "proj")


@pytest.fixture
def web() -> Iterator[str]:
    """A real `errauto web` on 127.0.0.1; yields the URL it printed, token included."""
    Store().close()
    proc, url = web_server.start()
    try:
        yield url
    finally:
        web_server.stop(proc)


@pytest.fixture
def dialogs() -> list[str]:
    """The messages of every dialog (alert, confirm, prompt) a page opened."""
    return []


@pytest.fixture
def page(browser: Browser, dialogs: list[str]) -> Iterator[Page]:
    """A page in a fresh context. Whatever the browser reports as an error (a script's exception,
    something the Content-Security-Policy blocked, a failed load) fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors: list[str] = []

    def dismissed(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def reported(message: ConsoleMessage) -> None:
        # A page answered with an error status on purpose (403 without the token, 409 for a refused
        # decision) is the tests' to judge; an error about anything else is an error of the page.
        if message.type == "error" and message.location.get("url") != opened.url:
            errors.append(f"{message.text} ({message.location.get('url')})")

    opened.on("dialog", dismissed)
    opened.on("console", reported)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
        assert errors == [], errors
    finally:
        context.close()


def base(url: str) -> str:
    return url.split("?token=")[0]


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


def expect(locator: Locator) -> LocatorAssertions:
    return playwright_expect(locator)


# -- the tests -------------------------------------------------------------------------------


def test_a_request_without_the_token_is_refused(web: str, page: Page, tmp_path: Path) -> None:
    answer = page.goto(base(web))
    assert answer is not None and answer.status == 403
    expect(page.locator("body")).to_contain_text("token")
    assert page.locator("table.queue").count() == 0
    shot(page, tmp_path, "refused")
    answer = page.goto(web)  # with it: a cookie, and the address without the token
    assert answer is not None and answer.status == 200
    assert page.url == base(web)
    expect(page.locator("h1")).to_have_text("Queue")


def test_a_reviewer_opens_a_held_patch_sees_the_failing_test_and_approves_it(
        project: GitRepo, web: str, page: Page, dialogs: list[str], tmp_path: Path) -> None:
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    assert held["state"] == "awaiting_review"
    tip = project.head()

    page.goto(web)
    row = page.locator(f'tr[data-id="{held["id"]}"]')
    expect(row.locator(".state")).to_have_text("awaiting_review")
    shot(page, tmp_path, "queue")
    row.locator("td.title a").click()

    expect(page.locator("h1")).to_contain_text(f"#{held['id']}")
    expect(page.locator("table.diff tr.add").first).to_contain_text("return a * b + 1")
    expect(page.locator("details.check.failed").first).to_contain_text("AssertionError: 7 != 6")
    expect(page.locator(".score")).to_contain_text("tests must pass to auto-merge")
    shot(page, tmp_path, "submission")

    page.get_by_role("button", name="Approve").click()  # a gate failed: refused without "merge anyway"
    expect(page.locator(".problem")).to_contain_text("--force")
    assert project.head() == tip
    page.get_by_label("merge anyway").check()
    page.get_by_role("button", name="Approve").click()

    expect(page.locator("p.status strong")).to_have_text("merged")
    sub = Store().get(held["id"])
    assert sub.state == "merged" and project.head() == sub.merged_commit
    expect(page.locator(".merged-commit")).to_contain_text(sub.merged_commit or "")
    assert "a * b + 1" in project.read("calc.py")
    expect(page.locator(".history")).to_contain_text("approved by")
    assert dialogs == []


def test_a_reviewer_rejects_with_a_reason(project: GitRepo, web: str, page: Page,
                                          tmp_path: Path) -> None:
    held = apply(project, tmp_path, "lint", project.make_patch({"calc.py": LINT_FAILS}))
    tip = project.head()
    page.goto(web)
    page.locator(f'tr[data-id="{held["id"]}"] td.title a').click()
    page.get_by_label("Reason").fill("not the fix we want")
    page.get_by_role("button", name="Reject").click()

    expect(page.locator("p.status strong")).to_have_text("rejected")
    expect(page.locator(".facts")).to_contain_text("not the fix we want")
    sub = Store().get(held["id"])
    assert sub.state == "rejected" and sub.reason is not None and sub.reason.endswith("not the fix we want")
    assert project.head() == tip
    page.goto(base(web))
    expect(page.locator(f'tr[data-id="{held["id"]}"] .state')).to_have_text("rejected")
    shot(page, tmp_path, "rejected")

    # Validate it again: answered at once, the page follows the validation to its decision.
    page.locator(f'tr[data-id="{held["id"]}"] td.title a').click()
    page.get_by_label("reopen a person's rejection").check()
    page.get_by_role("button", name="Validate again").click()
    expect(page.locator("p.status strong")).to_have_text("awaiting_review")  # lint still fails
    expect(page.locator(".history")).to_contain_text("retried by")
    assert Store().get(held["id"]).state == "awaiting_review"


def test_a_patch_made_of_script_tags_renders_as_text(project: GitRepo, web: str, page: Page,
                                                    dialogs: list[str], tmp_path: Path) -> None:
    sub = apply(project, tmp_path, "xss", xss_patch(project))
    page.goto(web)
    link = page.locator(f'tr[data-id="{sub["id"]}"] td.title a')
    expect(link).to_have_text(XSS)
    page.goto(base(web) + f"?q={XSS}")
    expect(page.locator(f'tr[data-id="{sub["id"]}"] td.title a')).to_have_text(XSS)
    link = page.locator(f'tr[data-id="{sub["id"]}"] td.title a')
    link.click()
    expect(page.locator("h1")).to_contain_text(XSS)
    expect(page.locator(".filename").first).to_have_text(f"docs/{XSS}.txt")
    expect(page.locator("table.diff tr.add").first).to_contain_text(XSS)
    assert page.locator("script:not([src])").count() == 0  # nothing from the patch became a script
    shot(page, tmp_path, "xss")
    page.wait_for_timeout(500)
    assert dialogs == []


def test_a_decision_made_elsewhere_appears_without_reloading(project: GitRepo, web: str,
                                                           page: Page, tmp_path: Path) -> None:
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    page.goto(web)
    expect(page.locator(f'tr[data-id="{held["id"]}"] .state')).to_have_text("awaiting_review")
    page.evaluate("window.notReloaded = true")

    # A new submission, validated and decided by errauto outside the browser, shows up by itself.
    decided = apply(project, tmp_path, "fix", project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    expect(page.locator(f'tr[data-id="{decided["id"]}"] .state')).to_have_text(decided["state"])
    # And a decision on one shown: approved from the command line.
    done = cli("queue", "approve", str(held["id"]), "--force")
    assert done.returncode == 0, done.stderr
    row = page.locator(f'tr[data-id="{held["id"]}"]')
    expect(row.locator(".state")).to_have_text("merged")
    expect(row).to_have_class(re.compile(r"\bchanged\b"))
    assert page.evaluate("window.notReloaded") is True
    shot(page, tmp_path, "queue-live")


def test_a_submission_page_follows_its_submission_but_not_under_a_typing_reader(
        project: GitRepo, web: str, page: Page, tmp_path: Path) -> None:
    first = apply(project, tmp_path, "lint", project.make_patch({"calc.py": LINT_FAILS}))
    second = apply(project, tmp_path, "tests", project.make_patch({"calc.py": TESTS_FAIL}))
    page.goto(web)
    page.goto(base(web) + f"submissions/{first['id']}")
    page.evaluate("window.notReloaded = true")
    assert cli("queue", "reject", str(first["id"]), "--reason", "decided in the terminal").returncode == 0
    expect(page.locator("p.status strong")).to_have_text("rejected")
    expect(page.locator(".facts")).to_contain_text("decided in the terminal")
    assert page.evaluate("window.notReloaded") is True

    page.goto(base(web) + f"submissions/{second['id']}")
    page.get_by_label("Reason").fill("half a thought")
    assert cli("queue", "reject", str(second["id"]), "--reason", "decided elsewhere").returncode == 0
    expect(page.locator("#stale")).to_be_visible()  # what the reader typed stays; a note says reload
    assert page.get_by_label("Reason").input_value() == "half a thought"
    expect(page.locator("p.status strong")).to_have_text("awaiting_review")
    page.reload()
    expect(page.locator("p.status strong")).to_have_text("rejected")


def test_the_trends_page_draws_what_status_counts(project: GitRepo, web: str, page: Page, tmp_path: Path) -> None:
    merged = apply(project, tmp_path, "fix", project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    held = apply(project, tmp_path, "tests", project.make_patch({"calc.py": TESTS_FAIL}))
    assert (merged["state"], held["state"]) == ("merged", "awaiting_review")
    page.goto(web)
    page.get_by_role("link", name="Trends").click()

    expect(page.locator("h1")).to_have_text("Trends")
    expect(page.locator("#health .level").first).to_have_text(re.compile(r"^(ok|warning|critical)$"))
    expect(page.locator("ul.summary")).to_contain_text("2 submissions")
    expect(page.locator("ul.summary")).to_contain_text("auto-merge rate 50%")
    assert page.locator("svg.chart").count() >= 4
    for svg in page.locator("svg.chart").all():  # drawn, not just present: a real box on the page
        box = svg.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50
    expect(page.locator("ul.thresholds")).to_contain_text("0.95")
    shot(page, tmp_path, "trends")
