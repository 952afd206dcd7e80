from __future__ import annotations

from errauto_daemon.main import main

raise SystemExit(main())
