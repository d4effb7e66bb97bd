"""What completes runs and entry points, read from the store and the project as a shell asks (click
calls `mlproj` back with _MLPROJ_COMPLETE set; mlproj.cli.clickapp hands these to it)."""

from __future__ import annotations

SHOWN = 200  # the newest runs offered


def runs_for(incomplete: str) -> list[tuple[str, str]]:
    """(value, help) of the runs whose ID or name starts with `incomplete`, newest first, and `last`;
    nothing (not an error) when there is no store."""
    from mlproj.home import Home

    home = Home.from_env()
    if not home.db_path.exists():
        return []
    from mlproj.runs.store import Store

    found: list[tuple[str, str]] = []
    if "last".startswith(incomplete):
        found.append(("last", "the newest run"))
    store = Store.open(home)
    try:
        for record in store.list_runs(limit=SHOWN):
            about = f"{record.status.value} {record.display_name}"
            if record.run_id.startswith(incomplete.lower()):
                found.append((record.run_id, about))
            if record.run_name and record.run_name.startswith(incomplete):
                found.append((record.run_name, f"{record.status.value} {record.run_id[:12]}"))
    finally:
        store.close()
    return list(dict.fromkeys(found))


def entry_points_of(uri: str) -> list[str]:
    """The entry points of a local project folder (nothing for anything else: no fetching for a Tab)."""
    from pathlib import Path

    from mlproj.errors import MlprojError

    folder = Path(uri).expanduser()
    if not uri or not folder.is_dir():
        return []
    from mlproj.spec import load_project

    try:
        return sorted(load_project(folder).entry_points)
    except (MlprojError, OSError):
        return []
