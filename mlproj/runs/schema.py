"""The run store's schema: its migrations, and bringing a database to this version (design.md §2)."""

from __future__ import annotations

from mlproj.errors import MlprojError

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Execute = Callable[..., Any]  # a connection's `execute`

BUSY_TIMEOUT_MS = 30_000

# Each entry moves the schema from version i to i + 1. Never edit an entry once released: append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE experiments (
        experiment_id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    INSERT INTO experiments (experiment_id, name, created_at) VALUES (0, 'Default', strftime('%s', 'now'));
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        error TEXT,
        experiment TEXT NOT NULL,
        experiment_id INTEGER,
        run_name TEXT,
        uri TEXT,
        version TEXT,
        "commit" TEXT,
        entry_point TEXT,
        parameters TEXT,
        env_manager TEXT,
        backend TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        log_path TEXT,
        parent_run_id TEXT,
        step TEXT,
        reused_from TEXT,
        tags TEXT,
        command TEXT,
        work_dir TEXT,
        run_dir TEXT,
        timeout REAL,
        supervisor_pid INTEGER,
        supervisor_identity TEXT,
        pid INTEGER,
        pid_identity TEXT,
        grace REAL,
        request TEXT
    );
    CREATE INDEX runs_by_created ON runs (created_at);
    CREATE INDEX runs_by_experiment ON runs (experiment, created_at);
    CREATE INDEX runs_by_status ON runs (status, created_at);
    CREATE INDEX runs_by_parent ON runs (parent_run_id);
    """,
    """
    ALTER TABLE runs ADD COLUMN env_path TEXT;
    ALTER TABLE runs ADD COLUMN env_fingerprint TEXT;
    ALTER TABLE runs ADD COLUMN env_reused INTEGER;
    """,
    # Top-level runs, newest first, without visiting every step run (`runs --limit 20`).
    """
    CREATE INDEX runs_top_level ON runs (parent_run_id, created_at);
    """,
    # Pipelines: step outputs, attempts, the reuse key and why a step ran or was reused; the content
    # hashes of files already read, keyed by what `stat` says of them (so unchanged files are not read).
    """
    ALTER TABLE runs ADD COLUMN outputs TEXT;
    ALTER TABLE runs ADD COLUMN attempt INTEGER;
    ALTER TABLE runs ADD COLUMN reuse_key TEXT;
    ALTER TABLE runs ADD COLUMN reuse_parts TEXT;
    ALTER TABLE runs ADD COLUMN reason TEXT;
    CREATE INDEX runs_by_reuse_key ON runs (reuse_key);
    CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        digest TEXT NOT NULL
    );
    """,
    # Cluster backends: the job's ID and the cluster's own name for its state.
    """
    ALTER TABLE runs ADD COLUMN job_id TEXT;
    ALTER TABLE runs ADD COLUMN backend_state TEXT;
    """,
    # Process tracking: the run's cgroup, where the machine gives one (see mlproj.proctree).
    """
    ALTER TABLE runs ADD COLUMN cgroup TEXT;
    """,
    # MLflow tracking (design.md §8): the run's MLflow run, and its final update while it waits for the
    # tracking server (the partial index keeps looking for those cheap with many runs).
    """
    ALTER TABLE runs ADD COLUMN tracking_uri TEXT;
    ALTER TABLE runs ADD COLUMN mlflow_run_id TEXT;
    ALTER TABLE runs ADD COLUMN mlflow_experiment_id TEXT;
    ALTER TABLE runs ADD COLUMN mlflow_artifact_uri TEXT;
    ALTER TABLE runs ADD COLUMN tracking_pending TEXT;
    CREATE INDEX runs_tracking_pending ON runs(created_at) WHERE tracking_pending IS NOT NULL;
    """,
    # Publishing and the server (design.md §10): where a run came from; published pipelines (immutable
    # snapshots), endpoints and their versions, schedules and each tick they fired (the primary key
    # makes a tick fire once, whatever number of servers look at it), and the server's tokens (hashed).
    # Runs are listed by (created_at, run_id) pages: the second index keeps a page's query cheap.
    """
    ALTER TABLE runs ADD COLUMN published_pipeline_id TEXT;
    ALTER TABLE runs ADD COLUMN endpoint TEXT;
    ALTER TABLE runs ADD COLUMN schedule TEXT;
    CREATE INDEX runs_by_published ON runs (published_pipeline_id, created_at)
        WHERE published_pipeline_id IS NOT NULL;
    CREATE INDEX runs_by_page ON runs (parent_run_id, created_at, run_id);
    CREATE TABLE published (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version TEXT,
        description TEXT,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        pipeline_file TEXT NOT NULL,
        source_uri TEXT,
        "commit" TEXT,
        continue_on_step_failure INTEGER NOT NULL DEFAULT 0,
        inputs TEXT
    );
    CREATE INDEX published_by_name ON published (name, created_at);
    CREATE TABLE endpoints (
        name TEXT PRIMARY KEY,
        description TEXT,
        status TEXT NOT NULL,
        default_version TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE endpoint_versions (
        endpoint TEXT NOT NULL,
        version TEXT NOT NULL,
        pipeline_id TEXT NOT NULL,
        added_at REAL NOT NULL,
        PRIMARY KEY (endpoint, version)
    );
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        pipeline_id TEXT,
        endpoint TEXT,
        cron TEXT,
        every_s REAL,
        parameters TEXT,
        experiment TEXT,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_tick REAL
    );
    CREATE TABLE schedule_fires (
        schedule TEXT NOT NULL,
        tick REAL NOT NULL,
        fired_at REAL NOT NULL,
        run_id TEXT,
        error TEXT,
        PRIMARY KEY (schedule, tick)
    );
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
    # The web UI (design.md §11): one-time login links of `mlproj ui` (their SHA-256, the role they
    # give, until when they work).
    """
    CREATE TABLE login_codes (
        digest TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
    # The runs of an endpoint and of a schedule (their pages in the web UI, the runs page's filters).
    """
    CREATE INDEX runs_by_endpoint ON runs (endpoint, created_at) WHERE endpoint IS NOT NULL;
    CREATE INDEX runs_by_schedule ON runs (schedule, created_at) WHERE schedule IS NOT NULL;
    """,
    # The web UI's sessions ended by logging out, until they would have expired: a copied cookie of
    # a session that logged out is refused.
    """
    CREATE TABLE ended_sessions (
        id TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    """,
    # Runs addressed by their name (design.md §12: `mlproj status my-run`).
    """
    CREATE INDEX runs_by_name ON runs (run_name, created_at) WHERE run_name IS NOT NULL;
    """,
    # What reuses a run's outputs (`mlproj gc` keeps it while a kept run does).
    """
    CREATE INDEX runs_by_reused_from ON runs (reused_from) WHERE reused_from IS NOT NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def check_schema(execute: Execute, where: str) -> None:
    """Settle the connection, and bring the schema to this version (or refuse a newer one)."""
    execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    execute("PRAGMA synchronous = NORMAL")
    version = execute("PRAGMA user_version").fetchone()[0]
    if version < SCHEMA_VERSION:
        _migrate(execute)
    elif version > SCHEMA_VERSION:
        raise MlprojError(
            f"{where}: the run store has schema version {version}, newer than this mlproj "
            f"understands ({SCHEMA_VERSION}); upgrade mlproj"
        )


def _migrate(execute: Execute) -> None:
    execute("PRAGMA journal_mode = WAL")
    execute("BEGIN IMMEDIATE")
    try:
        version = execute("PRAGMA user_version").fetchone()[0]
        for script in MIGRATIONS[version:]:
            for statement in script.split(";"):
                if statement.strip():
                    execute(statement)
        execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        execute("ROLLBACK")
        raise
    execute("COMMIT")
