"""The step side of the Python API (design.md §7), shaped like Azure ML's `StepRun`,
`StepRunOutput` and `PortDataReference`, and what `PipelineRun` shares with it (mlproj.api.pipeline)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from mlproj.api import raise_unless_finished
from mlproj.errors import InputError, RunNotFoundError
from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.store import Store

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

_MANAGED = "a pipeline run's status is managed by its steps: it cannot be {0} by hand"
_MANAGED_STEP = "a step run's status is managed by its pipeline's supervisor: it cannot be {0} by hand"


class PortDataReference:
    """A step's or pipeline's output: a folder, or a file, on this machine (Azure ML's datastore is this
    machine's file system: `datastore_name` is "local", `path_on_datastore` the absolute path)."""

    datastore_name = "local"

    def __init__(self, name: str, path: str | os.PathLike[str]) -> None:
        self.name = name
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"PortDataReference(name={self.name!r}, path={str(self.path)!r})"

    @property
    def path_on_datastore(self) -> str:
        return str(self.path)

    def download(
        self,
        local_path: str | os.PathLike[str],
        overwrite: bool = False,  # noqa: FBT001, FBT002 - Azure ML's PortDataReference's signature
        show_progress: bool = True,  # noqa: FBT001, FBT002, ARG002 - Azure ML's signature; a local copy has no progress to show
    ) -> Path:
        """Copy the output into the folder `local_path` (made if needed), as Azure ML downloads it: a
        folder output as `local_path/<its name>/`, a file as `local_path/<file name>`. Returns the copy.
        A copy that is there already is an input error unless `overwrite`."""
        folder = Path(local_path).expanduser()
        if not self.path.exists():
            raise RunNotFoundError(f"output {self.name!r}: {self.path} no longer exists")
        if folder.exists() and not folder.is_dir():
            raise InputError(f"download {self.name!r}: {folder} is a file, not a folder to download into")
        target = folder / self.path.name
        if target.exists() and not overwrite:
            raise InputError(
                f"download {self.name!r}: {target} exists already (pass overwrite=True to replace it)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            if target.exists() and not target.is_dir():
                target.unlink()
            shutil.copytree(self.path, target, dirs_exist_ok=True)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            shutil.copy2(self.path, target)
        return target


class StepRunOutput:
    """One output of a step run (Azure ML's `StepRunOutput`)."""

    def __init__(self, step_run: StepRun, name: str, reference: PortDataReference) -> None:
        self.step_run = step_run
        self.name = name
        self._reference = reference

    def __repr__(self) -> str:
        return f"StepRunOutput(name={self.name!r}, path={str(self._reference.path)!r})"

    def get_port_data_reference(self) -> PortDataReference:
        return self._reference


class PipelineGraph:
    """A pipeline run's graph: its steps (each with its step runs, every attempt) and the edges between
    them. `to_dict()` (or `graph["nodes"]`, `graph["edges"]`) is `mlproj graph --format json`."""

    def __init__(self, nodes: list[GraphNode], edges: list[tuple[str, str]]) -> None:
        self.nodes = nodes
        self.edges = edges

    def __repr__(self) -> str:
        return f"PipelineGraph(nodes={[n.name for n in self.nodes]!r}, edges={self.edges!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [node.name for node in self.nodes], "edges": [list(edge) for edge in self.edges]}

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            return self.to_dict() == other
        return isinstance(other, PipelineGraph) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


class GraphNode:
    """A step of the graph and its runs (oldest first; empty while it has not been tried)."""

    def __init__(self, name: str, step_runs: list[StepRun]) -> None:
        self.name = name
        self.step_runs = step_runs

    def __repr__(self) -> str:
        return f"GraphNode(name={self.name!r}, step_runs={len(self.step_runs)})"


class _RunView:
    """What PipelineRun and StepRun share: the store they read, and their reconciled record."""

    run_id: str
    _home: Home

    def _opened(self) -> AbstractContextManager[Store]:
        return _store(self._home)

    def _record(self) -> RunRecord:
        from mlproj.execution.reconcile import reconcile

        with self._opened() as store:
            return reconcile(store, store.get(self.run_id))

    def get_details(self) -> dict[str, Any]:
        """The run's JSON record (design.md §5)."""
        from mlproj.runs.documents import run_document

        with self._opened() as store:
            return run_document(store, self._record())


class StepRun(_RunView):
    """One attempt of one step of a pipeline run."""

    def __init__(self, record: RunRecord, home: Home) -> None:
        self.run_id = record.run_id
        self.name = record.step or ""
        self.attempt = record.attempt or 1
        self.reused_from = record.reused_from
        self.pipeline_run_id = record.parent_run_id
        self._home = home

    @property
    def id(self) -> str:
        """The step run's ID (Azure ML's `Run.id`)."""
        return self.run_id

    def __repr__(self) -> str:
        return f"StepRun(name={self.name!r}, run_id={self.run_id!r}, status={self.get_status()!r})"

    def get_status(self) -> str:
        return self._record().status.value

    def get_outputs(self) -> dict[str, PortDataReference]:
        """Every declared output (for a reused step: the outputs of the run it reused)."""
        return {name: PortDataReference(name, path) for name, path in self._record().outputs.items()}

    def get_output_data(self, name: str) -> PortDataReference:
        outputs = self.get_outputs()
        if name not in outputs:
            raise InputError(
                f"step {self.name!r} has no output {name!r} (outputs: {', '.join(outputs) or 'none'})"
            )
        return outputs[name]

    def get_log(self) -> str:
        """The step's output, stdout and stderr together in the order written (the log of the run it
        reused, for a reused step)."""
        record = self._record()
        if record.reused_from:
            with self._opened() as store:
                record = store.get(record.reused_from)
        if not record.log_path or not Path(record.log_path).exists():
            return ""
        return Path(record.log_path).read_text(encoding="utf-8", errors="replace")

    def get_output(self, name: str) -> StepRunOutput:
        """The output `name` of the step (Azure ML's `StepRun.get_output`)."""
        return StepRunOutput(self, name, self.get_output_data(name))

    def get_job_log(self) -> str:
        """The step's log (Azure ML's job log): `get_log()`."""
        return self.get_log()

    def get_details_with_logs(self) -> dict[str, Any]:
        """`get_details()` with `logFiles`: the log's file name → its text, as Azure ML gives them."""
        details = self.get_details()
        record = self._record()
        name = Path(record.log_path).name if record.log_path else "output.log"
        details["logFiles"] = {name: self.get_log()}
        return details

    def wait_for_completion(
        self,
        show_output: bool = True,  # noqa: FBT001, FBT002 - Azure ML's StepRun's signature
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,  # noqa: FBT001, FBT002 - Azure ML's StepRun's signature
    ) -> str:
        """Wait until the step ends and return its status; `show_output` streams its output."""
        return _wait(
            self,
            "step run",
            show_output=show_output,
            timeout_seconds=timeout_seconds,
            raise_on_error=raise_on_error,
            steps=False,
        )

    def child_run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED_STEP.format("given child runs"))

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED_STEP.format("completed"))

    def fail(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED_STEP.format("failed"))

    def get_stdout_log(self) -> str:
        """mlproj records stdout and stderr as one log: this is `get_log()`."""
        return self.get_log()

    def get_stderr_log(self) -> str:
        """mlproj records stdout and stderr as one log: this is `get_log()`."""
        return self.get_log()


def _wait(
    run: _RunView,
    what: str,
    *,
    show_output: bool,
    timeout_seconds: float,
    raise_on_error: bool,
    steps: bool,
) -> str:
    from mlproj.api import _write_stdout
    from mlproj.execution import control
    from mlproj.values import check_timeout

    check_timeout(timeout_seconds, "timeout_seconds")
    timeout = None if timeout_seconds >= sys.maxsize else timeout_seconds
    with run._opened() as store:
        if show_output:
            final = control.follow(store, run.run_id, _write_stdout, timeout=timeout, steps=steps)
        else:
            final = control.wait(store, run.run_id, timeout=timeout)
    if final is None:
        raise TimeoutError(f"{what} {run.run_id} did not end within {timeout_seconds} s")
    if raise_on_error:
        raise_unless_finished(final, what)
    return final.status.value


@contextmanager
def _store(home: Home) -> Iterator[Store]:
    store = Store.open(home)
    try:
        yield store
    finally:
        store.close()
