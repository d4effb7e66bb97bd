"""`mlproj config show [PATH]`: every setting as a run of PATH (a project folder or a pipeline file; the
current folder by default) would see it, and where each value came from (design.md §12)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def show(app: Console, *, path: str | None) -> int:
    import json
    from pathlib import Path

    from mlproj.config import settings
    from mlproj.errors import InputError
    from mlproj.home import Home

    where = Path(path or ".").absolute()
    if not where.exists():
        raise InputError(f"{path}: no such folder or file")
    folder = where if where.is_dir() else where.parent
    folders = tuple(dict.fromkeys((str(folder), str(Path.cwd()))))
    found = settings(folders, str(Home.from_env().root))
    if app.as_json:
        app.json({item.key: {"value": item.value, "source": item.source} for item in found})
        return 0
    rows = []
    for item in found:
        shown = "" if item.value is None else item.value
        text = json.dumps(shown) if isinstance(shown, (bool, dict)) else str(shown)
        rows.append([item.key, text, item.source])
    from mlproj.cli.render import table_lines

    for line in table_lines(app.out, ["KEY", "VALUE", "SOURCE"], rows):
        app.print(line)
    return 0
