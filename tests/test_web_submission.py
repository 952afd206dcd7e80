"""The submission page of `errauto web`: the coloured and folded diff, the score's picture, the merged commit.

Submissions are made by real validations (`errauto apply` on a real
project), the pages asked through Flask's test client.
"""
from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from errauto_daemon.config import GithubConfig
from errauto_daemon.store import Store
from errauto_daemon.web import commits, diffview, scorechart
from tests.helpers.gitrepo import CALC, GitRepo, config_toml, python_project
from tests.test_web import TESTS_FAIL, XSS, apply, client_for

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    return python_project(tmp_path / "proj")


def file_section(page: str, name: str) -> str:
    """The `<details class="file">` element of one file of the page's diff."""
    found = re.search(r'<details class="file[^"]*"[^>]*>\s*<summary><span class="filename">' + re.escape(name)
                      + r"</span>.*?(?=<details class=\"file|</section>)", page, re.S)
    assert found, name
    return found[0]


def without_spans(text: str) -> str:
    return re.sub(r'<span class="[\w-]+">|</span>', "", text)


@pytest.mark.slow
def test_a_python_file_is_coloured_an_unknown_one_plain_and_script_tags_stay_text(
        project: GitRepo, tmp_path: Path) -> None:
    patch = project.make_patch({
        "calc.py": CALC.replace("a - b", "a + b"),
        "notes.zzz": "def plain(): return 1\n",
        "page.html": f"<p>hello</p>\n{XSS}\n",
        "banner.py": f'BANNER = "{XSS}"\n',
    })
    sub = apply(project, tmp_path, "colours", patch)
    client = client_for()
    page = client.get(f"/submissions/{sub['id']}").get_data(as_text=True)

    assert 'href="/static/diff.css"' in page
    css = client.get("/static/diff.css")
    assert css.status_code == 200 and "table.diff td.code .k {" in css.get_data(as_text=True)

    calc = file_section(page, "calc.py")
    assert re.search(r'<tr class="add"><td class="num"></td><td class="num">2</td><td class="code">\+'
                     r'    <span class="k">return</span> <span class="n">a</span> <span class="o">\+</span> '
                     r'<span class="n">b</span></td></tr>', calc), calc
    assert '<span class="k">def</span> <span class="nf">add</span>' in calc  # a context line, coloured too
    assert '<td class="code">+def plain(): return 1</td>' in file_section(page, "notes.zzz")

    assert "<script>alert" not in page
    banner = file_section(page, "banner.py")
    assert f'<span class="s2">&#34;{html.escape(XSS, quote=False)}&#34;</span>' in banner
    markup = file_section(page, "page.html")
    assert '<span class="nt">script</span>' in markup  # coloured as HTML, each tag's name a token
    assert "+" + html.escape(XSS, quote=False) in without_spans(markup)

    whole = client.get(f"/submissions/{sub['id']}/patch")  # the whole patch, as text, one click away
    assert f'<a class="whole-patch" href="/submissions/{sub["id"]}/patch">' in page
    assert whole.status_code == 200 and whole.mimetype == "text/plain"
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.get_data(as_text=True) == patch.decode()
    assert client.get("/submissions/9999/patch").status_code == 404


@pytest.mark.slow
def test_a_big_file_starts_folded_and_a_long_run_of_context_is_folded(project: GitRepo, tmp_path: Path) -> None:
    long_text = "".join(f"line {n}\n" for n in range(1, 61))
    project.commit("a long file", {"long.txt": long_text})
    project.edit({"long.txt": long_text.replace("line 5\n", "line five\n").replace("line 50\n", "line fifty\n"),
                  "big.txt": "".join(f"row {n}\n" for n in range(450))})
    patch = project.diff("--cached", "-U30")  # so much context that a run of it is long
    project.git("reset", "-q", "--hard", "HEAD")
    sub = apply(project, tmp_path, "big", patch)
    page = client_for().get(f"/submissions/{sub['id']}").get_data(as_text=True)

    big = file_section(page, "big.txt")
    assert big.startswith('<details class="file">')  # no `open`: it starts closed
    assert '<span class="added">+450</span>' in big and "450 changed lines: folded" in big
    long = file_section(page, "long.txt")
    assert long.startswith('<details class="file" open>')
    # Lines 6 to 49 are unchanged: the first and last three stay, 38 are folded (9 to 46).
    assert '<tr class="fold"><td colspan="3"><details><summary>38 unchanged lines (9–46)</summary>' in long
    assert '<td class="num">8</td><td class="num">8</td><td class="code"> line 8</td>' in long
    assert '<td class="num">47</td><td class="num">47</td><td class="code"> line 47</td>' in long


def svg_of(page: str) -> ET.Element:
    found = re.search(r"<svg .*?</svg>", page, re.S)
    assert found, "no picture of the score"
    return ET.fromstring(found[0])


@pytest.mark.slow
def test_the_score_picture_shows_the_stored_parts_against_the_thresholds(project: GitRepo, tmp_path: Path) -> None:
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    explanation = Store().get(held["id"]).explanation
    assert explanation is not None
    page = client_for().get(f"/submissions/{held['id']}").get_data(as_text=True)
    svg = svg_of(page)

    scale = scorechart.WIDTH - 2 * scorechart.PAD
    earned = {r.get("data-check"): float(r.get("width", "0")) for r in svg.iter(f"{SVG}rect")
              if r.get("data-earned") == "yes"}
    lost = {r.get("data-check"): float(r.get("width", "0")) for r in svg.iter(f"{SVG}rect")
            if r.get("data-earned") == "no"}
    parts = {p["check"]: p for p in explanation["parts"]}
    assert set(parts) == {"tests", "lint"}
    assert parts["tests"]["contribution"] == 0 and "tests" not in earned  # the failing tests earned nothing
    assert lost["tests"] == pytest.approx(parts["tests"]["weight"] * scale, abs=0.05)
    assert earned["lint"] == pytest.approx(parts["lint"]["contribution"] * scale, abs=0.05)

    lines = {line.get("data-threshold"): line for line in svg.iter(f"{SVG}line") if line.get("data-threshold")}
    for key in ("auto_merge", "pull_request"):
        stored = explanation["thresholds"][key]
        assert float(lines[key].get("data-value", "")) == pytest.approx(stored)
        assert float(lines[key].get("x1", "")) == pytest.approx(scorechart.PAD + stored * scale, abs=0.01)
    title = svg.findtext(f"{SVG}title") or ""
    assert title == (f"confidence {explanation['confidence']:.2f} of 1; "
                     f"auto-merge needs {explanation['thresholds']['auto_merge']:.2f}; "
                     f"pull request needs {explanation['thresholds']['pull_request']:.2f}")
    desc = svg.findtext(f"{SVG}desc") or ""
    for part in explanation["parts"]:
        words = f"{part['check']} ({part['status']}): {part['contribution']:.2f} of {part['weight']:.2f}"
        assert words in desc and words in page.split("<figcaption>")[1]


@pytest.mark.slow
def test_the_merged_commit_links_to_a_page_with_its_diff(project: GitRepo, tmp_path: Path) -> None:
    side = project.git("rev-parse", "HEAD").strip()
    project.git("checkout", "-q", "-b", "side")
    elsewhere = project.commit("not on main", {"other.txt": "x\n"})
    project.git("checkout", "-q", "main")
    fixed = apply(project, tmp_path, "fix", project.make_patch({"calc.py": CALC.replace("a - b", "a + b")}))
    assert fixed["state"] == "merged"
    merged = Store().get(fixed["id"]).merged_commit
    assert merged is not None and project.head() == merged
    client = client_for()
    page = client.get(f"/submissions/{fixed['id']}").get_data(as_text=True)
    here = f"/submissions/{fixed['id']}/commits/{merged}"
    assert f'<a class="commit-link" href="{here}"><code class="merged-commit">{merged}</code></a>' in page

    shown = client.get(here)
    assert shown.status_code == 200
    commit = shown.get_data(as_text=True)
    assert f'<code class="commit-id">{merged}</code>' in commit
    assert 'data-change=""' in commit  # a commit never changes: the page does not poll
    assert html.escape(project.git("log", "-1", "--format=%an <%ae>").strip(), quote=False) in commit
    assert project.git("log", "-1", "--format=%s").strip() in commit  # the message
    assert '<span class="filename">calc.py</span>' in commit
    assert re.search(r'<tr class="add"><td class="num"></td><td class="num">2</td><td class="code">\+'
                     r'    <span class="k">return</span>', commit)
    assert f'href="/submissions/{fixed["id"]}/commits/{side}"' in commit  # its parent, on main too
    assert client.get(f"/submissions/{fixed['id']}/commits/{side}").status_code == 200

    assert client.get(f"/submissions/{fixed['id']}/commits/{elsewhere}").status_code == 404  # not on main
    tree = project.git("rev-parse", "HEAD^{tree}").strip()
    for wrong in (tree, merged[:12], "../../etc/passwd", "0" * 40):
        assert client.get(f"/submissions/{fixed['id']}/commits/{wrong}").status_code == 404, wrong
    assert client.get(f"/submissions/9999/commits/{merged}").status_code == 404

    # Once the repository is configured for GitHub, the commit links to GitHub's page for it.
    project.commit("pull requests to GitHub", {
        ".errauto.toml": config_toml(extra='[github]\nrepo = "acme/proj"\n')})
    page = client.get(f"/submissions/{fixed['id']}").get_data(as_text=True)
    assert (f'<a class="commit-link" href="https://github.com/acme/proj/commit/{merged}" rel="noopener noreferrer">'
            f'<code class="merged-commit">{merged}</code></a>') in page
    assert f'<a class="commit-here" href="{here}">' in page


def test_a_commit_url_on_github_and_on_an_enterprise_server() -> None:
    sha = "a" * 40
    assert commits.commit_url(GithubConfig(repo="acme/proj"), sha) == f"https://github.com/acme/proj/commit/{sha}"
    assert commits.commit_url(GithubConfig(repo="acme/proj", api_url="https://ghe.example.org/api/v3"), sha) == \
        f"https://ghe.example.org/acme/proj/commit/{sha}"
    assert commits.commit_url(GithubConfig(repo="acme/proj", api_url="http://127.0.0.1:9/api/v3"), sha) is None


@pytest.mark.slow
def test_each_check_its_history_and_the_pull_request_are_shown(project: GitRepo, tmp_path: Path) -> None:
    held = apply(project, tmp_path, "held", project.make_patch({"calc.py": TESTS_FAIL}))
    store = Store()
    checks = store.checks(held["id"])
    client = client_for()
    page = client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    for index, check in enumerate(checks):
        assert f"<strong>{check.name}</strong>: {check.status}, {check.detail}, {check.duration:.2f}s" in page
        assert f'href="/submissions/{held["id"]}/checks/{index}/log">whole log</a>' in page
    assert '<details class="check failed" open>' in page and "AssertionError: 7 != 6" in page  # the tail
    history = page.split('<section class="history">')[1].replace("&#8594;", "→")
    assert [m for m in re.findall(r"<td>([\w ]*→ [\w]+)</td>", history)] == [
        " → queued", "queued → validating", "validating → awaiting_review"]

    store.set_fields(held["id"], pr_url="https://github.com/acme/proj/pull/7", pr_number=7, pr_state="open")
    page = client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    assert ('<a class="pr" href="https://github.com/acme/proj/pull/7" rel="noopener noreferrer">'
            "pull request: https://github.com/acme/proj/pull/7 (open, auto-merge off)</a>") in page
    store.set_fields(held["id"], pr_url="javascript:alert(1)")
    page = client.get(f"/submissions/{held['id']}").get_data(as_text=True)
    assert 'class="pr"' not in page and "pull request: javascript:alert(1)" in page  # shown, not a link


def test_a_commit_is_read_only_when_reachable_and_only_as_many_files_as_shown(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    root = repo.commit("the first", {"a.py": "x = 1\n"})
    wide = repo.commit("many files", {f"f{i:03}.txt": f"{i}\n" for i in range(diffview.MAX_FILES + 5)})
    repo.git("checkout", "-q", "-b", "side")
    aside = repo.commit("aside", {"b.txt": "b\n"})
    repo.git("checkout", "-q", "main")

    first = commits.read(str(repo.path), "main", root)
    assert first is not None and first.parents == () and "+x = 1" in first.patch  # a root commit: all added
    shown = commits.read(str(repo.path), "main", wide)
    assert shown is not None and shown.parents == (root,) and shown.message == "many files\n"
    assert shown.patch.count("diff --git ") == diffview.MAX_FILES and shown.more_files == 5
    assert commits.read(str(repo.path), "main", aside) is None  # not on main
    assert commits.read(str(repo.path), "side", aside) is not None
    assert commits.read(str(repo.path), "nowhere", root) is None
    inner = repo.path / "sub" / "dir"
    inner.mkdir(parents=True)  # not a repository itself: the one above it is not read in its place
    assert commits.read(str(inner), "main", root) is None
