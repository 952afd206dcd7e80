"""`errauto watch add / list / remove`: the repositories the daemon watches."""
from __future__ import annotations

from argparse import Namespace

from errauto_daemon import config as config_mod
from errauto_daemon import inbox, output
from errauto_daemon.presence import wake
from errauto_daemon.repo import open_repo, remote_name, repo_root
from errauto_daemon.store import Store


def add(directory: str, *, as_json: bool = False) -> int:
    repo = open_repo(directory)
    config = config_mod.load(repo)  # a broken config is reported now, not in the daemon's log
    root = repo_root(repo)
    added = Store().add_repo(root, remote_name(repo, config.push, config.remote_url))
    folder = inbox.ensure_inbox(root)
    wake()
    if as_json:
        print(output.dumps({"repo": root, "added": added, "inbox": str(folder) if folder is not None else None,
                            "target": config.target, "submit_refs": list(config.submit_refs)}))
        return 0
    where = f"; drop patches into {folder}/" if folder is not None else " (bare: refs only)"
    print(("watching " if added else "already watching ") + root + where)
    print(f"  target {config.target}, submit refs {', '.join(config.submit_refs)}")
    return 0


def list_(*, as_json: bool = False) -> int:
    repos = Store().repos()
    if as_json:
        print(output.dumps(repos))
        return 0
    if not repos:
        print("no repositories are watched (errauto watch add DIR)")
    for root in repos:
        print(root)
    return 0


def remove(directory: str, *, as_json: bool = False) -> int:
    store = Store()
    try:
        root = repo_root(open_repo(directory))
    except Exception:
        root = directory.rstrip("/")
    removed = store.remove_repo(root)
    if removed:
        wake()
    if as_json:
        print(output.dumps({"repo": root, "removed": removed}))
    else:
        print(f"stopped watching {root}" if removed else f"{root} was not watched")
    return 0


# -- the command line (main.py dispatches each parsed command here) --------------

def cli_add(args: Namespace) -> int:
    """`errauto watch add`."""
    return add(args.dir, as_json=args.json)


def cli_list(args: Namespace) -> int:
    """`errauto watch list`."""
    return list_(as_json=args.json)


def cli_remove(args: Namespace) -> int:
    """`errauto watch remove`."""
    return remove(args.dir, as_json=args.json)
