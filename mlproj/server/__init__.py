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
    say: Callable[[str], None] = print,
) -> int:
    """Serve until stopped; the exit code."""
    if not is_loopback(host) and not allow_remote:
        raise InputError(
            f"--host {host}: not a loopback address; serving beyond this machine needs --allow-remote"
        )
    if (ssl_keyfile is None) != (ssl_certfile is None):
        raise InputError("--ssl-keyfile and --ssl-certfile go together")
    try:
        import uvicorn

        from mlproj.server.app import build_app
    except ImportError as exc:
        raise InputError(
            f"mlproj serve needs the server extra: pip install 'mlproj[server]' ({exc.name} is missing)"
        ) from None
    from mlproj.runs.store import Store

    Store.open(home).close()  # the store is there and of this version, before a request needs it

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        from mlproj.publish.schedules import Ticker

        ticker = Ticker(home, say)
        ticker.start()
        scheme = "https" if ssl_certfile else "http"
        shown = f"[{host}]" if ":" in host else host
        say(f"mlproj serve: listening on {scheme}://{shown}:{port} (MLPROJ_HOME {home.location})")
        try:
            yield
        finally:
            ticker.stop()
            say("mlproj serve: stopped; the runs it started go on")

    config = uvicorn.Config(
        build_app(home, lifespan),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_S,
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
