"""The pipeline side of the Python API, shaped like Azure ML's `PipelineRun`, `PublishedPipeline` and
`PipelineEndpoint` (design.md §7, §10); `home` plays the workspace's part (None: MLPROJ_HOME).

run = mlproj.PipelineRun.get("~/.mlproj", run_id)
run.wait_for_completion(show_output=False)
for step in run.get_steps():
    print(step.name, step.get_status(), step.reused_from)
model = run.get_pipeline_output("model").download("./model")
published = run.publish_pipeline("nightly")
published.submit("nightly-runs", {"lr": 0.1})
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlproj.api import SubmittedRun
from mlproj.api.steps import (
    _MANAGED,
    GraphNode,
    PipelineGraph,
    PortDataReference,
    StepRun,
    StepRunOutput,
    _RunView,
    _store,
    _wait,
)
from mlproj.errors import InputError, RunNotFoundError
from mlproj.home import Home
from mlproj.runs.catalog import ACTIVE, DISABLED
from mlproj.runs.record import RunRecord
from mlproj.runs.status import RunKind

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from mlproj.runs.catalog import Endpoint, Published

__all__ = [
    "GraphNode",
    "PipelineEndpoint",
    "PipelineGraph",
    "PipelineRun",
    "PortDataReference",
    "PublishedPipeline",
    "StepRun",
    "StepRunOutput",
    "get_pipeline_runs",
]
SUBMIT_ROUTE = "/api/v1/published/{id}/submit"  # under `mlproj serve`'s address
ENDPOINT_ROUTE = "/api/v1/endpoints/{name}/submit"


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

    @property
    def id(self) -> str:
        """The pipeline run's ID (Azure ML's `Run.id`)."""
        return self.run_id

    def get_tags(self) -> dict[str, str]:
        return dict(self._record().tags)

    def get_children(self) -> list[StepRun]:
        """The pipeline's step runs (each step's latest attempt), as Azure ML's `get_children()`."""
        return self.get_steps()

    def get_steps(self) -> list[StepRun]:
        """Each step's latest attempt, in pipeline order."""
        latest: dict[str, RunRecord] = {}
        with self._opened() as store:
            for record in store.steps_of(self.run_id):
                latest[record.step or ""] = record
        order = self._pipeline().order()
        return [StepRun(latest[name], self._home) for name in order if name in latest]

    def find_step_run(self, name: str) -> list[StepRun]:
        """Every attempt of the step called `name`, oldest first (empty if there is no such step)."""
        with self._opened() as store:
            return [StepRun(r, self._home) for r in store.steps_of(self.run_id) if r.step == name]

    def _pipeline(self) -> Any:
        from mlproj.pipelines.records import load_recorded

        return load_recorded(self._record())

    def get_graph(self) -> PipelineGraph:
        """The graph: its nodes (steps, with their step runs) and edges; `to_dict()` gives
        {"nodes": [step names], "edges": [[from, to], ...]}, as `mlproj graph --format json`."""
        pipeline = self._pipeline()
        runs: dict[str, list[StepRun]] = {}
        with self._opened() as store:
            for record in store.steps_of(self.run_id):
                runs.setdefault(record.step or "", []).append(StepRun(record, self._home))
        nodes = [GraphNode(name, runs.get(name, [])) for name in pipeline.order()]
        return PipelineGraph(nodes, [tuple(edge) for edge in pipeline.edges()])

    def get_pipeline_output(self, name: str) -> PortDataReference:
        """A named output of the pipeline (its `outputs:`), once the step that makes it finished."""
        record = self._record()
        if name not in record.outputs:
            from mlproj.pipelines.records import load_recorded

            declared = ", ".join(load_recorded(record).outputs) or "none"
            raise InputError(f"pipeline run {self.run_id} has no output {name!r} yet (declared: {declared})")
        return PortDataReference(name, record.outputs[name])

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the pipeline's YAML as `pipeline.yml` into the folder `path` (default: here), as Azure
        ML saves it (a `path` ending in .yml/.yaml names the file itself); it loads back to the same
        pipeline from anywhere (step folders and projects as absolute paths)."""
        pipeline = self._pipeline()
        target = Path(path).expanduser() if path is not None else Path.cwd()
        if target.suffix.lower() not in (".yml", ".yaml"):
            target.mkdir(parents=True, exist_ok=True)
            target = target / "pipeline.yml"
        target.write_text(pipeline.to_text(), encoding="utf-8")
        return target

    def wait_for_completion(
        self,
        show_output: bool = True,  # noqa: FBT001, FBT002 - Azure ML's PipelineRun's signature
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,  # noqa: FBT001, FBT002 - Azure ML's PipelineRun's signature
    ) -> str:
        """Wait until the pipeline ends and return its status. `show_output` prints its events and its
        steps' output (each line after its step's name) as they come; `raise_on_error` raises
        `ExecutionError` unless it finished; `TimeoutError` if it is still running after
        `timeout_seconds`."""
        return _wait(
            self,
            "pipeline run",
            show_output=show_output,
            timeout_seconds=timeout_seconds,
            raise_on_error=raise_on_error,
            steps=True,
        )

    def publish_pipeline(
        self,
        name: str,
        description: str | None = None,
        version: str | None = None,
        continue_on_step_failure: bool | None = None,  # noqa: FBT001 - Azure ML's PipelineRun's signature
    ) -> PublishedPipeline:
        """Publish the pipeline this run ran (design.md §10): a snapshot others can run by its ID."""
        return publish_run(
            self._home,
            run_id=self.run_id,
            name=name,
            description=description,
            version=version,
            continue_on_step_failure=continue_on_step_failure,
        )

    @staticmethod
    def get_pipeline_runs(home: str | os.PathLike[str] | Home | None, pipeline_id: str) -> list[PipelineRun]:
        """The runs of a published pipeline, newest first."""
        return get_pipeline_runs(home, pipeline_id)

    def child_run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED.format("given child runs"))

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED.format("completed"))

    def fail(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_MANAGED.format("failed"))


def _home(home: str | os.PathLike[str] | Home | None) -> Home:
    return home if isinstance(home, Home) else Home.from_env(home)


class PublishedPipeline:
    """A published pipeline: an immutable snapshot that runs again by its ID."""

    def __init__(self, record: Published, home: Home) -> None:
        self._record = record
        self._home = home

    @classmethod
    def get(cls, home: str | os.PathLike[str] | Home | None, id: str) -> PublishedPipeline:
        resolved = _home(home)
        with _store(resolved) as store:
            return cls(store.catalog().published(id), resolved)

    @classmethod
    def get_all(
        cls,
        home: str | os.PathLike[str] | Home | None = None,
        active_only: bool = True,  # noqa: FBT001, FBT002 - Azure ML's signature
    ) -> list[PublishedPipeline]:
        resolved = _home(home)
        with _store(resolved) as store:
            return [
                cls(record, resolved) for record in store.catalog().all_published(active_only=active_only)
            ]

    def __repr__(self) -> str:
        return f"PublishedPipeline(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    def _refresh(self) -> Published:
        with _store(self._home) as store:
            self._record = store.catalog().published(self._record.id)
        return self._record

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def description(self) -> str | None:
        return self._record.description

    @property
    def version(self) -> str | None:
        return self._record.version

    @property
    def status(self) -> str:
        """`Active` or `Disabled`."""
        return self._refresh().status

    @property
    def endpoint(self) -> str:
        """The REST route that runs it, under `mlproj serve`'s address."""
        return SUBMIT_ROUTE.format(id=self.id)

    @property
    def continue_on_step_failure(self) -> bool:
        return self._record.continue_on_step_failure

    def to_dict(self) -> dict[str, Any]:
        return self._refresh().to_dict()

    def submit(
        self,
        experiment_name: str | None = None,
        pipeline_parameters: Mapping[str, Any] | None = None,
        *,
        continue_on_step_failure: bool | None = None,
    ) -> PipelineRun:
        """Start a run of it in the background; its `PipelineRun`. Refused (ConflictError) when disabled."""
        from mlproj.publish import published_options
        from mlproj.structs import replace
        from mlproj.submit import submit

        with _store(self._home) as store:
            options = published_options(
                store, self.id, parameters=pipeline_parameters, experiment=experiment_name
            )
            if continue_on_step_failure is not None:
                options = replace(options, continue_on_step_failure=continue_on_step_failure)
            record = submit(store, options, detach=True)
        return PipelineRun(None, record.run_id, self._home)

    def disable(self) -> None:
        self._set(DISABLED)

    def enable(self) -> None:
        self._set(ACTIVE)

    def _set(self, status: str) -> None:
        with _store(self._home) as store:
            self._record = store.catalog().set_published_status(self.id, status)

    def get_runs(self) -> list[PipelineRun]:
        return get_pipeline_runs(self._home, self.id)


def get_pipeline_runs(home: str | os.PathLike[str] | Home | None, pipeline_id: str) -> list[PipelineRun]:
    """The runs submitted from a published pipeline, newest first (Azure ML's `get_pipeline_runs`)."""
    resolved = _home(home)
    with _store(resolved) as store:
        published = store.catalog().published(pipeline_id)
        records = store.list_runs(published=published.id)
    return [PipelineRun(None, record.run_id, resolved) for record in records]


def publish_run(
    home: Home,
    *,
    run_id: str,
    name: str,
    description: str | None,
    version: str | None,
    continue_on_step_failure: bool | None,
) -> PublishedPipeline:
    """A pipeline run's pipeline (its recorded, resolved copy) published (`PipelineRun.publish_pipeline`)."""
    from mlproj.pipelines.records import SNAPSHOT
    from mlproj.publish import publish

    with _store(home) as store:
        record = store.get(run_id)
        source = Path(record.run_dir or home.run_dir(run_id)) / SNAPSHOT
        published = publish(
            store,
            str(source),
            name=name,
            description=description,
            version=version,
            continue_on_step_failure=bool(continue_on_step_failure),
            caller_dir=source.parent,
        )
    return PublishedPipeline(published, home)


class PipelineEndpoint:
    """A name over versions of published pipelines, one of them the default (Azure ML's
    `PipelineEndpoint`)."""

    def __init__(self, record: Endpoint, home: Home) -> None:
        self._record = record
        self._home = home

    @classmethod
    def publish(
        cls,
        home: str | os.PathLike[str] | Home | None,
        name: str,
        pipeline: PublishedPipeline | str,
        description: str | None = None,
    ) -> PipelineEndpoint:
        """A new endpoint whose version "0" (its default) is `pipeline`."""
        from mlproj.publish import create_endpoint

        resolved = _home(home)
        with _store(resolved) as store:
            return cls(create_endpoint(store, name, _pipeline_id(pipeline), description), resolved)

    @classmethod
    def get(cls, home: str | os.PathLike[str] | Home | None = None, *, name: str) -> PipelineEndpoint:
        resolved = _home(home)
        with _store(resolved) as store:
            return cls(store.catalog().endpoint(name), resolved)

    @classmethod
    def get_all(cls, home: str | os.PathLike[str] | Home | None = None) -> list[PipelineEndpoint]:
        resolved = _home(home)
        with _store(resolved) as store:
            return [cls(record, resolved) for record in store.catalog().endpoints()]

    def __repr__(self) -> str:
        return f"PipelineEndpoint(name={self.name!r}, default_version={self.default_version!r})"

    def _refresh(self) -> Endpoint:
        with _store(self._home) as store:
            self._record = store.catalog().endpoint(self._record.name)
        return self._record

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def description(self) -> str | None:
        return self._record.description

    @property
    def status(self) -> str:
        return self._refresh().status

    @property
    def default_version(self) -> str:
        return self._refresh().default_version

    @property
    def endpoint(self) -> str:
        return ENDPOINT_ROUTE.format(name=self.name)

    def add(self, pipeline: PublishedPipeline | str) -> str:
        """Add `pipeline` as the next version; that version."""
        return self._add(pipeline, set_default=False)

    def add_default(self, pipeline: PublishedPipeline | str) -> str:
        """Add `pipeline` as the next version and make it the default; that version."""
        return self._add(pipeline, set_default=True)

    def _add(self, pipeline: PublishedPipeline | str, *, set_default: bool) -> str:
        from mlproj.publish import add_version

        with _store(self._home) as store:
            self._record = add_version(store, self.name, _pipeline_id(pipeline), set_default=set_default)
        return self._record.versions[-1][0]

    def set_default_version(self, version: str | int) -> None:
        with _store(self._home) as store:
            self._record = store.catalog().set_default_version(self.name, str(version))

    def get_pipeline(self, version: str | int | None = None) -> PublishedPipeline:
        pipeline_id = self._refresh().pipeline_id(None if version is None else str(version))
        return PublishedPipeline.get(self._home, pipeline_id)

    def list_pipelines(self) -> list[PublishedPipeline]:
        """Its published pipelines, in the order of their versions."""
        return [
            PublishedPipeline.get(self._home, pipeline_id) for _v, pipeline_id in self._refresh().versions
        ]

    def list_versions(self) -> list[tuple[str, str]]:
        """(version, published pipeline ID), in order."""
        return list(self._refresh().versions)

    def disable(self) -> None:
        with _store(self._home) as store:
            self._record = store.catalog().set_endpoint_status(self.name, DISABLED)

    def enable(self) -> None:
        with _store(self._home) as store:
            self._record = store.catalog().set_endpoint_status(self.name, ACTIVE)

    def submit(
        self,
        experiment_name: str | None = None,
        pipeline_version: str | int | None = None,
        pipeline_parameters: Mapping[str, Any] | None = None,
    ) -> PipelineRun:
        """Run its default version (or `pipeline_version`) in the background; refused when disabled."""
        from mlproj.publish import submit_endpoint

        version = None if pipeline_version is None else str(pipeline_version)
        with _store(self._home) as store:
            record = submit_endpoint(
                store, self.name, version=version, parameters=pipeline_parameters, experiment=experiment_name
            )
        return PipelineRun(None, record.run_id, self._home)


def _pipeline_id(pipeline: PublishedPipeline | str) -> str:
    return pipeline.id if isinstance(pipeline, PublishedPipeline) else str(pipeline)
