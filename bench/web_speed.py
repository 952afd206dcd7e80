"""`errauto web` on a state database with ~30,000 submissions: how long each page takes to serve.

Fills a fresh state database with bench/status_speed.py's realistic history
(100,000 events: ~29,500 submissions, their checks, explanations, alerts),
gives one held submission a stored patch of realistic size (a few files,
~300 changed lines) and check logs, and then asks the pages through Flask's
test client, in this process (the WSGI application as waitress calls it,
without the socket), run by run:

  queue           `/`, the first page (50 newest)
  queue deep      `/?below=<id>`, a page half-way down the history
  queue state     `/?state=awaiting_review`
  queue filters   `/?state=rejected&repo=...&source=pre-commit`
  queue title     `/?q=issue 1234` (a substring search over every title)
  submission      `/submissions/<id>`: the held one with its patch and logs
  changes         `/changes` (what an open page polls)
  trends          `/trends` (30 days: every chart, the health level)
  trends 365      `/trends?days=365`

    python bench/web_speed.py [--events 100000] [--runs 15]

Nothing is asserted; docs/performance.md records results.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from errauto_daemon.store import ReadOnlyStore, Store, Submission

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def a_patch(files: int = 4, lines: int = 75) -> bytes:
    out = ["From: A Person <a@example.org>", "Subject: [PATCH] Fix the parser's handling of nested quotes", "",
           "A longer explanation of the change.", "---", ""]
    for f in range(files):
        out += [f"diff --git a/src/module_{f}.py b/src/module_{f}.py", "index 1111111..2222222 100644",
                f"--- a/src/module_{f}.py", f"+++ b/src/module_{f}.py", f"@@ -10,{lines + 6} +10,{lines + 6} @@"]
        out += [" def unchanged():", "     return 1", " "]
        for i in range(lines):
            out += [f"-    value_{i} = compute({i})", f"+    value_{i} = compute({i}, strict=True)"][: 1 if i % 2 else 2]
        out += [f"+    extra_{i} = None" for i in range(lines - (lines + 1) // 2 - lines // 2)]
        out += [" ", " def after():", "     return 2"]
    return ("\n".join(out) + "\n").encode()


def give_a_held_submission_its_patch_and_logs(store: Store, reader: ReadOnlyStore) -> Submission:
    """The newest held submission, given a stored patch of realistic size and two 2,000-line check logs."""
    from errauto_daemon import paths
    from errauto_daemon.domain import CheckStatus, State
    from errauto_daemon.store import CheckRow, QueueFilter

    held = reader.queue_page(QueueFilter(states=(State.AWAITING_REVIEW,)), size=1).submissions[0]
    held.patch_path().write_bytes(a_patch())
    rows = []
    for i, name in enumerate(("tests", "lint")):
        log = paths.check_logs_dir() / f"bench-{i}.log"
        log.write_text("".join(f"line {n} of what the check printed\n" for n in range(2000)))
        rows.append(CheckRow(name, 1, CheckStatus.FAILED if i == 0 else CheckStatus.PASSED, i, 12.5, 0.0, 0.5,
                             f"exit {i}", str(log), "0" * 40))
    store.record_checks(held.id, store.next_attempt(held.id), "0" * 40, rows)
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="errauto-bench-web-"))
    os.environ["ERRAUTO_HOME"] = str(home / "state")
    from status_speed import populate

    from errauto_daemon.store import QueueFilter, ReadOnlyStore, Store
    from errauto_daemon.web.app import WebConfig, create_app

    store = Store()
    started = time.perf_counter()
    sizes = populate(store.path, args.events, 30.0)
    print(f"populated in {time.perf_counter() - started:.1f} s: " + ", ".join(f"{v:,} {k}" for k, v in sizes.items()))

    reader = ReadOnlyStore(store.path)
    held = give_a_held_submission_its_patch_and_logs(store, reader)
    newest = reader.queue_page(QueueFilter(), size=1).submissions[0].id
    repo = reader.filter_choices().repos[0]

    client = create_app(WebConfig(token="bench", db_path=store.path)).test_client()
    assert client.get("/?token=bench").status_code == 303
    pages = {
        "queue": "/",
        "queue deep": f"/?below={newest // 2}",
        "queue state": "/?state=awaiting_review",
        "queue filters": f"/?state=rejected&repo={repo}&source=pre-commit",
        "queue title": "/?q=issue+1234",
        "submission": f"/submissions/{held.id}",
        "changes": "/changes",
        "trends": "/trends",
        "trends 365": "/trends?days=365",
    }
    times: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(args.runs):
        for name, url in pages.items():
            t0 = time.perf_counter()
            answer = client.get(url)
            times[name].append(time.perf_counter() - t0)
            assert answer.status_code == 200, (url, answer.status_code)
    print(f"{'page':<15} {'median':>8} {'max':>8}")
    for name, values in times.items():
        print(f"{name:<15} {statistics.median(values) * 1000:7.1f}ms {max(values) * 1000:7.1f}ms")
    reader.close()
    store.close()
    shutil.rmtree(home)


if __name__ == "__main__":
    main()
