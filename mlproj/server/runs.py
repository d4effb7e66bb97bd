"""The runs routes of the REST API (design.md §10): list (filtered, paged by a cursor that stays cheap
over 100,000 runs), one run's record, its log (whole, or followed as server-sent events), cancel, and
submit (admin: a URI is code that will run)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, PlainTextResponse, StreamingResponse

from mlproj.errors import InputError, RunNotFoundError
from mlproj.runs.status import RunKind, RunStatus
from mlproj.server.http import HttpError, ok

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from typing import Any

    from starlette.responses import Response

    from mlproj.home import Home
    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store
    from mlproj.server.http import Call

MAX_PAGE = 500
CANCEL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL, as `mlproj cancel`'s default
FOLLOW_POLL = 0.2  # seconds between two looks at a followed log
CHUNK = 64 << 10
RUN_ID = re.compile(r"[0-9a-f]{4,32}")


def list_runs(call: Call) -> Response:
    """Runs, newest first: `status`, `experiment`, `kind`, `published` filters; `limit` and `cursor`."""
    status = call.text("status")
    kind = call.text("kind")
    try:
        wanted = RunStatus(status) if status else None
    except ValueError:
        raise HttpError(
            400, f"status {status!r}: expected one of {', '.join(s.value for s in RunStatus)}"
        ) from None
    if kind is not None and kind not in {k.value for k in RunKind}:
        raise HttpError(400, f"kind {kind!r}: expected one of {', '.join(k.value for k in RunKind)}")
    published = call.text("published")
    if published is not None:  # an ID or a prefix, as everywhere
        published = call.store.catalog().published(published).id
    return _page(
        call,
        experiment=call.text("experiment"),
        status=wanted,
        kind=kind,
        published=published,
        top_level=kind != RunKind.STEP.value,
    )


def _page(call: Call, **filters: Any) -> Response:
    """A page of runs (`limit`, after `cursor`), each brought up to date (design.md §3): a status
    filter looks at the truth, so the unfinished runs are reconciled before it is applied."""
    from mlproj.execution.reconcile import reconcile

    limit = call.integer("limit", 50, 1, MAX_PAGE)
    before = decode_cursor(call.text("cursor", limit=300))
    if filters.get("status") is not None:
        for unfinished in call.store.unfinished():
            reconcile(call.store, unfinished)
    records = call.store.list_runs(limit=limit + 1, before=before, **filters)
    page = [record if record.is_final else reconcile(call.store, record) for record in records[:limit]]
    more = len(records) > limit
    return ok({"runs": [r.to_dict() for r in page], "next_cursor": encode_cursor(page[-1]) if more else None})


def encode_cursor(record: RunRecord) -> str:
    text = json.dumps([record.created_at, record.run_id])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple[float, str] | None:
    """The (created_at, run_id) a page's `next_cursor` encodes; InputError (400) for anything else."""
    if text is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        created, run_id = json.loads(raw.decode())
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        created = run_id = None
    numeric = isinstance(created, (int, float)) and not isinstance(created, bool)
    if not numeric or not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise InputError("cursor: not one this server gave")
    return float(created), run_id


def find(store: Store, run_id: str) -> RunRecord:
    """A run by ID (or unique prefix), its status brought up to date."""
    from mlproj.execution.reconcile import find_run

    if not RUN_ID.fullmatch(run_id):
        raise RunNotFoundError(f"no run with ID {run_id[:40]!r}")
    return find_run(store, run_id, ids_only=True)  # a run's name is not an address here


def get_run(call: Call) -> Response:
    """One run's record (design.md §5), with its steps when it is a pipeline."""
    from mlproj.runs.documents import run_document

    return ok(run_document(call.store, find(call.store, call.path["run_id"])))


def cancel_run(call: Call) -> Response:
    """Ask for the run to stop: 202 at once (its status is CancelRequested, then Canceled)."""
    from mlproj.execution.reconcile import reconcile

    record = reconcile(call.store, find(call.store, call.path["run_id"]))
    if record.is_final:
        return ok({**record.to_dict(), "already_final": True})
    return ok({**request_cancel(call.store, record).to_dict(), "already_final": False}, 202)


def request_cancel(store: Store, record: RunRecord) -> RunRecord:
    """Stop a run in a thread of its own (the stop may take the run's grace period: a request does not
    hold one of the server's threads for it); the record once the request is recorded (at most 2 s)."""
    threading.Thread(
        target=cancel_in_background,
        args=(store.home, record.run_id),
        name=f"cancel-{record.run_id}",
        daemon=True,
    ).start()
    deadline = time.monotonic() + 2.0
    current = store.get(record.run_id)
    while not current.is_final and current.status is not RunStatus.CANCEL_REQUESTED:
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
        current = store.get(record.run_id)
    return current


def cancel_in_background(home: Home, run_id: str) -> None:
    from mlproj.execution import control
    from mlproj.runs.store import Store

    store = Store.open(home)
    try:
        control.cancel(store, store.get(run_id), CANCEL_GRACE)
    finally:
        store.close()


def submit_run(call: Call) -> Response:
    """Run a project or a pipeline URI (admin): `uri`, `parameters`, `experiment_name`, `entry_point`,
    `version`; answered with the new run's record once it is started (detached)."""
    from mlproj.publish import text_values
    from mlproj.submit import options_for, submit

    uri = call.field("uri", str, required=True)
    options = options_for(
        uri,
        parameters=text_values(call.field("parameters", dict) or {}),
        experiment=call.field("experiment_name", str),
        entry_point=call.field("entry_point", str) or "main",
        version=call.field("version", str),
        caller_dir=call.store.home.root,
    )
    return ok(submit(call.store, options, detach=True).to_dict(), 201)


def get_logs(call: Call) -> Response:
    """A run's log (`step`: one step's); `follow=1`: server-sent events until the run ends."""
    record = find(call.store, call.path["run_id"])
    step = call.text("step")
    if step is not None:
        found = [s for s in call.store.steps_of(record.run_id) if s.step == step]
        if not found:
            raise RunNotFoundError(f"run {record.run_id} has no step {step[:80]!r}")
        record = found[-1]
    path = Path(record.log_path) if record.log_path else None
    if call.text("follow") in ("1", "true"):
        return StreamingResponse(
            follow(call.stores, record.run_id, path),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    if path is None or not path.is_file():
        return PlainTextResponse("")
    return FileResponse(path, media_type="text/plain; charset=utf-8")  # streamed from the disk


async def follow(stores: Callable[[], Store], run_id: str, path: Path | None) -> AsyncIterator[str]:
    """The log as `data:` events (a line each), then `event: end` with the run's status."""
    offset, partial = 0, b""
    while True:
        record = await run_in_threadpool(_reconciled, stores, run_id)
        chunk = await run_in_threadpool(read_chunk, path, offset)
        offset += len(chunk)
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        for line in lines:
            yield "data: " + line.decode("utf-8", "replace").replace("\r", "") + "\n\n"
        if record.is_final and not chunk:
            if partial:
                yield "data: " + partial.decode("utf-8", "replace").replace("\r", "") + "\n\n"
            yield f"event: end\ndata: {record.status.value}\n\n"
            return
        if not chunk:
            await asyncio.sleep(FOLLOW_POLL)


def _reconciled(stores: Callable[[], Store], run_id: str) -> RunRecord:
    from mlproj.execution.reconcile import find_run

    return find_run(stores(), run_id)


def read_chunk(path: Path | None, offset: int) -> bytes:
    if path is None or not path.is_file():
        return b""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(CHUNK)


def published_runs(call: Call) -> Response:
    """The runs of a published pipeline (`get_pipeline_runs`), newest first."""
    published = call.store.catalog().published(call.path["pipeline_id"])
    return _page(call, published=published.id)


__all__ = ["cancel_run", "get_logs", "get_run", "list_runs", "published_runs", "submit_run"]
