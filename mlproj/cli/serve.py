"""`mlproj serve`: the REST API and the schedules (design.md §10), until stopped."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, not imported on the way to a command
if TYPE_CHECKING:
    from mlproj.ui.console import Console


def serve(
    app: Console,
    *,
    host: str,
    port: int,
    workers: int,
    allow_remote: bool,
    ssl_keyfile: str | None,
    ssl_certfile: str | None,
) -> int:
    from mlproj.home import Home
    from mlproj.server import serve as run_server

    return run_server(
        Home.from_env(),
        host=host,
        port=port,
        allow_remote=allow_remote,
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
        workers=workers,
        say=app.note,
    )
