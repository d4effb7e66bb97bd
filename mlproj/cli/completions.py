"""What completes runs and entry points, read from the store and the project as a shell asks (click
calls `mlproj` back with _MLPROJ_COMPLETE set; mlproj.cli.clickapp hands these to it)."""

from __future__ import annotations

SHOWN = 200  # the newest runs offered


def runs_for(incomplete: str) -> list[tuple[str, str]]:
    """(value, help) of the runs whose ID or name starts with `incomplete`, newest first, and `last`;
    nothing (never an error: a Tab must not print one) when the store cannot be read at once. The
    store is read as it is, read-only, waiting a second at most for a writer."""
    import sqlite3

    from mlproj.home import Home

    home = Home.from_env()
    found: list[tuple[str, str]] = [("last", "the newest run")] if "last".startswith(incomplete) else []
    if not home.db_path.exists():
        return found
    try:
        db = sqlite3.connect(f"file:{home.db_path}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = db.execute(
                "SELECT run_id, run_name, status, uri FROM runs WHERE parent_run_id IS NULL "
                "ORDER BY created_at DESC LIMIT ?",
                (SHOWN,),
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return found
    for run_id, name, status, uri in rows:
        if str(run_id).startswith(incomplete.lower()):
            found.append((run_id, f"{status} {name or uri or ''}".strip()))
        if name and str(name).startswith(incomplete):
            found.append((name, f"{status} {str(run_id)[:12]}"))
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
