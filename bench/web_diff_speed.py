"""`errauto web`'s submission page: what colouring and folding the diff cost, up to their bounds.

One held submission in a small state database is given, in turn, stored
patches of Python files of growing size, and its page is asked through
Flask's test client (the WSGI application as waitress calls it, without
the socket), run by run:

  typical         4 files, ~300 changed lines (as bench/web_speed.py)
  colour bound    2 files of 500 diff lines: 1,000 lines, all coloured
  past the bound  3 such files: the third plain
  big files       100 files of 500 diff lines: each starts closed, 5,000 lines shown
  many files      150 files of 5 lines: 100 shown, coloured

"first" is a patch's first view (the layout cache emptied before each
request), "again" a view of a patch laid out already.

    python bench/web_diff_speed.py [--runs 15]

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def python_file(name: str, added: int, removed: int = 0) -> list[str]:
    out = [f"diff --git a/{name} b/{name}", f"--- a/{name}", f"+++ b/{name}",
           f"@@ -1,{removed + 3} +1,{added + 3} @@", " def unchanged():", '     """A docstring', '     over lines."""']
    out += [f"-    value_{i} = compute({i}, 'old')" for i in range(removed)]
    out += [f"+    value_{i} = compute({i}, strict=True)  # {i}" for i in range(added)]
    return out


def patch(files: int, added: int, removed: int = 0) -> bytes:
    lines = ["From: A Person <a@example.org>", "Subject: [PATCH] A change", ""]
    for f in range(files):
        lines += python_file(f"src/module_{f}.py", added, removed)
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="errauto-bench-diff-"))
    os.environ["ERRAUTO_HOME"] = str(home / "state")
    from status_speed import populate

    from errauto_daemon.domain import State
    from errauto_daemon.store import QueueFilter, ReadOnlyStore, Store
    from errauto_daemon.web import diffview
    from errauto_daemon.web.app import WebConfig, create_app

    store = Store()
    populate(store.path, 2_000, 30.0)
    reader = ReadOnlyStore(store.path)
    held = reader.queue_page(QueueFilter(states=(State.AWAITING_REVIEW,)), size=1).submissions[0]
    client = create_app(WebConfig(token="bench", db_path=store.path)).test_client()
    assert client.get("/?token=bench").status_code == 303

    cases = {
        "typical": patch(4, 38, 37),
        "colour bound": patch(2, 496),
        "past the bound": patch(3, 496),
        "big files": patch(100, 496),
        "many files": patch(150, 1),
    }
    print(f"{'patch':<15} {'lines':>7} {'first':>8} {'max':>8} {'again':>8} {'page':>8}")
    for name, data in cases.items():
        held.patch_path().write_bytes(data)
        first, again = [], []
        for _ in range(args.runs):
            for times in (first, again):
                if times is first:
                    diffview.of_text.cache_clear()
                t0 = time.perf_counter()
                answer = client.get(f"/submissions/{held.id}")
                times.append(time.perf_counter() - t0)
                assert answer.status_code == 200
        lines = data.count(b"\n")
        print(f"{name:<15} {lines:>7,} {statistics.median(first) * 1000:6.1f}ms {max(first) * 1000:6.1f}ms "
              f"{statistics.median(again) * 1000:6.1f}ms {len(answer.data) / 1024:6.0f}KB")
    reader.close()
    store.close()
    shutil.rmtree(home)


if __name__ == "__main__":
    main()
