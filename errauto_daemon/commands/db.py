"""`errauto db`: which state database this errauto uses, and bringing its schema up to date."""
from __future__ import annotations

import json
from argparse import Namespace

from errauto_daemon.store import SCHEMA_VERSION, Store
from errauto_daemon.store.where import configured, is_postgres, shown


def migrate(*, as_json: bool) -> int:
    """Create the schema, or upgrade it to this errauto's; a newer one is refused (exit 3)."""
    where = configured()
    store = Store(where, migrate=True)
    found = store.schema_was
    store.close()
    backend = "postgresql" if is_postgres(where) else "sqlite"
    if as_json:
        print(json.dumps({"backend": backend, "database": shown(where), "schema": SCHEMA_VERSION,
                          "was": found}))
    elif found == SCHEMA_VERSION:
        print(f"errauto: {shown(where)} ({backend}) has schema {SCHEMA_VERSION}, this errauto's: nothing to do")
    else:
        print(f"errauto: {shown(where)} ({backend}): schema {found} -> {SCHEMA_VERSION}")
    return 0


def status(*, as_json: bool) -> int:
    """Where the state database is and which schema it has, without changing it."""
    where = configured()
    store = Store(where)
    jobs = store.has_job_tables() if store.shared else None  # a server's validations are jobs
    store.close()
    backend = "postgresql" if is_postgres(where) else "sqlite"
    if as_json:
        print(json.dumps({"backend": backend, "database": shown(where), "schema": SCHEMA_VERSION,
                          "job_queue": jobs}))
    else:
        queue = "" if jobs is None else ", job queue " + ("ready" if jobs else "missing: run `errauto db migrate`")
        print(f"errauto: state database {shown(where)} ({backend}), schema {SCHEMA_VERSION}{queue}")
    return 0


def cli_migrate(args: Namespace) -> int:
    return migrate(as_json=args.json)


def cli_status(args: Namespace) -> int:
    return status(as_json=args.json)
