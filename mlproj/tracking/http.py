"""A small HTTP/1.1 client for a tracking server's REST API: JSON requests on one kept-alive connection.

Why not `http.client`: it imports `ssl` and the `email` package whatever the URL, about 15 ms of
start-up on every tracked `mlproj run` (bench/startup.py). This speaks only what a tracking server
needs (a request with a body of known length; a response with `Content-Length`, chunked, or until the
connection closes), and imports `ssl` only for an `https` server.
"""

from __future__ import annotations

import os
import socket

from mlproj.structs import dataclass

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_HEADER = 64 * 1024
MAX_BODY = 256 * 1024 * 1024


class HttpError(OSError):
    """The server could not be reached, or did not answer in HTTP."""


class _Closed(HttpError):
    """The server closed the connection."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


@dataclass(frozen=True)
class Endpoint:
    """Where a server is: `http(s)://[user:password@]host[:port][/prefix]`."""

    scheme: str
    host: str
    port: int
    prefix: str  # the path the server is mounted under, without its trailing slash

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
            raise ValueError(f"{url!r}: has control characters")
        scheme, sep, rest = url.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in ("http", "https"):
            raise ValueError(f"{url}: expected http://host[:port] or https://host[:port]")
        netloc, slash, path = rest.partition("/")
        netloc = netloc.rpartition("@")[2]  # credentials travel in headers, never in the request line
        if netloc.startswith("["):  # [IPv6]:port
            host, _, port_text = netloc[1:].partition("]")
            port_text = port_text.removeprefix(":")
        else:
            host, _, port_text = netloc.partition(":")
        if not host:
            raise ValueError(f"{url}: no host")
        try:
            port = int(port_text) if port_text else (443 if scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"{url}: the port {port_text!r} is not a number") from None
        if not 0 < port < 65536:
            raise ValueError(f"{url}: the port {port} is out of range")
        return cls(scheme=scheme, host=host, port=port, prefix=("/" + path).rstrip("/") if slash else "")

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


class Session:
    """Requests to one server over one connection, opened again when the server closed it."""

    def __init__(
        self, endpoint: Endpoint, headers: Mapping[str, str], timeout: float, *, verify: bool | str = True
    ) -> None:
        self.endpoint = endpoint
        self.headers = dict(headers)
        self.timeout = timeout
        self.verify = verify  # False: no TLS check; a path: that CA bundle
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._sent: tuple[str, bytes] = ("GET", b"")  # the request waiting for its answer
        self._reused = False
        self._answered = False  # a byte of the answer was read

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer = b""

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> Response:
        """Send one request (path under the endpoint's prefix, query included) and read its answer.
        A kept-alive connection that the server had closed is opened again once."""
        self.send(method, path, body, content_type)
        return self.receive()

    def send(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> None:
        """Send a request without waiting for its answer (`receive` reads it): the server works on it
        while mlproj goes on. One request at a time on a session."""
        head = [f"{method} {self.endpoint.prefix}{path} HTTP/1.1", f"Host: {self._host_header()}"]
        head += [f"{name}: {value}" for name, value in self.headers.items()]
        if body is not None:
            head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        elif method in ("POST", "PUT", "PATCH"):
            head.append("Content-Length: 0")
        try:
            encoded = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise HttpError(f"{self.endpoint.origin}: a header or path that HTTP cannot carry") from None
        self._sent = (method, encoded + (body or b""))
        self._reused = self._sock is not None
        try:
            self._connect().sendall(self._sent[1])
        except OSError as exc:
            self.close()
            if not self._reused:
                raise HttpError(f"{self.endpoint.origin}: {_reason(exc)}") from None
            self._resend()

    def receive(self) -> Response:
        """The answer to the request `send` sent. A kept-alive connection that the server had closed
        before reading it (it closed without a byte of answer) is opened again, and the request sent
        again, once; a timeout or a broken answer never sends a request again (a POST would be done
        twice)."""
        method = self._sent[0]
        try:
            return self._read_response(method)
        except (OSError, HttpError) as exc:
            stale = isinstance(exc, (_Closed, ConnectionResetError)) and not self._answered
            self.close()
            if not (self._reused and stale):
                raise HttpError(f"{self.endpoint.origin}: {_reason(exc)}") from None
        self._resend()
        try:
            return self._read_response(method)
        except (OSError, HttpError) as exc:
            self.close()
            raise HttpError(f"{self.endpoint.origin}: {_reason(exc)}") from None

    def _resend(self) -> None:
        self._reused = False
        try:
            self._connect().sendall(self._sent[1])
        except OSError as exc:
            self.close()
            raise HttpError(f"{self.endpoint.origin}: {_reason(exc)}") from None

    def _host_header(self) -> str:
        return self.endpoint.origin.partition("://")[2]

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection(
                    (self.endpoint.host, self.endpoint.port), timeout=self.timeout
                )
            except UnicodeError:  # a host name IDNA cannot encode
                raise HttpError(f"bad host name {self.endpoint.host!r}") from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.endpoint.scheme == "https":
                try:
                    sock = self._wrap(sock)
                except BaseException:
                    sock.close()
                    raise
            self._sock = sock
        return self._sock

    def _wrap(self, sock: socket.socket) -> socket.socket:
        import ssl  # only for https servers

        if self.verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=self.verify if isinstance(self.verify, str) else None)
        client_cert = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
        if client_cert:
            context.load_cert_chain(client_cert)
        return context.wrap_socket(sock, server_hostname=self.endpoint.host)

    def _recv(self) -> bytes:
        if self._sock is None:
            raise HttpError("the connection was closed")
        chunk = self._sock.recv(65536)
        if not chunk:
            raise _Closed("the server closed the connection")
        self._answered = True
        return chunk

    def _read_until(self, marker: bytes, limit: int) -> bytes:
        while marker not in self._buffer:
            if len(self._buffer) > limit:
                raise HttpError("an answer line too long")
            self._buffer += self._recv()
        line, _, self._buffer = self._buffer.partition(marker)
        return line

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._buffer += self._recv()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_response(self, method: str) -> Response:
        self._answered = bool(self._buffer)
        while True:
            status, headers = self._read_head()
            if status >= 200 or status == 101:  # 1xx interim answers are skipped
                break
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise HttpError("a Content-Length that is not a number") from None
            if not 0 <= length <= MAX_BODY:
                raise HttpError(f"an answer of {length} bytes")
            body = self._read_exactly(length)
        else:
            body = self._read_to_close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status=status, body=body)

    def _read_head(self) -> tuple[int, dict[str, str]]:
        lines = self._read_until(b"\r\n\r\n", MAX_HEADER).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if (
            len(parts) < 2
            or not parts[0].startswith("HTTP/")
            or not (parts[1].isascii() and parts[1].isdigit())
        ):
            raise HttpError(f"not an HTTP answer: {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            size_line = self._read_until(b"\r\n", 1024).split(b";")[0].strip()
            try:
                size = int(size_line, 16) if size_line and size_line.isascii() and size_line.isalnum() else -1
            except ValueError:
                size = -1
            if size < 0:
                raise HttpError("a bad chunk size")
            if size == 0:
                while self._read_until(b"\r\n", MAX_HEADER):  # trailers, up to the empty line
                    pass
                return body
            if len(body) + size > MAX_BODY:
                raise HttpError("an answer too large")
            body += self._read_exactly(size)
            self._read_exactly(2)

    def _read_to_close(self) -> bytes:
        body, self._buffer = self._buffer, b""
        if self._sock is None:
            raise HttpError("the connection was closed")
        while chunk := self._sock.recv(65536):
            body += chunk
            if len(body) > MAX_BODY:
                raise HttpError("an answer too large")
        self.close()
        return body


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "no answer (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__
