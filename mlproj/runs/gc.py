"""`mlproj gc` (design.md §12): delete finished runs — their records, their steps' records, their folders
(logs and outputs) — that nothing kept still needs.

- Only runs in a final status, ever (the caller brings statuses up to date first), and only top-level
  runs with their steps: a step is deleted with its pipeline run, never alone.
- A run whose outputs a kept run's step reuses (`reused_from`) is kept, and so is what that run's
  steps reuse in turn; so is any run that a run not yet final reuses.
- Published pipelines run from their snapshots under MLPROJ_HOME/published/ and schedules from those:
  neither needs a run, and gc never touches the snapshots. MLflow's runs are MLflow's: not touched.
- A folder is removed only when it is the run's own, under MLPROJ_HOME/runs/, named by its ID.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlproj.runs.status import RunStatus
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from contextlib import AbstractContextManager

    from mlproj.home import Home
    from mlproj.runs.catalog import _Guarded
    from mlproj.runs.record import RunRecord

FINAL = tuple(status for status in RunStatus if status.is_final)


@dataclass
class Garbage:
    """What gc would delete (or did): the runs, why some were kept, the bytes their folders hold."""

    delete: list[RunRecord] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # run ID → why it is kept
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # run ID → (its steps, its bytes)

    @property
    def steps(self) -> int:
        return sum(self.sizes[record.run_id][0] for record in self.delete)

    @property
    def freed(self) -> int:
        return sum(self.sizes[record.run_id][1] for record in self.delete)


class Collector:
    """gc's queries over one run store's database (Store.collector())."""

    def __init__(
        self, db: _Guarded, immediate: Callable[[], AbstractContextManager[None]], home: Home
    ) -> None:
        self._db = db
        self._immediate = immediate
        self.home = home

    def plan(self, *, before: float | None, statuses: Collection[RunStatus]) -> Garbage:
        """The runs to delete: top-level, in one of `statuses` (final ones; all final ones when none),
        created before `before` (any time when None), less those a kept run reuses."""
        from mlproj.runs.record import RunRecord

        wanted = [status for status in statuses if status.is_final] or list(FINAL)
        marks = ", ".join("?" for _ in wanted)
        sql = f"SELECT * FROM runs WHERE parent_run_id IS NULL AND status IN ({marks})"  # only "?" marks
        values: list[object] = [status.value for status in wanted]
        if before is not None:
            sql += " AND created_at < ?"
            values.append(before)
        # A run whose MLflow end is still to be sent: its supervisor (or a later command) needs it.
        sql += " AND tracking_pending IS NULL"
        # Newest first: a run that reuses another is decided before the run it reuses (apply).
        rows = self._db.execute(sql + " ORDER BY created_at DESC, run_id DESC", values).fetchall()
        candidates = {row["run_id"]: RunRecord.from_row(row) for row in rows}
        garbage = Garbage(kept=self._needed(set(candidates)))
        garbage.delete = [record for run_id, record in candidates.items() if run_id not in garbage.kept]
        for record in garbage.delete:
            steps = self._db.execute(
                "SELECT count(*) FROM runs WHERE parent_run_id = ?", (record.run_id,)
            ).fetchone()[0]
            folder = self.own_folder(record)
            garbage.sizes[record.run_id] = (steps, _size(folder) if folder is not None else 0)
        return garbage

    def _needed(self, candidates: set[str]) -> dict[str, str]:
        """Candidates that a kept run (any run not a candidate) reuses, directly or through another
        kept one: run ID → why."""
        uses: dict[str, list[tuple[str, str]]] = {}  # top-level run → (top-level run it reuses, step)
        rows = self._db.execute(
            "SELECT coalesce(r.parent_run_id, r.run_id) AS user, r.step AS step, "
            "coalesce(p.parent_run_id, p.run_id) AS producer FROM runs r "
            "JOIN runs p ON p.run_id = r.reused_from WHERE r.reused_from IS NOT NULL ORDER BY user, step"
        )
        for row in rows:
            if row["user"] != row["producer"]:
                uses.setdefault(row["user"], []).append((row["producer"], row["step"] or ""))
        kept: dict[str, str] = {}
        for run_id, earlier in self._resumed():  # a run not ended resuming another reuses its steps
            if earlier in candidates:
                kept[earlier] = f"run {run_id} resumes it"
                uses.setdefault(run_id, [])
        waiting = sorted((user for user in uses if user not in candidates), reverse=True)
        waiting += sorted(kept)  # what a resumed run reuses is needed too
        while waiting:
            user = waiting.pop()
            for producer, step in uses.get(user, []):
                if producer in candidates and producer not in kept:
                    kept[producer] = f"step {step} of run {user} reuses its outputs"
                    waiting.append(producer)
        return kept

    def _resumed(self) -> list[tuple[str, str]]:
        """(run, the run it resumes) of the pipeline runs not ended (`mlproj resume`)."""
        import json

        waiting = ", ".join(f"'{status.value}'" for status in RunStatus if not status.is_final)
        rows = self._db.execute(
            f"SELECT run_id, request FROM runs WHERE kind = 'pipeline' AND status IN ({waiting})"
        )
        found = []
        for row in rows:
            try:
                earlier = json.loads(row["request"] or "{}").get("resume_from")
            except (ValueError, AttributeError):
                earlier = None
            if earlier:
                found.append((row["run_id"], str(earlier)))
        return found

    def apply(self, garbage: Garbage) -> None:
        """Delete the records (each run with its steps, in one transaction), then their folders. A
        run that became needed meanwhile (a new run reused it) is left."""
        going = {record.run_id for record in garbage.delete}
        for record in garbage.delete:
            folder = self.own_folder(record)
            with self._immediate():
                users = {
                    row[0]
                    for row in self._db.execute(
                        "SELECT DISTINCT coalesce(r.parent_run_id, r.run_id) FROM runs p "
                        "JOIN runs r ON r.reused_from = p.run_id WHERE p.parent_run_id = ? OR p.run_id = ?",
                        (record.run_id, record.run_id),
                    )
                }
                if users - going:
                    garbage.kept[record.run_id] = "a run started since reuses its outputs"
                    going.discard(record.run_id)  # kept: what it reuses is needed too
                    continue
                self._db.execute("DELETE FROM runs WHERE parent_run_id = ?", (record.run_id,))
                self._db.execute("DELETE FROM runs WHERE run_id = ?", (record.run_id,))
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        garbage.delete = [record for record in garbage.delete if record.run_id not in garbage.kept]

    def own_folder(self, record: RunRecord) -> Path | None:
        """The run's folder, when it is its own: MLPROJ_HOME/runs/RUN_ID (a record naming anything
        else never gets it removed)."""
        expected = self.home.run_dir(record.run_id)
        if record.run_dir is None or Path(record.run_dir) != expected or expected.is_symlink():
            return None
        return expected if expected.is_dir() else None


def _size(folder: Path) -> int:
    import os

    total = 0
    for here, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(here, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total
