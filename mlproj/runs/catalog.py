"""What is published (design.md §10), in the run store's database: published pipelines, endpoints and
their versions, schedules and the ticks they fired. (Who may use the server: mlproj.runs.access.)

Data only, as the rest of `mlproj.runs`: the rules (what may be submitted, when a schedule fires)
are `mlproj.publish`'s. Every change that two processes could race on is one statement whose WHERE
clause (or primary key) lets only one of them win.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time

from mlproj.errors import InputError, RunNotFoundError
from mlproj.runs.record import iso_utc
from mlproj.structs import dataclass, field
from mlproj.urls import strip_credentials

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from contextlib import AbstractContextManager
    from typing import Any, Protocol

    class _Guarded(Protocol):
        """The store's connection (mlproj.runs.store)."""

        def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor: ...

        def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor: ...


ACTIVE, DISABLED = "Active", "Disabled"
ROLES = ("read", "submit", "admin")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = frozenset("0123456789abcdef")
MIN_PREFIX = 4
ADD_VERSION = "INSERT INTO endpoint_versions (endpoint, version, pipeline_id, added_at)"


class ConflictError(InputError):
    """A name already taken, or something disabled asked to run (the server's 409)."""


def check_name(name: str, what: str) -> str:
    """A name of a published pipeline, an endpoint, a schedule or a token: safe in a path and a URL."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(
            f"{what} name {str(name)[:80]!r}: expected 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    return name


@dataclass(frozen=True)
class Published:
    id: str
    name: str
    pipeline_file: str  # the snapshot's pipeline, under MLPROJ_HOME/published/
    version: str | None = None
    description: str | None = None
    status: str = ACTIVE
    created_at: float = 0.0
    source_uri: str | None = None  # what was published (a file, or a Git URI)
    commit: str | None = None
    continue_on_step_failure: bool = False
    inputs: Mapping[str, Any] = field(default_factory=dict)  # the pipeline's inputs: name → default

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "status": self.status,
            "created_at": iso_utc(self.created_at),
            "source_uri": None if self.source_uri is None else strip_credentials(self.source_uri),
            "commit": self.commit,
            "continue_on_step_failure": self.continue_on_step_failure,
            "inputs": dict(self.inputs),
            "pipeline_file": self.pipeline_file,
        }


@dataclass(frozen=True)
class Endpoint:
    name: str
    default_version: str
    description: str | None = None
    status: str = ACTIVE
    created_at: float = 0.0
    versions: tuple[tuple[str, str], ...] = ()  # (version, published pipeline ID), in order

    def pipeline_id(self, version: str | None = None) -> str:
        wanted = self.default_version if version is None else version
        for found, pipeline_id in self.versions:
            if found == wanted:
                return pipeline_id
        known = ", ".join(v for v, _ in self.versions)
        raise RunNotFoundError(f"endpoint {self.name!r} has no version {wanted!r} (versions: {known})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "default_version": self.default_version,
            "created_at": iso_utc(self.created_at),
            "versions": [{"version": v, "pipeline_id": p} for v, p in self.versions],
        }


@dataclass(frozen=True)
class Schedule:
    name: str
    pipeline_id: str | None = None
    endpoint: str | None = None
    cron: str | None = None
    every_s: float | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    experiment: str | None = None
    status: str = ACTIVE
    created_at: float = 0.0
    last_tick: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pipeline_id": self.pipeline_id,
            "endpoint": self.endpoint,
            "cron": self.cron,
            "every_s": self.every_s,
            "parameters": dict(self.parameters),
            "experiment": self.experiment,
            "status": self.status,
            "created_at": iso_utc(self.created_at),
            "last_tick": iso_utc(self.last_tick),
        }


@dataclass(frozen=True)
class Fire:
    """One tick of a schedule: the run it started, or why it could not."""

    schedule: str
    tick: float
    fired_at: float
    run_id: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "tick": iso_utc(self.tick),
            "fired_at": iso_utc(self.fired_at),
            "run_id": self.run_id,
            "error": self.error,
        }


class Catalog:
    """The published pipelines, endpoints and schedules of one run store."""

    def __init__(self, db: _Guarded, immediate: Callable[[], AbstractContextManager[None]]) -> None:
        self._db = db
        self._immediate = immediate  # BEGIN IMMEDIATE … COMMIT: the store's

    # --- published pipelines -----------------------------------------------------------------------

    def add_published(self, published: Published) -> Published:
        self._db.execute(
            "INSERT INTO published (id, name, version, description, status, created_at, pipeline_file, "
            'source_uri, "commit", continue_on_step_failure, inputs) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                published.id,
                published.name,
                published.version,
                published.description,
                published.status,
                published.created_at,
                published.pipeline_file,
                published.source_uri,
                published.commit,
                int(published.continue_on_step_failure),
                json.dumps(dict(published.inputs)),
            ),
        )
        return published

    def published(self, id_or_prefix: str) -> Published:
        """The published pipeline whose ID is this, or starts with it (4+ characters, unique)."""
        text = str(id_or_prefix).strip().lower()
        if len(text) < MIN_PREFIX or not set(text) <= _HEX:
            raise RunNotFoundError(
                f"published pipeline ID {str(id_or_prefix)[:80]!r}: expected an ID or a prefix of at least "
                f"{MIN_PREFIX} hex characters"
            )
        rows = self._db.execute(
            "SELECT * FROM published WHERE id >= ? AND id < ? ORDER BY id LIMIT 6", (text, text + "g")
        ).fetchall()
        if not rows:
            raise RunNotFoundError(f"no published pipeline with ID {text!r}")
        if len(rows) > 1:
            shown = ", ".join(row["id"] for row in rows[:5])
            raise RunNotFoundError(f"published pipeline ID prefix {text!r} is ambiguous: {shown}")
        return _published(rows[0])

    def all_published(self, *, active_only: bool = False) -> list[Published]:
        sql = "SELECT * FROM published"
        if active_only:
            sql += f" WHERE status = '{ACTIVE}'"
        return [_published(row) for row in self._db.execute(sql + " ORDER BY created_at DESC, id")]

    def set_published_status(self, pipeline_id: str, status: str) -> Published:
        published = self.published(pipeline_id)
        self._db.execute("UPDATE published SET status = ? WHERE id = ?", (status, published.id))
        return self.published(published.id)

    # --- endpoints -------------------------------------------------------------------------------

    def create_endpoint(self, name: str, pipeline_id: str, description: str | None) -> Endpoint:
        check_name(name, "endpoint")
        now = time.time()
        try:
            with self._immediate():
                self._db.execute(
                    "INSERT INTO endpoints (name, description, status, default_version, created_at) "
                    "VALUES (?, ?, ?, '0', ?)",
                    (name, description, ACTIVE, now),
                )
                self._db.execute(
                    f"{ADD_VERSION} VALUES (?, '0', ?, ?)",
                    (name, pipeline_id, now),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"endpoint {name!r} exists already") from None
        return self.endpoint(name)

    def add_version(self, name: str, pipeline_id: str, *, set_default: bool) -> Endpoint:
        """The next version ("0", "1", …) of an endpoint, made its default if asked."""
        self.endpoint(name)
        with self._immediate():
            count = self._db.execute(
                "SELECT COUNT(*) FROM endpoint_versions WHERE endpoint = ?", (name,)
            ).fetchone()[0]
            version = str(int(count))
            self._db.execute(
                f"{ADD_VERSION} VALUES (?, ?, ?, ?)",
                (name, version, pipeline_id, time.time()),
            )
            if set_default:
                self._db.execute("UPDATE endpoints SET default_version = ? WHERE name = ?", (version, name))
        return self.endpoint(name)

    def set_default_version(self, name: str, version: str) -> Endpoint:
        self.endpoint(name).pipeline_id(version)  # it exists
        self._db.execute("UPDATE endpoints SET default_version = ? WHERE name = ?", (version, name))
        return self.endpoint(name)

    def endpoint(self, name: str) -> Endpoint:
        row = self._db.execute("SELECT * FROM endpoints WHERE name = ?", (str(name),)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no endpoint named {str(name)[:80]!r}")
        versions = self._db.execute(
            "SELECT version, pipeline_id FROM endpoint_versions WHERE endpoint = ? "
            "ORDER BY added_at, version",
            (row["name"],),
        ).fetchall()
        return Endpoint(
            name=row["name"],
            description=row["description"],
            status=row["status"],
            default_version=row["default_version"],
            created_at=row["created_at"],
            versions=tuple((v["version"], v["pipeline_id"]) for v in versions),
        )

    def endpoints(self) -> list[Endpoint]:
        names = [row[0] for row in self._db.execute("SELECT name FROM endpoints ORDER BY name")]
        return [self.endpoint(name) for name in names]

    def set_endpoint_status(self, name: str, status: str) -> Endpoint:
        self.endpoint(name)
        self._db.execute("UPDATE endpoints SET status = ? WHERE name = ?", (status, name))
        return self.endpoint(name)

    # --- schedules ---------------------------------------------------------------------------------

    def create_schedule(self, schedule: Schedule) -> Schedule:
        check_name(schedule.name, "schedule")
        try:
            self._db.execute(
                "INSERT INTO schedules (name, pipeline_id, endpoint, cron, every_s, parameters, experiment, "
                "status, created_at, last_tick) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    schedule.name,
                    schedule.pipeline_id,
                    schedule.endpoint,
                    schedule.cron,
                    schedule.every_s,
                    json.dumps(dict(schedule.parameters)),
                    schedule.experiment,
                    schedule.status,
                    schedule.created_at,
                    schedule.last_tick,
                ),
            )
        except sqlite3.IntegrityError:
            raise ConflictError(f"schedule {schedule.name!r} exists already") from None
        return self.schedule(schedule.name)

    def schedule(self, name: str) -> Schedule:
        row = self._db.execute("SELECT * FROM schedules WHERE name = ?", (str(name),)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no schedule named {str(name)[:80]!r}")
        return _schedule(row)

    def schedules(self, *, active_only: bool = False) -> list[Schedule]:
        sql = "SELECT * FROM schedules"
        if active_only:
            sql += f" WHERE status = '{ACTIVE}'"
        return [_schedule(row) for row in self._db.execute(sql + " ORDER BY name")]

    def set_schedule_status(self, name: str, status: str, last_tick: float | None = None) -> Schedule:
        """`last_tick`: a schedule enabled again does not fire the ticks it had while disabled."""
        self.schedule(name)
        if last_tick is None:
            self._db.execute("UPDATE schedules SET status = ? WHERE name = ?", (status, name))
        else:
            self._db.execute(
                "UPDATE schedules SET status = ?, last_tick = MAX(COALESCE(last_tick, ?), ?) WHERE name = ?",
                (status, last_tick, last_tick, name),
            )
        return self.schedule(name)

    def delete_schedule(self, name: str) -> None:
        self.schedule(name)
        with self._immediate():
            self._db.execute("DELETE FROM schedules WHERE name = ?", (name,))
            self._db.execute("DELETE FROM schedule_fires WHERE schedule = ?", (name,))

    def claim_tick(self, name: str, tick: float, *, advance: bool = True) -> bool:
        """Take the tick `tick` of the schedule for this process: True once, whoever else asks (two
        servers on one store, a server restarted within the tick), False to everyone after.
        `advance`: it is the schedule's latest tick now (a manual trigger is not)."""
        with self._immediate():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO schedule_fires (schedule, tick, fired_at) VALUES (?, ?, ?)",
                (name, tick, time.time()),
            )
            if cursor.rowcount != 1:
                return False
            if not advance:
                return True
            self._db.execute(
                "UPDATE schedules SET last_tick = ? WHERE name = ? AND (last_tick IS NULL OR last_tick < ?)",
                (tick, name, tick),
            )
        return True

    def fired(self, name: str, tick: float, *, run_id: str | None = None, error: str | None = None) -> None:
        self._db.execute(
            "UPDATE schedule_fires SET run_id = ?, error = ? WHERE schedule = ? AND tick = ?",
            (run_id, error, name, tick),
        )

    def fires(self, name: str, limit: int = 20) -> list[Fire]:
        rows = self._db.execute(
            "SELECT * FROM schedule_fires WHERE schedule = ? ORDER BY tick DESC LIMIT ?", (name, int(limit))
        )
        return [
            Fire(
                schedule=row["schedule"],
                tick=row["tick"],
                fired_at=row["fired_at"],
                run_id=row["run_id"],
                error=row["error"],
            )
            for row in rows
        ]


def _published(row: Any) -> Published:
    return Published(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        description=row["description"],
        status=row["status"],
        created_at=row["created_at"],
        pipeline_file=row["pipeline_file"],
        source_uri=row["source_uri"],
        commit=row["commit"],
        continue_on_step_failure=bool(row["continue_on_step_failure"]),
        inputs=json.loads(row["inputs"] or "{}"),
    )


def _schedule(row: Any) -> Schedule:
    return Schedule(
        name=row["name"],
        pipeline_id=row["pipeline_id"],
        endpoint=row["endpoint"],
        cron=row["cron"],
        every_s=row["every_s"],
        parameters=json.loads(row["parameters"] or "{}"),
        experiment=row["experiment"],
        status=row["status"],
        created_at=row["created_at"],
        last_tick=row["last_tick"],
    )


__all__ = [
    "ACTIVE",
    "DISABLED",
    "ROLES",
    "Catalog",
    "ConflictError",
    "Endpoint",
    "Fire",
    "Published",
    "Schedule",
    "check_name",
]
