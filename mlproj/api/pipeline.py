"""The pipeline side of the Python API, shaped like Azure ML's `PipelineRun` and `StepRun` (design.md §7).

run = mlproj.PipelineRun.get("~/.mlproj", run_id)
run.wait_for_completion(show_output=False)
for step in run.get_steps():
    print(step.name, step.get_status(), step.reused_from)
model = run.get_pipeline_output("model").download("./model")
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from mlproj.api import SubmittedRun, raise_unless_finished
from mlproj.errors import InputError, RunNotFoundError
from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind
from mlproj.runs.store import Store

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

_MANAGED = "a pipeline run's status is managed by its steps: it cannot be {0} by hand"


class PortDataReference:
    """A step's or pipeline's output: a folder, or a file, on this machine."""

    def __init__(self, name: str, path: str | os.PathLike[str]) -> None:
        self.name = name
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"PortDataReference(name={self.name!r}, path={str(self.path)!r})"

    def download(
        self,
        local_path: str | os.PathLike[str],
        overwrite: bool = False,  # noqa: FBT001, FBT002 - Azure ML's PortDataReference's signature
    ) -> Path:
        """Copy the output to `local_path` (a folder is copied into it as a whole); returns the copy."""
        target = Path(local_path)
        if not self.path.exists():
            raise RunNotFoundError(f"output {self.name!r}: {self.path} no longer exists")
        if self.path.is_dir():
            shutil.copytree(self.path, target, dirs_exist_ok=overwrite)
            return target
        if target.is_dir():
            target = target / self.path.name
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists (pass overwrite=True to replace it)")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.path, target)
        return target


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
        self._home = home

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

    def get_stdout_log(self) -> str:
        """mlproj records stdout and stderr as one log: this is `get_log()`."""
        return self.get_log()

    def get_stderr_log(self) -> str:
        """mlproj records stdout and stderr as one log: this is `get_log()`."""
        return self.get_log()


class PipelineRun(SubmittedRun, _RunView):
    """A pipeline run: follow it, wait for it, read its steps and outputs, cancel it."""

    def __init__(
        self, experiment: str | None, run_id: str, home: str | os.PathLike[str] | Home | None = None
    ):
        resolved = home if isinstance(home, Home) else Home.from_env(home)
        with _store(resolved) as store:
            from mlproj.execution.reconcile import find_run

            record = find_run(store, run_id)
        if record.kind is not RunKind.PIPELINE:
            raise InputError(f"run {record.run_id} is a {record.kind} run, not a pipeline run")
        if experiment is not None and record.experiment != str(experiment):
            raise RunNotFoundError(
                f"run {record.run_id} belongs to experiment {record.experiment!r}, not {experiment!r}"
            )
        super().__init__(record.run_id, resolved)
        self.experiment = record.experiment

    @classmethod
    def get(cls, home: str | os.PathLike[str] | Home | None, run_id: str) -> PipelineRun:
        """The pipeline run `run_id` (or a unique prefix) of the store at `home` (None: MLPROJ_HOME)."""
        return cls(None, run_id, home)

    def __repr__(self) -> str:
        return f"PipelineRun(run_id={self.run_id!r}, status={self.get_status()!r})"

    def get_tags(self) -> dict[str, str]:
        return dict(self._record().tags)

    def get_steps(self) -> list[StepRun]:
        """Each step's latest attempt, in pipeline order."""
        latest: dict[str, RunRecord] = {}
        with self._opened() as store:
            for record in store.steps_of(self.run_id):
                latest[record.step or ""] = record
        order = self.get_graph()["nodes"]
        return [StepRun(latest[name], self._home) for name in order if name in latest]

    def find_step_run(self, name: str) -> list[StepRun]:
        """Every attempt of the step called `name`, oldest first (empty if there is no such step)."""
        with self._opened() as store:
            return [StepRun(r, self._home) for r in store.steps_of(self.run_id) if r.step == name]

    def get_graph(self) -> dict[str, Any]:
        """{"nodes": [step names], "edges": [[from, to], ...]}, as `mlproj graph --format json`."""
        from mlproj.pipelines.records import load_recorded

        pipeline = load_recorded(self._record())
        return {"nodes": pipeline.order(), "edges": [list(edge) for edge in pipeline.edges()]}

    def get_pipeline_output(self, name: str) -> PortDataReference:
        """A named output of the pipeline (its `outputs:`), once the step that makes it finished."""
        record = self._record()
        if name not in record.outputs:
            from mlproj.pipelines.records import load_recorded

            declared = ", ".join(load_recorded(record).outputs) or "none"
            raise InputError(f"pipeline run {self.run_id} has no output {name!r} yet (declared: {declared})")
        return PortDataReference(name, record.outputs[name])

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the pipeline's YAML to `path` (default: `<pipeline name>.yml` here); it loads back to
        the same pipeline from anywhere (step folders and projects as absolute paths)."""
        import yaml

        from mlproj.pipelines.records import load_recorded

        pipeline = load_recorded(self._record())
        target = Path(path) if path is not None else Path(f"{pipeline.name}.yml")
        if target.is_dir():
            target = target / f"{pipeline.name}.yml"
        text = yaml.safe_dump(pipeline.to_document(), sort_keys=False, allow_unicode=True)
        target.write_text(text, encoding="utf-8")
        return target

    def wait_for_completion(
        self,
        show_output: bool = True,  # noqa: FBT001, FBT002 - Azure ML's PipelineRun's signature
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,  # noqa: FBT001, FBT002 - Azure ML's PipelineRun's signature
    ) -> str:
        """Wait until the pipeline ends and return its status. `show_output` prints its events as they
        come; `raise_on_error` raises `ExecutionError` unless it finished; `TimeoutError` if it is still
        running after `timeout_seconds`."""
        from mlproj.api import _write_stdout
        from mlproj.execution import control
        from mlproj.values import check_timeout

        check_timeout(timeout_seconds, "timeout_seconds")
        timeout = None if timeout_seconds >= sys.maxsize else timeout_seconds
        with self._opened() as store:
            if show_output:
                final = control.follow(store, self.run_id, _write_stdout, timeout=timeout)
            else:
                final = control.wait(store, self.run_id, timeout=timeout)
        if final is None:
            raise TimeoutError(f"pipeline run {self.run_id} did not end within {timeout_seconds} s")
        if raise_on_error:
            raise_unless_finished(final, "pipeline run")
        return final.status.value

    def child_run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED.format("given child runs"))

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED.format("completed"))

    def fail(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED.format("failed"))


@contextmanager
def _store(home: Home) -> Iterator[Store]:
    store = Store.open(home)
    try:
        yield store
    finally:
        store.close()
