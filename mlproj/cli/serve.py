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


def ui(app: Console, *, port: int, open_browser: bool) -> int:
    """`mlproj ui`: the server on loopback, and a one-time link that logs in as an admin (whoever can
    run this owns MLPROJ_HOME, and could make an admin token anyway)."""
    from mlproj.home import Home
    from mlproj.runs.store import Store
    from mlproj.server import serve as run_server

    home = Home.from_env()
    try:
        from mlproj.server.ui.sessions import new_login_code
    except ImportError as exc:
        from mlproj.errors import InputError

        raise InputError(
            f"mlproj ui needs the server extra: pip install 'mlproj[server]' ({exc.name})"
        ) from None
    store = Store.open(home)
    try:
        code = new_login_code(store.access(), "admin")
    finally:
        store.close()
    link = f"http://127.0.0.1:{port}/login?code={code}"
    app.print(link)
    app.note("Open the link above (it works once, within two minutes); Ctrl-C stops the server.")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(link,)).start()
    return run_server(home, host="127.0.0.1", port=port, say=app.note)
