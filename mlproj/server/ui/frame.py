"""What every page of the web UI shares (design.md §11): its session (or the way to the login page), its
role, same-origin and CSRF checks for actions, the store of the thread that answers, the templates."""

from __future__ import annotations

import threading
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse

from mlproj.errors import InputError, MlprojError, RunNotFoundError
from mlproj.publish.tokens import allows
from mlproj.runs.catalog import ConflictError
from mlproj.runs.record import iso_utc
from mlproj.server.ui import TEMPLATES
from mlproj.server.ui.sessions import Session, Sessions

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    from starlette.requests import Request
    from starlette.responses import Response

    from mlproj.home import Home
    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store

MAX_FORM = 64 << 10  # bytes a form may send
LOG_TAIL = 256 << 10  # bytes of a log a run's page shows at first


class Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PageCall:
    """One request as a page sees it."""

    def __init__(
        self, frame: Frame, store: Store, session: Session, request: Request, form: dict[str, str]
    ) -> None:
        self.frame = frame
        self.store = store
        self.session = session
        self.path = dict(request.path_params)
        self.query = request.query_params
        self.form = form

    def text(self, name: str, limit: int = 200) -> str | None:
        value = self.query.get(name)
        if value is None or not value.strip():
            return None
        if len(value) > limit:
            raise Denied(400, f"{name}: longer than {limit} characters")
        return value.strip()

    def allows(self, role: str) -> bool:
        return allows(self.session.role, role)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return self.frame.render(template, status=status, session=self.session, **values)


class Frame:
    """Wraps each page's (synchronous) function: session, role, form, CSRF, store, errors."""

    def __init__(self, home: Home) -> None:
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        self.home = home
        self.sessions = Sessions(home)
        self._local = threading.local()
        self.templates = Environment(
            loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True)
        )
        self.templates.globals.update(when=when, duration=duration)

    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            from mlproj.runs.store import Store

            store = self._local.store = Store.open(self.home)
        return store

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def page(
        self, role: str, function: Callable[[PageCall], Response], *, action: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """A page (GET) or an action (`action`: a POST, same origin, with the session's CSRF value)."""

        async def handle(request: Request) -> Response:
            try:
                form = await read_form(request) if action else {}
                if action:
                    same_origin(request)
                return await run_in_threadpool(self._call, function, role, request, form, action)
            except Denied as exc:
                return self.render(
                    "message.html", exc.status, title="Not allowed", message=exc.message, error=True
                )

        handle.__name__ = function.__name__
        return handle

    def session(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies.get(self.sessions.cookie), self.store().access())

    def _call(
        self,
        function: Callable[[PageCall], Response],
        role: str,
        request: Request,
        form: dict[str, str],
        action: bool,  # noqa: FBT001 - passed through run_in_threadpool, which takes no keywords
    ) -> Response:
        session = self.session(request)
        if session is None:
            if action:
                raise Denied(403, "log in first")
            if request.headers.get("hx-request"):  # a part of a page: the whole page goes to log in
                return HTMLResponse("", status_code=401, headers={"HX-Redirect": "/login"})
            import urllib.parse

            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urllib.parse.urlencode({"next": target}), status_code=303)
        if action and not self.sessions.csrf_ok(session, form.get("csrf")):
            raise Denied(403, "this form is not one this server gave (reload the page and try again)")
        if not allows(session.role, role):
            raise Denied(403, f"this needs a {role} token; you logged in with a {session.role} one")
        try:
            return function(PageCall(self, self.store(), session, request, form))
        except RunNotFoundError as exc:
            return self.render(
                "message.html", 404, session=session, title="Not found", message=str(exc), error=True
            )
        except ConflictError as exc:
            return self.render(
                "message.html", 409, session=session, title="Refused", message=str(exc), error=True
            )
        except (InputError, UnicodeError) as exc:
            return self.render(
                "message.html", 400, session=session, title="Bad request", message=str(exc), error=True
            )
        except MlprojError as exc:
            return self.render(
                "message.html", 500, session=session, title="Failed", message=str(exc), error=True
            )


# Pages are not framed elsewhere, send nothing to third parties, load scripts only from here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, at most MAX_FORM bytes, the last value of each name."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Denied(415, "expected a form")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_FORM:
            raise Denied(413, "the form is too large")
    import urllib.parse

    try:
        pairs = urllib.parse.parse_qsl(bytes(data).decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise Denied(400, "the form is not UTF-8") from None
    return dict(pairs)


def same_origin(request: Request) -> None:
    """An action comes from a page of this server: its Origin (or, without one, its Referer) is ours."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        raise Denied(403, "an action needs its Origin header")
    import urllib.parse

    given = urllib.parse.urlsplit(origin)
    if given.netloc != host or given.scheme not in ("http", "https"):
        raise Denied(403, "an action from another site is refused")


def when(timestamp: float | None) -> str:
    return (iso_utc(timestamp) or "")[:19].replace("T", " ")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def log_tail(record: RunRecord) -> tuple[list[str], int]:
    """The last lines of the run's log, and where the stream goes on from."""
    path = Path(record.log_path) if record.log_path else None
    if path is None or not path.is_file():
        return [], 0
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        start = max(0, size - LOG_TAIL)
        handle.seek(start)
        data = handle.read(size - start)
    end = data.rfind(b"\n") + 1  # a partial last line comes with the stream, or now if the run ended
    if record.is_final:
        end = len(data)
    lines = data[:end].decode("utf-8", "replace").splitlines()
    if start:
        lines = lines[1:]  # the first, cut
    return lines, start + end
