"""The pages of the web UI (design.md §11): runs (filtered, newest first, paged, statuses refreshed), a
run (its record, parameters, steps, outputs, its log followed over server-sent events, cancel),
published pipelines, endpoints and schedules; logging in and out."""

from __future__ import annotations

import asyncio
import html
import os
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, StreamingResponse

from mlproj.errors import InputError, RunNotFoundError
from mlproj.runs.status import RunStatus
from mlproj.server.runs import decode_cursor, encode_cursor, find
from mlproj.server.ui.frame import SECURITY_HEADERS, Denied, PageCall, duration, log_tail, when

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from typing import Any

    from starlette.requests import Request
    from starlette.responses import Response

    from mlproj.runs.record import RunRecord
    from mlproj.server.ui.frame import Frame

PAGE = 50
MAX_LISTED = 1000  # files an output folder's page lists
STREAM_POLL = 0.25
FILTERS = ("status", "experiment", "kind", "name", "tag", "published", "endpoint", "schedule")


def runs_page(call: PageCall) -> Response:
    import urllib.parse

    runs, filters, cursor, next_cursor = _runs(call)
    query = urllib.parse.urlencode({k: v for k, v in filters.items() if v})
    return call.render(
        "runs.html",
        runs=runs,
        filters=filters,
        statuses=[s.value for s in RunStatus],
        query=query + ("&" + urllib.parse.urlencode({"cursor": cursor}) if cursor else ""),
        cursor=cursor,
        next_cursor=next_cursor,
        next_query=query + "&" + urllib.parse.urlencode({"cursor": next_cursor}) if next_cursor else "",
        first_query=query,
        filtered=any(filters.values()),
        pick=True,
    )


def runs_rows(call: PageCall) -> Response:
    """The rows of the runs page as they are now (htmx refreshes them every 2 seconds)."""
    runs, filters, _cursor, _next = _runs(call)
    return call.render("rows.html", runs=runs, filtered=any(filters.values()), pick=True)


def _runs(call: PageCall) -> tuple[list[RunRecord], dict[str, str | None], str | None, str | None]:
    from mlproj.execution.reconcile import reconcile

    filters = {name: call.text(name) for name in FILTERS}
    status = None
    if filters["status"]:
        try:
            status = RunStatus(filters["status"])
        except ValueError:
            raise InputError(f"status {filters['status']!r}: expected one of the statuses") from None
    if filters["kind"] not in (None, "project", "pipeline"):
        raise InputError(f"kind {filters['kind']!r}: expected project or pipeline")
    tag = None
    if filters["tag"]:
        key, equals, value = filters["tag"].partition("=")
        if not equals or not key.strip():
            raise InputError(f"tag {filters['tag']!r}: expected NAME=VALUE")
        tag = (key.strip(), value.strip())
    published = call.store.catalog().published(filters["published"]).id if filters["published"] else None
    cursor = call.text("cursor", limit=300)
    before = decode_cursor(cursor)
    if status is not None:
        for unfinished in call.store.unfinished():
            reconcile(call.store, unfinished)
    records = call.store.list_runs(
        experiment=filters["experiment"],
        status=status,
        kind=filters["kind"],
        published=published,
        name=filters["name"],
        tag=tag,
        endpoint=filters["endpoint"],
        schedule=filters["schedule"],
        limit=PAGE + 1,
        before=before,
    )
    page = [r if r.is_final else reconcile(call.store, r) for r in records[:PAGE]]
    next_cursor = encode_cursor(page[-1]) if len(records) > PAGE else None
    return page, filters, cursor, next_cursor


def run_page(call: PageCall) -> Response:
    record = find(call.store, call.path["run_id"])
    steps = call.store.steps_of(record.run_id) if record.kind.value == "pipeline" else []
    lines, offset = log_tail(record)
    fields = [
        ("run", record.run_id),
        ("kind", record.kind.value),
        ("experiment", record.experiment),
        ("uri", record.uri or ""),
        ("entry point", record.entry_point or ""),
        ("commit", record.commit or ""),
        ("backend", record.backend),
        ("created (UTC)", when(record.created_at)),
        ("duration", duration(record.duration_s)),
        ("exit code", "" if record.exit_code is None else str(record.exit_code)),
        ("error", record.error or ""),
        ("why", record.reason or ""),
        ("reused from", record.reused_from or ""),
        ("published pipeline", record.published_pipeline_id or ""),
        ("tags", ", ".join(f"{k}={v}" for k, v in record.tags.items())),
    ]
    mlflow_link = metrics = ""
    if record.mlflow_run_id:
        from mlproj.tracking.runs import describe

        mlflow_link, metrics = describe(record)  # a link for a server, and the latest metrics
        fields.append(("metrics", metrics))
    from mlproj.server.ui.pipeline import pipeline_values

    return call.render(
        "run.html",
        run=record,
        **(pipeline_values(record, steps) if steps else {}),
        fields=[(key, value) for key, value in fields if value],
        mono={"run", "commit", "uri", "reused from", "published pipeline", "metrics"},
        mlflow_link=mlflow_link,
        lines=lines,
        offset=offset,
        can_cancel=call.allows("submit") and not record.is_final,
        can_rerun=_may_rerun(call, record),
    )


def _may_rerun(call: PageCall, record: RunRecord) -> bool:
    """A published pipeline's run may be rerun by a `submit` token; anything else runs code of the
    caller's choosing, which is for `admin` tokens only (as `POST /api/v1/runs`)."""
    if record.kind.value == "step":
        return False
    return call.allows("submit" if record.published_pipeline_id else "admin")


def output(call: PageCall) -> Response:
    """A run's output: a file, downloaded; a folder, its files listed (`?file=` downloads one of them).
    Nothing outside the output is ever served, whatever the path asks."""
    from starlette.responses import FileResponse

    record = find(call.store, call.path["run_id"])
    name = call.path["name"]
    if name not in record.outputs:
        raise RunNotFoundError(f"run {record.run_id} has no output {name[:80]!r}")
    root = Path(record.outputs[name])
    wanted = call.text("file", limit=1000)
    if root.is_file() and wanted is None:
        return FileResponse(root, filename=root.name, headers={"X-Content-Type-Options": "nosniff"})
    if not root.is_dir():
        raise RunNotFoundError(f"the output {name!r} of run {record.run_id} is not there any more")
    if wanted is not None:
        target = Path(os.path.realpath(root / wanted))
        if not target.is_file() or os.path.commonpath([target, os.path.realpath(root)]) != os.path.realpath(
            root
        ):
            raise RunNotFoundError(f"the output {name!r} has no file {wanted[:80]!r}")
        return FileResponse(target, filename=target.name, headers={"X-Content-Type-Options": "nosniff"})
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())[:MAX_LISTED]
    return call.render("output.html", run=record, name=name, files=files, more=len(files) == MAX_LISTED)


def cancel_action(call: PageCall) -> Response:
    from mlproj.server.runs import request_cancel

    record = find(call.store, call.path["run_id"])
    if not record.is_final:
        request_cancel(call.store, record)  # the page it goes back to shows the request recorded
    return RedirectResponse(f"/runs/{record.run_id}", status_code=303)


def rerun_action(call: PageCall) -> Response:
    """Run the run again (design.md §12), with the parameters the form gives (`param.NAME`)."""
    from mlproj.publish.rerun import rerun_options
    from mlproj.submit import submit

    record = find(call.store, call.path["run_id"])
    if not _may_rerun(call, record):
        raise Denied(403, "your token may not run this again")
    given = {
        key.removeprefix("param."): value for key, value in call.form.items() if key.startswith("param.")
    }
    changed = {key: value for key, value in given.items() if value != record.parameters.get(key)}
    options = rerun_options(call.store, record, changed)
    new = submit(call.store, options, detach=True)
    return RedirectResponse(f"/runs/{new.run_id}", status_code=303)


# --- the log, live ---------------------------------------------------------------------------------------


def stream(frame: Frame) -> Callable[[Request], Any]:
    """`/runs/{id}/stream`: the log's new lines (`line` events, escaped HTML) and the status (`status`
    events) until the run ends (`end`)."""

    async def handle(request: Request) -> Response:
        session = await run_in_threadpool(frame.session, request)
        if session is None:
            return frame.render("message.html", 403, title="Not allowed", message="log in first", error=True)
        try:
            run_id = request.path_params["run_id"]
            record = await run_in_threadpool(lambda: find(frame.store(), run_id))
            # Where to go on from: the browser's own reconnection says (Last-Event-ID), else the page.
            offset = int(request.headers.get("last-event-id") or request.query_params.get("offset", "0"))
        except (InputError, ValueError):
            return frame.render(
                "message.html", 404, session=session, title="Not found", message="no such run", error=True
            )
        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
        return StreamingResponse(
            _events(frame, record.run_id, max(0, offset)), media_type="text/event-stream", headers=headers
        )

    return handle


async def _events(frame: Frame, run_id: str, offset: int) -> AsyncIterator[str]:
    """The new lines of each chunk of the log as one `line` event (escaped HTML, its `id` the offset it
    ends at), the status when it changes, and `end`; a last line without its newline comes at the end."""
    from mlproj.execution.reconcile import find_run
    from mlproj.server.runs import read_chunk

    shown = None
    partial = b""
    while True:
        record = await run_in_threadpool(lambda: find_run(frame.store(), run_id))
        path = Path(record.log_path) if record.log_path else None
        chunk = await run_in_threadpool(read_chunk, path, offset)
        offset += len(chunk)
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        if record.is_final and not chunk and partial:
            lines, partial = [partial], b""
        if lines:
            yield f"id: {offset - len(partial)}\nevent: line\n{_as_data(_spans(lines))}\n"
        if record.status.value != shown:
            shown = record.status.value
            badge = (
                f'<span id="status" class="status status-{shown}" sse-swap="status" hx-swap="outerHTML">'
                f"{shown}</span>"
            )
            yield f"event: status\ndata: {badge}\n\n"
        if record.is_final and not chunk:
            yield f"event: end\ndata: {shown}\n\n"
            return
        if not chunk:
            await asyncio.sleep(STREAM_POLL)


def _spans(lines: list[bytes]) -> str:
    return "".join(
        f'<span class="line">{html.escape(line.decode("utf-8", "replace").replace(chr(13), ""))}\n</span>'
        for line in lines
    )


def _as_data(text: str) -> str:
    """Text as the `data:` lines of one event (each of its lines one `data:` line)."""
    return "".join(f"data: {line}\n" for line in text.split("\n"))


# --- logging in and out ------------------------------------------------------------------------------------


def login_routes(frame: Frame) -> dict[str, Callable[[Request], Any]]:
    from mlproj.publish.tokens import authenticate, digest
    from mlproj.server.ui.frame import read_form, same_origin
    from mlproj.server.ui.sessions import LIFETIME, use_login_code

    def session_response(
        target: str, name: str, role: str, token_digest: str | None, *, secure: bool
    ) -> Response:
        session = frame.sessions.make(name, role, token_digest)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            frame.sessions.cookie,
            session.value,
            max_age=int(LIFETIME),
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )
        return response

    async def login_form(request: Request) -> Response:
        code = request.query_params.get("code")
        target = _local(request.query_params.get("next"))
        secure = request.url.scheme == "https"
        if code:  # `mlproj ui`'s one-time link
            role = await run_in_threadpool(lambda: use_login_code(frame.store().access(), code))
            if role is None:
                return frame.render(
                    "login.html", 403, message="That link has been used or has expired.", next=target
                )
            return session_response(target, "mlproj ui", role, None, secure=secure)
        return frame.render("login.html", next=target, message=None)

    async def login(request: Request) -> Response:
        try:
            same_origin(request)
            form = await read_form(request)
        except Denied as exc:
            return frame.render("login.html", exc.status, message=exc.message, next="/")
        token = form.get("token", "").strip()
        target = _local(form.get("next"))
        found = await run_in_threadpool(lambda: authenticate(frame.store().access(), token))
        if found is None:
            return frame.render("login.html", 401, message="That token is unknown or revoked.", next=target)
        secure = request.url.scheme == "https"
        return session_response(target, found.name, found.role, digest(token), secure=secure)

    async def logout(request: Request) -> Response:
        session = await run_in_threadpool(frame.session, request)
        try:
            same_origin(request)
            form = await read_form(request)
        except Denied as exc:
            return frame.render(
                "message.html", exc.status, title="Not allowed", message=exc.message, error=True
            )
        if session is not None and not frame.sessions.csrf_ok(session, form.get("csrf")):
            return frame.render(
                "message.html",
                403,
                title="Not allowed",
                message="this form is not one this server gave",
                error=True,
            )
        if session is not None:  # ended in the store too: a copy of the cookie is refused from now on
            ended = session
            await run_in_threadpool(lambda: frame.store().access().end_session(ended.ident, ended.expires))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(frame.sessions.cookie, path="/")
        return response

    return {"login_form": login_form, "login": login, "logout": logout}


def _local(target: str | None) -> str:
    """Where to go after logging in: a path of this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
