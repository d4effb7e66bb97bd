"""`mlproj envs list | prune`: the cached environments."""

from __future__ import annotations

import time

from mlproj.cli.render import size_text

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def list_envs(app: Console) -> int:
    from mlproj.envs.cache import EnvCache
    from mlproj.home import Home
    from mlproj.runs.record import iso_utc

    envs = list(EnvCache(Home.from_env()).entries())
    rows = [
        {
            "fingerprint": env.fingerprint,
            "manager": env.manager,
            "python": env.python,
            "size_bytes": env.size_bytes(),
            "created_at": iso_utc(env.created_at),
            "last_used": iso_utc(env.last_used),
            "source": env.source,
            "path": env.path,
        }
        for env in sorted(envs, key=lambda e: e.last_used, reverse=True)
    ]
    if app.as_json:
        app.json(rows)
        return 0
    if not rows:
        app.print("No cached environments.")
        return 0
    from mlproj.cli.render import table_lines

    headers = ["FINGERPRINT", "MANAGER", "PYTHON", "SIZE", "LAST USED", "SOURCE"]
    lines = [
        [
            str(row["fingerprint"]),
            str(row["manager"]),
            str(row["python"]),
            size_text(int(row["size_bytes"] or 0)),
            str(row["last_used"])[:19].replace("T", " "),
            str(row["source"] or "-"),
        ]
        for row in rows
    ]
    for line in table_lines(app.out, headers, lines):
        app.print(line)
    return 0


def prune_envs(app: Console, *, older_than: float | None) -> int:
    from mlproj.envs.prune import prune
    from mlproj.execution.reconcile import environments_in_use
    from mlproj.home import Home
    from mlproj.runs.store import Store

    home = Home.from_env()
    in_use: set[str] = set()
    if home.db_path.exists():
        store = Store.open(home)
        try:
            in_use = environments_in_use(store)
        finally:
            store.close()
    result = prune(home, None if older_than is None else time.time() - older_than * 86400, in_use)
    for env in result.removed:
        app.print(f"removed {env.fingerprint} ({env.manager}, Python {env.python}, {size_text(env.freed)})")
    for fingerprint in result.kept_in_use:
        app.print(f"kept {fingerprint}: an unfinished run uses it")
    if result.orphans:
        app.print(f"removed {result.orphans} unfinished build folder(s)")
    if not (result.removed or result.orphans):
        app.print("Nothing to prune.")
    return 0
