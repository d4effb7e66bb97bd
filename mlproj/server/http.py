"""What every route of the server shares (design.md §10): the bearer token checked and its role
compared, a JSON body read within limits, errors as `{"error": "..."}` with the right 4xx code, and
the store of the thread that answers (SQLite calls run in Starlette's thread pool, never in the event
loop).

Bad input never reaches a 500: an unknown run or name is 404, a disabled pipeline 409, anything else
wrong with the request 400 (or 413, 415, 422 where they say more).
"""

from __future__ import annotations

import json
import math
import threading

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from mlproj.errors import InputError, MlprojError, RunNotFoundError
from mlproj.publish.tokens import allows, authenticate
from mlproj.runs.catalog import ConflictError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    from starlette.requests import Request

    from mlproj.home import Home
    from mlproj.runs.access import Token
    from mlproj.runs.store import Store

MAX_BODY = 1 << 20  # bytes of JSON a request may send
MAX_DRAIN = 32 << 20  # a larger body is read (and dropped) up to this, so that its sender hears the 413
TOKEN_PARAMETERS = ("token", "access_token", "api_key", "apikey", "key")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message[:2000]}, status_code=status, headers=headers)


class Call:
    """One request as a route's function sees it: the store, the token, the path and query values,
    the JSON body."""

    def __init__(
        self, store: Store, token: Token, request: Request, body: Any, stores: Callable[[], Store]
    ) -> None:
        self.store = store
        self.stores = stores  # the store of whichever thread asks (a stream runs in several)
        self.token = token
        self.path = dict(request.path_params)
        self.query = request.query_params
        self.body = body

    def text(self, name: str, *, limit: int = 200) -> str | None:
        value = self.query.get(name)
        if value is None or value == "":
            return None
        if len(value) > limit:
            raise HttpError(400, f"query parameter {name}: longer than {limit} characters")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.query.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise HttpError(400, f"query parameter {name}: expected a whole number") from None
        if not low <= number <= high:
            raise HttpError(400, f"query parameter {name}: expected {low} to {high}")
        return number

    def field(self, name: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
        """A member of the JSON body of the expected type (None when absent and not required)."""
        body = self.body if isinstance(self.body, dict) else {}
        value = body.get(name)
        if value is None:
            if required:
                raise HttpError(422, f"body: {name!r} is required")
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise HttpError(422, f"body: {name!r} has the wrong type")
        if not isinstance(value, kind):
            raise HttpError(422, f"body: {name!r} has the wrong type")
        return value


class Routes:
    """Wraps each route's (synchronous) function: token, role, body, store, errors."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._local = threading.local()

    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            from mlproj.runs.store import Store

            store = self._local.store = Store.open(self.home)
        return store

    def route(
        self, role: str, function: Callable[[Call], Response], *, body: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                token = await run_in_threadpool(self._authorize, bearer(request), role)
                payload = await read_json(request) if body else None  # read only for a known token
                return await run_in_threadpool(self._call, function, token, request, payload)
            except HttpError as exc:
                return error(exc.status, exc.message, _challenge(exc.status))

        handle.__name__ = function.__name__
        handle.__doc__ = function.__doc__
        return handle

    def _authorize(self, text: str, role: str) -> Token:
        """The token's record, if it may do what needs `role` (401, 403 otherwise)."""
        try:
            found = authenticate(self.store().access(), text)
        except MlprojError as exc:
            raise HttpError(500, str(exc)) from None
        if found is None:
            raise HttpError(401, "unknown or revoked token")
        if not allows(found.role, role):
            raise HttpError(403, f"this needs a {role} token; this one is {found.role}")
        return found

    def _call(
        self, function: Callable[[Call], Response], token: Token, request: Request, body: Any
    ) -> Response:
        try:
            return function(Call(self.store(), token, request, body, self.store))
        except HttpError as exc:
            return error(exc.status, exc.message)
        except RunNotFoundError as exc:
            return error(404, str(exc))
        except ConflictError as exc:
            return error(409, str(exc))
        except (InputError, UnicodeError) as exc:  # a value the store or a file name cannot hold
            return error(400, str(exc))
        except MlprojError as exc:  # the store or the machine, not the request
            return error(500, str(exc))


def bearer(request: Request) -> str:
    """The token of `Authorization: Bearer TOKEN`; a token in the URL is refused (it would be logged)."""
    if any(name.lower() in TOKEN_PARAMETERS for name in request.query_params):
        raise HttpError(400, "send the token in the Authorization header, not in the URL")
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HttpError(401, "expected the header Authorization: Bearer TOKEN")
    return value.strip()


async def read_json(request: Request) -> Any:
    """The JSON body: `application/json`, at most MAX_BODY bytes, UTF-8, an object."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HttpError(415, "expected a JSON body (Content-Type: application/json)")
    length = request.headers.get("content-length")
    if length is not None and not length.isdigit():
        raise HttpError(400, "Content-Length: expected a number of bytes")
    too_big = HttpError(413, f"the body is larger than {MAX_BODY} bytes")
    if length is not None and int(length) > MAX_DRAIN:
        raise too_big  # answered at once; the connection is closed on the rest
    data = bytearray()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > MAX_DRAIN:
            raise too_big
        if received <= MAX_BODY:
            data += chunk
    if received > MAX_BODY:  # read to its end, so that the client hears the answer
        raise too_big
    try:
        body = json.loads(bytes(data).decode("utf-8")) if data else {}
    except UnicodeDecodeError:
        raise HttpError(400, "the body is not UTF-8") from None
    except RecursionError:
        raise HttpError(400, "the body nests deeper than this server reads") from None
    except ValueError as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HttpError(422, "expected a JSON object")
    _check_text(body)
    return body


def _check_text(body: Any) -> None:
    """Every string of the body is text UTF-8 can hold (JSON's `\\ud800` escapes can make one that is
    not); numbers are finite. Walked without recursion: the body may nest deep."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += list(item.keys()) + list(item.values())
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise HttpError(400, "the body holds a string with an unpaired surrogate") from None
        elif isinstance(item, float) and not math.isfinite(item):
            raise HttpError(400, "the body holds a number that is not finite")


def _challenge(status: int) -> dict[str, str] | None:
    return {"WWW-Authenticate": 'Bearer realm="mlproj"'} if status == 401 else None


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)
