from __future__ import annotations

import sys

if sys.argv[1:3] == ["hook-impl", "post-receive"]:
    # The server hook runs on every push, on the pusher's clock: skip the
    # argument parser and everything main.py imports (~10 ms).
    from errauto_daemon.commands.hook_impl import post_receive, read_stdin_lines

    raise SystemExit(post_receive(read_stdin_lines()))

from errauto_daemon.main import main  # noqa: E402

raise SystemExit(main())
