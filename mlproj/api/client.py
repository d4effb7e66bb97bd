"""`mlproj.Client(url, token)`: a script on another machine drives `mlproj serve` (design.md §10): runs,
logs (whole or followed), cancel, and submits of published pipelines, endpoints and URIs. Only the
standard library: it installs with mlproj alone.

Errors from the server are `ClientError`s carrying its status code and its one-line message.
"""

from __future__ import annotations

import json
import time

from mlproj.errors import MlprojError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

FINAL = ("Finished", "Failed", "Canceled", "Skipped")


class ClientError(MlprojError):
    """The server said no (or could not be reached: `status` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class Client:
    """A client of one mlproj server, with one token."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        import urllib.parse

        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ClientError(0, f"server URL {url!r}: expected http(s)://HOST:PORT")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # --- runs ------------------------------------------------------------------------------------------

    def runs(
        self,
        *,
        status: str | None = None,
        experiment: str | None = None,
        kind: str | None = None,
        published: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Runs, newest first, page after page (at most `limit` of them)."""
        query: dict[str, Any] = {
            "status": status,
            "experiment": experiment,
            "kind": kind,
            "published": published,
        }
        yielded = 0
        cursor = None
        while True:
            page = self._json("GET", "/runs", query={**query, "cursor": cursor, "limit": 200})
            for run in page["runs"]:
                if limit is not None and yielded >= limit:
                    return
                yielded += 1
                yield run
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's record (design.md §5), with its steps when it is a pipeline."""
        return self._json("GET", f"/runs/{_segment(run_id)}")

    def logs(self, run_id: str, *, step: str | None = None) -> str:
        with self._open("GET", f"/runs/{_segment(run_id)}/logs", query={"step": step}) as answer:
            return str(answer.read().decode("utf-8", "replace"))

    def follow(self, run_id: str, *, step: str | None = None) -> Iterator[str]:
        """The log's lines as they are written, until the run ends (server-sent events)."""
        query = {"step": step, "follow": "1"}
        with self._open("GET", f"/runs/{_segment(run_id)}/logs", query=query, timeout=None) as answer:
            event = ""
            for raw in answer:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "end":
                        return
                    yield line[6:] if line.startswith("data: ") else line[5:]
                elif not line:
                    event = ""

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._json("POST", f"/runs/{_segment(run_id)}/cancel")

    def wait(self, run_id: str, *, timeout: float | None = None, poll: float = 1.0) -> dict[str, Any]:
        """The run's record once it has ended; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.run(run_id)
            if record["status"] in FINAL:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} did not end within {timeout} s")
            time.sleep(poll)

    # --- submits ---------------------------------------------------------------------------------------

    def submit(
        self,
        published_id: str,
        parameters: Mapping[str, Any] | None = None,
        experiment_name: str | None = None,
    ) -> dict[str, Any]:
        """Run a published pipeline; the new run's record."""
        body = {"experiment_name": experiment_name, "parameters": dict(parameters or {})}
        return self._json("POST", f"/published/{_segment(published_id)}/submit", body=body)

    def submit_endpoint(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        experiment_name: str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        body = {"experiment_name": experiment_name, "parameters": dict(parameters or {}), "version": version}
        return self._json("POST", f"/endpoints/{_segment(name)}/submit", body=body)

    def submit_uri(
        self,
        uri: str,
        parameters: Mapping[str, Any] | None = None,
        experiment_name: str | None = None,
        entry_point: str | None = None,
    ) -> dict[str, Any]:
        """Run a project or pipeline URI as the server sees it (an admin token)."""
        body = {
            "uri": uri,
            "parameters": dict(parameters or {}),
            "experiment_name": experiment_name,
            "entry_point": entry_point,
        }
        return self._json("POST", "/runs", body=body)

    def published(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/published")["published"])

    def endpoints(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/endpoints")["endpoints"])

    def health(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "/health", timeout=self.timeout) as answer:  # noqa: S310 - http(s) checked
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    # --- the wire ----------------------------------------------------------------------------------------

    def _json(
        self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None
    ) -> dict[str, Any]:
        with self._open(method, path, query=query, body=body) as answer:
            found = json.loads(answer.read().decode("utf-8"))
        if not isinstance(found, dict):
            raise ClientError(0, f"{self.url}: the answer to {method} {path} is not a JSON object")
        return found

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = -1.0,
    ) -> Any:
        import urllib.error
        import urllib.parse
        import urllib.request

        given = {key: value for key, value in (query or {}).items() if value is not None}
        url = f"{self.url}/api/v1{path}" + (f"?{urllib.parse.urlencode(given)}" if given else "")
        data = None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - http(s) checked
        opener = urllib.request.build_opener(_no_redirect())  # the token goes to this server only
        try:
            return opener.open(request, timeout=self.timeout if timeout == -1.0 else timeout)
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read().decode("utf-8"))["error"]
            except (ValueError, KeyError, TypeError):
                message = exc.reason
            raise ClientError(exc.code, str(message)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(0, f"cannot reach {self.url}: {reason}") from None


def _segment(value: str) -> str:
    """A path segment: IDs and names as they are, anything else escaped (never a `..` that walks)."""
    import urllib.parse

    text = urllib.parse.quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def _no_redirect() -> type:
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A redirect is an error: following it would send the token to wherever it points."""

        def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
            return None

    return NoRedirect
