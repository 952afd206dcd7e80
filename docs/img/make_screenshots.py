"""The screenshots in docs/web.md, made from `errauto demo`'s own decisions.

Runs the demo in a temporary home, serves its state with the real `errauto
web`, and photographs the queue, the submission the tamper check held (the
demo's seventh patch), one whose tests fail, and the trends page in
headless Chromium. Writes web-*.png next to this file.

    python docs/img/make_screenshots.py [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="errauto-shots-"))
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "ERRAUTO_HOME": str(home / "unused")}
    demo = subprocess.run([sys.executable, "-m", "errauto_daemon", "demo"], env=env, capture_output=True,
                          text=True, check=True)
    state = re.search(r"^state:\s+(\S+)", demo.stdout, re.MULTILINE)
    assert state, demo.stdout
    env["ERRAUTO_HOME"] = state[1]
    server = subprocess.Popen([sys.executable, "-m", "errauto_daemon", "web", "--port", "0"], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = re.search(r"http://\S+", server.stdout.readline())
        assert url, "errauto web did not start"
        base = url[0].split("?")[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url[0])
            page.screenshot(path=str(HERE / "web-queue.png"))
            for name, path in (("web-submission.png", "submissions/7"), ("web-submission-failing.png",
                                                                          "submissions/3"),
                               ("web-trends.png", "trends")):
                page.goto(base + path)
                page.screenshot(path=str(HERE / name), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(Path(state[1]).parent, ignore_errors=True)


if __name__ == "__main__":
    main()
