"""The run store: SQLite in WAL mode under MLPROJ_HOME, with a versioned schema (design.md §2).

Connections run in autocommit mode; a status change is a single compare-and-set UPDATE whose WHERE
clause allows only the transitions of `mlproj.runs.status`, so concurrent writers (supervisors, `cancel`,
reconciliation) can never move a run out of a final status.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping

from mlproj.errors import HomeError, MlprojError, RunNotFoundError, StoreError
from mlproj.home import Home
from mlproj.runs.record import COLUMNS, JSON_COLUMNS, RunRecord
from mlproj.runs.schema import BUSY_TIMEOUT_MS, check_schema
from mlproj.runs.status import MLFLOW_STATUS, RunStatus, predecessors

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any, TypedDict

    from typing_extensions import Unpack

    from mlproj.runs.access import Access
    from mlproj.runs.catalog import Catalog
    from mlproj.runs.gc import Collector
    from mlproj.runs.hashcache import FileHashes
    from mlproj.runs.request import Request

    class RunChanges(TypedDict, total=False):
        """The columns of a run that `update` and `transition` may change, with their types."""

        exit_code: int | None
        error: str | None
        experiment: str
        experiment_id: int | None
        run_name: str | None
        uri: str | None
        version: str | None
        commit: str | None
        entry_point: str | None
        parameters: Mapping[str, str]
        env_manager: str | None
        backend: str
        created_at: float | None
        started_at: float | None
        ended_at: float | None
        log_path: str | None
        parent_run_id: str | None
        step: str | None
        reused_from: str | None
        tags: Mapping[str, str]
        command: str | None
        work_dir: str | None
        run_dir: str | None
        timeout: float | None
        supervisor_pid: int | None
        supervisor_identity: str | None
        pid: int | None
        pid_identity: str | None
        grace: float | None
        request: Request | None
        env_path: str | None
        env_fingerprint: str | None
        env_reused: bool | None
        outputs: Mapping[str, str]
        attempt: int | None
        reuse_key: str | None
        reuse_parts: Mapping[str, str] | None
        reason: str | None
        tracking_uri: str | None
        mlflow_run_id: str | None
        mlflow_experiment_id: str | None
        mlflow_artifact_uri: str | None
        tracking_pending: str | None
        published_pipeline_id: str | None
        endpoint: str | None
        schedule: str | None
        job_id: str | None
        backend_state: str | None
        cgroup: str | None


MIN_PREFIX = 4
_HEX = frozenset("0123456789abcdef")


_QUOTED = ", ".join(f'"{c}"' for c in COLUMNS)
_PLACEHOLDERS = ", ".join(f":{c}" for c in COLUMNS)


def new_run_id() -> str:
    """A random UUID (version 4) in hex, as `uuid.uuid4().hex` (uuid imports platform: start-up)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def is_run_id(text: str) -> bool:
    return len(text) == 32 and set(text) <= _HEX


class _Guarded:
    """The store's connection: every SQLite error becomes a `StoreError` that names the database file
    and says what to do, instead of a traceback."""

    def __init__(self, path: str, connection: sqlite3.Connection) -> None:
        self.path = path
        self.connection = connection

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        try:
            return self.connection.execute(sql, parameters)
        except sqlite3.IntegrityError:
            raise  # a constraint: the caller's to handle (a run ID in use)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        try:
            return self.connection.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    def close(self) -> None:
        self.connection.close()


def store_error(path: str | Path, exc: sqlite3.Error) -> StoreError:
    """A one-line error for a failure of the database at `path`, saying what to do about it."""
    reason = str(exc) or type(exc).__name__
    lowered = reason.lower()
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        advice = f"it is damaged; move it aside (mv {path} {path}.damaged) to start an empty run store"
    elif "full" in lowered or "too large" in lowered:
        advice = "the disk is full; free some space and try again"
    elif "i/o error" in lowered:
        advice = "the disk may be full or failing; free some space, or check the disk"
    elif "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        advice = "it cannot be written here; point MLPROJ_HOME at a folder you can write"
    elif "locked" in lowered or "busy" in lowered:
        advice = "another mlproj held it too long; try again"
    else:
        advice = "check the file and the disk it is on"
    return StoreError(f"{path}: the run store failed ({reason}): {advice}")


def _prepare_home(home: Home) -> None:
    """MLPROJ_HOME exists and is a folder we can write, or a one-line error says why not."""
    root = home.location
    try:
        os.makedirs(root, exist_ok=True)
    except FileExistsError:
        raise HomeError(f"MLPROJ_HOME {root}: not a folder; point MLPROJ_HOME at a folder") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise HomeError(
            f"MLPROJ_HOME {root}: cannot create the folder ({reason}); "
            "point MLPROJ_HOME at a folder you can write"
        ) from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise HomeError(f"MLPROJ_HOME {root}: not writable; point MLPROJ_HOME at a folder you can write")


class Store:
    def __init__(self, home: Home, connection: _Guarded) -> None:
        self.home = home
        self._db = connection

    @classmethod
    def open(cls, home: Home) -> Store:
        _prepare_home(home)
        try:
            connection = sqlite3.connect(home.db_file, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(home.db_file, exc) from None
        connection.row_factory = sqlite3.Row
        db = _Guarded(home.db_file, connection)
        try:
            check_schema(db.execute, home.db_file)
        except BaseException:
            connection.close()
            raise
        return cls(home, db)

    def close(self) -> None:
        self._db.close()

    # --- experiments -----------------------------------------------------------------------------

    def experiment_id(self, name: str) -> int:
        """The ID of the experiment named `name`, created on first use."""
        row = self._db.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        self._db.execute(
            "INSERT OR IGNORE INTO experiments (name, created_at) VALUES (?, ?)", (name, time.time())
        )
        row = self._db.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def experiment_name(self, experiment_id: int) -> str:
        row = self._db.execute(
            "SELECT name FROM experiments WHERE experiment_id = ?", (experiment_id,)
        ).fetchone()
        if row is None:
            raise RunNotFoundError(f"no experiment with ID {experiment_id}")
        return str(row[0])

    # --- runs ------------------------------------------------------------------------------------

    def insert(self, record: RunRecord) -> RunRecord:
        if record.created_at is None:
            record = record.evolve(created_at=time.time())
        if record.experiment_id is None:
            record = record.evolve(experiment_id=self.experiment_id(record.experiment))
        try:
            self._db.execute(f"INSERT INTO runs ({_QUOTED}) VALUES ({_PLACEHOLDERS})", record.to_row())
        except sqlite3.IntegrityError:
            raise MlprojError(f"run ID {record.run_id} is already in use") from None
        return record

    def get(self, run_id: str) -> RunRecord:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run with ID {run_id}")
        return RunRecord.from_row(row)

    def resolve(self, prefix: str, *, ids_only: bool = False) -> RunRecord:
        """The run `prefix` names (design.md §12): its ID or a unique prefix of it (4+ hex characters),
        else its run name when one top-level run has it, or `last`: the newest top-level run.
        `ids_only` (the REST API, the web UI): an ID or a prefix, nothing else."""
        text = prefix.strip()
        lowered = text.lower()
        if lowered == "last" and not ids_only:
            newest = self.list_runs(limit=1)
            if not newest:
                raise RunNotFoundError(f"last: there are no runs in {self.home.db_file} yet")
            return newest[0]
        looks_like_id = len(lowered) >= MIN_PREFIX and set(lowered) <= _HEX
        rows = []
        if looks_like_id:
            rows = self._db.execute(
                "SELECT * FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 6",
                (lowered, lowered + "g"),
            ).fetchall()
            if len(rows) > 1:
                shown = ", ".join(row["run_id"] for row in rows[:5])
                more = ", …" if len(rows) > 5 else ""
                raise RunNotFoundError(f"run ID prefix {prefix!r} is ambiguous: {shown}{more}")
        if not rows and text and not ids_only:
            rows = self._db.execute(
                "SELECT * FROM runs WHERE run_name = ? AND parent_run_id IS NULL "
                "ORDER BY created_at DESC, run_id DESC LIMIT 6",
                (text,),
            ).fetchall()
            if len(rows) > 1:
                shown = ", ".join(row["run_id"][:12] for row in rows[:5])
                more = ", …" if len(rows) > 5 else ""
                raise RunNotFoundError(
                    f"run name {text!r} is used by several runs ({shown}{more}): give an ID"
                )
        if rows:
            return RunRecord.from_row(rows[0])
        if looks_like_id:
            raise RunNotFoundError(f"no run with ID {prefix!r} in {self.home.db_file}")
        raise RunNotFoundError(
            f"run {prefix!r}: no run has this name; expected a run ID (or a prefix of at least "
            f"{MIN_PREFIX} hex characters), a run name or last"
        )

    def transition(self, run_id: str, status: RunStatus, **changes: Unpack[RunChanges]) -> bool:
        """Move a run to `status` (with other column changes) if its current status allows it."""
        allowed = sorted(s.value for s in predecessors(status))
        if not allowed:
            return False
        columns = _encoded(changes)
        columns["status"] = status.value
        assignments = ", ".join(f'"{name}" = :{name}' for name in columns)
        if status in MLFLOW_STATUS and "tracking_pending" not in columns:
            # A tracked run's final update waits here, written with its final status, until it is sent.
            ended = changes.get("ended_at") or time.time()
            columns["_pending"] = json.dumps({"status": MLFLOW_STATUS[status], "end_time": int(ended * 1000)})
            assignments += (
                ', "tracking_pending" = CASE WHEN mlflow_run_id IS NULL THEN NULL ELSE :_pending END'
            )
        marks = ", ".join(f":_from{i}" for i in range(len(allowed)))
        params = {**columns, "run_id": run_id, **{f"_from{i}": s for i, s in enumerate(allowed)}}
        cursor = self._db.execute(
            f"UPDATE runs SET {assignments} WHERE run_id = :run_id AND status IN ({marks})", params
        )
        return cursor.rowcount == 1

    def update(self, run_id: str, **changes: Unpack[RunChanges]) -> None:
        """Change columns other than the status (`transition` changes that)."""
        if not changes:
            return
        columns = _encoded(changes)
        assignments = ", ".join(f'"{name}" = :{name}' for name in columns)
        self._db.execute(
            f"UPDATE runs SET {assignments} WHERE run_id = :run_id", {**columns, "run_id": run_id}
        )

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        status: RunStatus | None = None,
        parent_run_id: str | None = None,
        top_level: bool = True,
        limit: int | None = None,
        kind: str | None = None,
        published: str | None = None,
        before: tuple[float, str] | None = None,
        name: str | None = None,
        tag: tuple[str, str] | None = None,
        endpoint: str | None = None,
        schedule: str | None = None,
        since: float | None = None,
        uri: str | None = None,
    ) -> list[RunRecord]:
        """Newest first (ties by run ID); `before`: only runs after (created_at, run_id) in that order,
        which is how a page starts where the last one ended."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("experiment", experiment),
            ("kind", kind),
            ("published_pipeline_id", published),
            ("endpoint", endpoint),
            ("schedule", schedule),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if name is not None:  # a part of its name (or, without one, of its URI)
            where.append("(instr(lower(run_name), lower(?)) > 0 OR (run_name IS NULL AND instr(uri, ?) > 0))")
            params += [name, name]
        if tag is not None:  # a tag's value, by its name (whatever characters the name holds)
            where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE key = ? AND value = ?)")
            params += [tag[0], tag[1]]
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if uri is not None:  # a part of its URI
            where.append("instr(uri, ?) > 0")
            params.append(uri)
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND run_id < ?))")
            params += [before[0], before[0], before[1]]
        if parent_run_id is not None:
            where.append("parent_run_id = ?")
            params.append(parent_run_id)
        elif top_level:
            where.append("parent_run_id IS NULL")
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [RunRecord.from_row(row) for row in self._db.execute(sql, params)]

    def count_runs(self, *, published: str) -> int:
        """How many runs a published pipeline has."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM runs WHERE published_pipeline_id = ?", (published,)
        ).fetchone()
        return int(row[0])

    # --- pipelines ---------------------------------------------------------------------------------

    def steps_of(self, pipeline_run_id: str) -> list[RunRecord]:
        """Every step run of a pipeline run (every attempt), oldest first."""
        rows = self._db.execute(
            "SELECT * FROM runs WHERE parent_run_id = ? ORDER BY created_at, attempt", (pipeline_run_id,)
        )
        return [RunRecord.from_row(row) for row in rows]

    def producers_with_key(self, reuse_key: str) -> Iterator[RunRecord]:
        """Finished step runs that ran with this reuse key and made their outputs (not those that reused
        another's), newest first, read one at a time."""
        rows = self._db.execute(
            "SELECT * FROM runs WHERE reuse_key = ? AND status = ? AND kind = 'step' AND reused_from IS NULL "
            "ORDER BY ended_at DESC",
            (reuse_key, RunStatus.FINISHED.value),
        )
        for row in rows:
            yield RunRecord.from_row(row)

    def previous_step(self, pipeline_uri: str, step: str, exclude_parent: str) -> RunRecord | None:
        """The latest earlier run of step `step` of the pipeline at `pipeline_uri` that has a reuse key."""
        row = self._db.execute(
            "SELECT s.* FROM runs AS s JOIN runs AS p ON s.parent_run_id = p.run_id "
            "WHERE p.kind = 'pipeline' AND p.uri = ? AND s.step = ? AND s.parent_run_id != ? "
            "AND s.reuse_parts IS NOT NULL ORDER BY s.created_at DESC LIMIT 1",
            (pipeline_uri, step, exclude_parent),
        ).fetchone()
        return None if row is None else RunRecord.from_row(row)

    def file_hashes(self) -> FileHashes:
        """The stat cache of the content hashes of pipeline inputs (mlproj.runs.hashcache)."""
        from mlproj.runs.hashcache import FileHashes

        return FileHashes(self._db, self.immediate)

    # --- MLflow tracking -----------------------------------------------------------------------------

    def has_tracking_pending(self) -> bool:
        """Whether some run's MLflow end waits (cheap: a partial index holds only those)."""
        return (
            self._db.execute("SELECT 1 FROM runs WHERE tracking_pending IS NOT NULL LIMIT 1").fetchone()
            is not None
        )

    def tracking_pending(self, limit: int = 50) -> list[RunRecord]:
        """Runs whose final MLflow update waits for its tracking server, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM runs WHERE tracking_pending IS NOT NULL ORDER BY created_at LIMIT ?", (limit,)
        )
        return [RunRecord.from_row(row) for row in rows]

    def tracking_sent(self, run_id: str, pending: str) -> None:
        """The final update `pending` reached the tracking server (kept if it changed meanwhile)."""
        self._db.execute(
            "UPDATE runs SET tracking_pending = NULL WHERE run_id = ? AND tracking_pending = ?",
            (run_id, pending),
        )

    def unfinished(self) -> list[RunRecord]:
        """Every run not in a final status (for reconciliation)."""
        # IN over the statuses that are not final, not NOT IN the final ones: IN uses runs_by_status
        # (a few ms in a store of 100,000 runs), NOT IN reads every run.
        waiting = ", ".join(f"'{s.value}'" for s in RunStatus if not s.is_final)
        rows = self._db.execute(f"SELECT * FROM runs WHERE status IN ({waiting})")
        return [RunRecord.from_row(row) for row in rows]

    def catalog(self) -> Catalog:
        """The published pipelines, endpoints and schedules (design.md §10)."""
        from mlproj.runs.catalog import Catalog

        return Catalog(self._db, self.immediate)

    def access(self) -> Access:
        """The server's tokens, login links and ended sessions (design.md §10, §11)."""
        from mlproj.runs.access import Access

        return Access(self._db, self.immediate)

    def collector(self) -> Collector:
        """`mlproj gc`'s queries (mlproj.runs.gc)."""
        from mlproj.runs.gc import Collector

        return Collector(self._db, self.immediate, self.home)

    def immediate(self) -> _Immediate:
        """A write transaction taken at once (BEGIN IMMEDIATE), for read-then-write sequences."""
        return _Immediate(self._db)


class _Immediate:
    """`with store.immediate():` BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any exception (a plain
    class: contextlib is not imported on the way to a command)."""

    def __init__(self, db: _Guarded) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, value: object, traceback: object) -> None:
        self._db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _encoded(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Column values as stored: a request, and mappings in JSON columns, as JSON text."""
    encoded = {}
    for name, value in changes.items():
        if name == "request" and value is not None:
            encoded[name] = json.dumps(value.to_dict())
        elif name in JSON_COLUMNS and isinstance(value, Mapping):
            encoded[name] = json.dumps(dict(value))
        else:
            encoded[name] = value
    return encoded
