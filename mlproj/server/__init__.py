"""`mlproj serve` (design.md §10): the REST API under /api/v1 and the schedules, on uvicorn.

Runs the server starts are detached (each has its own supervisor): stopping the server, or killing
it, leaves them running and recorded, and a server started again finds them in the store. On
SIGTERM or Ctrl-C it stops taking requests, lets those under way finish (for at most
`GRACEFUL_S` seconds: followed logs are cut), and stops the schedules.

Serving beyond loopback needs `allow_remote`; TLS is uvicorn's (`ssl_keyfile`, `ssl_certfile`).
"""

from __future__ import annotations

import contextlib
import ipaddress

from mlproj.errors import InputError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from starlette.applications import Starlette

    from mlproj.home import Home

DEFAULT_PORT = 8700
GRACEFUL_S = 5


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    home: Home,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    allow_remote: bool = False,
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
    workers: int = 1,
    say: Callable[[str], None] = print,
) -> int:
    """Serve until stopped; the exit code. `workers` > 1: that many server processes share the port
    (each its own event loop, threads and connections to the store)."""
    if not is_loopback(host) and not allow_remote:
        raise InputError(
            f"--host {host}: not a loopback address; serving beyond this machine needs --allow-remote"
        )
    if not 1 <= port <= 65535:
        raise InputError(f"--port {port}: expected 1 to 65535")
    if (ssl_keyfile is None) != (ssl_certfile is None):
        raise InputError("--ssl-keyfile and --ssl-certfile go together")
    try:
        import jinja2  # noqa: F401 - the web UI's, checked before anything starts
        import uvicorn

        from mlproj.server.app import build_app
    except ImportError as exc:
        raise InputError(
            f"mlproj serve needs the server extra: pip install 'mlproj[server]' ({exc.name} is missing)"
        ) from None
    from mlproj.runs.store import Store

    Store.open(home).close()  # the store is there and of this version, before a request needs it

    scheme = "https" if ssl_certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    banner = f"listening on {scheme}://{shown}:{port} (MLPROJ_HOME {home.location})"
    options = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_S,
        "ssl_keyfile": ssl_keyfile,
        "ssl_certfile": ssl_certfile,
        "server_header": False,
    }
    if workers > 1:  # uvicorn starts them from an import string; they read MLPROJ_HOME
        import os

        os.environ["MLPROJ_HOME"] = home.location
        say(f"mlproj serve: {workers} workers {banner}")
        uvicorn.run("mlproj.server:worker_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
        return 0
    config = uvicorn.Config(build_app(home, lifespan(home, say, banner)), **options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def lifespan(
    home: Home, say: Callable[[str], None], banner: str | None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """What a server process does around its requests: the schedules' ticker, and saying so."""

    @contextlib.asynccontextmanager
    async def around(_app: Starlette) -> AsyncIterator[None]:
        from mlproj.publish.schedules import Ticker

        ticker = Ticker(home, say)
        ticker.start()
        if banner:
            say(f"mlproj serve: {banner}")
        try:
            yield
        finally:
            ticker.stop()
            say("mlproj serve: stopped; the runs it started go on")

    return around


def worker_app() -> Starlette:
    """One of `serve(workers=N)`'s processes (uvicorn's factory)."""
    import sys

    from mlproj.home import Home
    from mlproj.server.app import build_app

    home = Home.from_env()

    def say(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return build_app(home, lifespan(home, say, None))
