"""`errauto web` as a reviewer meets it: a real server, a real socket, a real browser.

Fills a state database with bench/status_speed.py's realistic history (about
30,000 submissions, as bench/web_speed.py does, with one held submission
given a realistic patch and check logs), starts the real `errauto web` on
127.0.0.1 and measures, run by run:

  http       each page through the socket with `requests` (waitress, the WSGI
             app, the read-only store): the time to the whole answer
  browser    headless Chromium (Debian's, driven by Playwright), a fresh
             context per run: the browser's own first-paint and
             first-contentful-paint times for the queue, the submission and trends,
             and, as the baseline of the same browser, code and assets in the
             same run, the queue page of a second `errauto web` serving an
             empty state database

    python bench/web_browser_speed.py [--events 100000] [--runs 10]

Nothing is asserted; docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAINT = """() => Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))"""


def fill(events: int) -> tuple[int, str]:
    """The history, and the held submission's id and a repository to filter by."""
    from status_speed import populate
    from web_speed import give_a_held_submission_its_patch_and_logs

    from errauto_daemon.store import ReadOnlyStore, Store

    store = Store()
    sizes = populate(store.path, events, 30.0)
    print("populated: " + ", ".join(f"{v:,} {k}" for k, v in sizes.items()))
    reader = ReadOnlyStore(store.path)
    held = give_a_held_submission_its_patch_and_logs(store, reader)
    repo = reader.filter_choices().repos[0]
    reader.close()
    store.close()
    return held.id, repo


def serve(state: Path) -> tuple[subprocess.Popen[str], str]:
    from tests.helpers import web as web_server

    return web_server.start({**os.environ, "ERRAUTO_HOME": str(state)})


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="errauto-bench-browser-"))
    os.environ["ERRAUTO_HOME"] = str(home / "state")
    held, repo = fill(args.events)
    proc, url = serve(home / "state")
    empty_proc, empty_url = serve(home / "empty")
    base, token = url.split("?token=")
    empty_base, empty_token = empty_url.split("?token=")
    pages = {"queue": "", "queue filtered": f"?state=rejected&repo={repo}&source=pre-commit",
             "submission": f"submissions/{held}", "trends": "trends"}
    try:
        session = requests.Session()
        assert session.get(url, timeout=60).status_code == 200
        http: dict[str, list[float]] = {name: [] for name in pages}
        for _ in range(args.runs):
            for name, path in pages.items():
                t0 = time.perf_counter()
                answer = session.get(base + path, timeout=60)
                http[name].append((time.perf_counter() - t0) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
        print(f"{'http':<16} {'median':>9} {'max':>9}")
        for name, values in http.items():
            print(f"{name:<16} {median_ms(values)} {max(values):7.1f}ms")

        from playwright.sync_api import sync_playwright

        from errauto_daemon.web.security import COOKIE
        paint: dict[str, list[float]] = {"empty queue (baseline)": [], "queue": [], "submission": [], "trends": []}
        contentful: dict[str, list[float]] = {name: [] for name in paint}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            for _ in range(args.runs):
                for name, origin, key, target in (
                        ("empty queue (baseline)", empty_base, empty_token, empty_base), ("queue", base, token, base),
                        ("submission", base, token, f"{base}submissions/{held}"),
                        ("trends", base, token, f"{base}trends")):
                    context = browser.new_context()  # holding the cookie the token's first use sets
                    context.add_cookies([{"name": COOKIE, "value": key, "url": origin}])
                    page = context.new_page()
                    page.goto(target, wait_until="load")
                    page.wait_for_function("() => performance.getEntriesByType('paint').length >= 2")
                    times = page.evaluate(PAINT)
                    paint[name].append(times["first-paint"])
                    contentful[name].append(times["first-contentful-paint"])
                    context.close()
            browser.close()
        print(f"{'browser':<24} {'first paint':>12} {'first contentful':>17} {'ratio':>7}")
        baseline = statistics.median(contentful["empty queue (baseline)"])
        for name in paint:
            ratio = statistics.median(contentful[name]) / baseline
            print(f"{name:<24} {median_ms(paint[name]):>12} {median_ms(contentful[name]):>17} {ratio:6.2f}x")
        print("(medians, from the start of each navigation; each run a fresh browser context that holds the"
              " cookie the token sets)")
    finally:
        for server in (proc, empty_proc):
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(home)


if __name__ == "__main__":
    main()
