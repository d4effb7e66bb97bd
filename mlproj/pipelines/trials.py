"""A running sweep's trials (design.md §9): their points, their objective read from MLflow metrics,
early termination while they run, the sweep's timeout, and its best trial at the end.

A tracked pipeline's trials are MLflow runs nested under its run, and their metrics are read from the
tracking store. Without tracking, each trial logs to an MLflow SQLite store in its own folder
(`MLFLOW_TRACKING_URI=sqlite:///…/mlflow.db`), which mlproj reads without MLflow."""

from __future__ import annotations

import time
from pathlib import Path

from mlproj.pipelines.sweeps import local_history, sample, to_stop
from mlproj.runs.status import RunStatus

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Protocol

    from mlproj.pipelines.model import Step
    from mlproj.pipelines.plan import PipelinePlan
    from mlproj.runs.record import RunRecord
    from mlproj.runs.store import Store

    class Running(Protocol):
        node: str
        iterations: list[str]

    class Deciding(Protocol):
        """What a sweep needs of the pipeline's control nodes (mlproj.pipelines.controls)."""

        plan: PipelinePlan
        owner: Any

        def _end(
            self,
            name: str,
            status: RunStatus,
            *,
            error: str | None = None,
            reason: str | None = None,
            outputs: dict[str, str] | None = None,
        ) -> None: ...


POLL = 0.5  # seconds between two looks at the running trials' metrics
DATABASE = "mlflow.db"


class SweepWatch:
    def __init__(self, controls: Deciding) -> None:
        self.controls = controls
        self._next = 0.0
        self._started: dict[str, float] = {}
        self._hopeless: dict[str, str] = {}  # sweeps stopped at their first trial, with why

    @property
    def plan(self) -> PipelinePlan:
        return self.controls.plan

    def node_of(self, trial: str) -> Step:
        return self.plan.pipeline.steps[trial.rsplit(".", 1)[0]]

    def points(self, step: Step) -> list[dict[str, Any]]:
        control = step.control or {}
        self._started[step.name] = time.monotonic()
        return sample(control["space"], control["sampling"], int(control["max_trials"]), control.get("seed"))

    # --- metrics -------------------------------------------------------------------------------------

    def history(self, record: RunRecord) -> list[float]:
        """A trial's primary metric, every value it logged so far (a reused trial: the run it reused)."""
        metric = str((self.node_of(record.step or "").control or {}).get("metric"))
        if record.reused_from:
            record = self.controls.owner.store.get(record.reused_from)
        if record.mlflow_run_id and record.tracking_uri:
            from mlproj.errors import MlprojError
            from mlproj.tracking import open_tracker

            try:
                tracker = open_tracker(record.tracking_uri)
                try:
                    return tracker.metric_history(record.mlflow_run_id, metric)
                finally:
                    tracker.close()
            except MlprojError:
                return []
        return local_history(str(Path(record.run_dir or "") / DATABASE), metric)

    def check(self, record: RunRecord, store: Store) -> str | None:
        """Why a trial that exited well failed: it logged no primary metric (`record`: as it is now;
        `store`: the calling thread's)."""
        name = record.step or ""
        metric = (self.node_of(name).control or {}).get("metric")
        values = self.history(record)
        if values:  # said where the trial's record is read (status, the web UI): the last value
            said = f"{metric}={values[-1]:g}"
            store.update(record.run_id, reason=f"{record.reason}; {said}" if record.reason else said)
            return None
        return f"the trial logged no primary metric {metric!r} (MLflow, through mlflow.log_metric)"

    def env(self, name: str) -> dict[str, str]:
        record = self.controls.owner.latest[name]
        if record.mlflow_run_id:
            return {}
        return {"MLFLOW_TRACKING_URI": f"sqlite:///{Path(record.run_dir or '') / DATABASE}"}

    # --- while they run ----------------------------------------------------------------------------

    def poll(self, loops: Sequence[Running], running: dict[str, Any]) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + POLL
        owner = self.controls.owner
        for loop in loops:
            control = self.plan.pipeline.steps[loop.node].control or {}
            timeout = control.get("timeout")
            if timeout and now - self._started.get(loop.node, now) > float(timeout):
                self._time_out(loop, running, float(timeout))
                continue
            policy = control.get("policy")
            if not policy:
                continue
            records = [owner.store.get(owner.latest[name].run_id) for name in loop.iterations]
            live = {r.step or "": self.history(r) for r in records if r.step in running}
            others = [self.history(r) for r in records if r.status is RunStatus.FINISHED]
            for name, why in to_stop(policy, str(control.get("goal")), live, others).items():
                owner.stop_step(name, f"early termination ({why})")

    def _time_out(self, loop: Running, running: dict[str, Any], timeout: float) -> None:
        owner = self.controls.owner
        why = f"the sweep's timeout ({timeout:g} s) passed"
        for name in loop.iterations:
            if name in running:
                owner.stop_step(name, why)
            elif not owner.latest[name].is_final:
                owner._skip(name, why)

    def stop_if_hopeless(self, loop: Running, ended: RunRecord) -> None:
        """The first trial to end exited well but logged no primary metric: no trial will, most likely
        (a misspelt metric), so the trials not started are skipped and the running ones stopped."""
        owner = self.controls.owner
        if ended.status is not RunStatus.FAILED or "logged no primary metric" not in (ended.error or ""):
            return
        others = [owner.latest[name] for name in loop.iterations if name != ended.step]
        if any(record.is_final for record in others) or loop.node in self._hopeless:
            return
        metric = (self.plan.pipeline.steps[loop.node].control or {}).get("metric")
        why = f"the first trial, {ended.step}, logged no primary metric {metric!r}: the sweep stopped"
        self._hopeless[loop.node] = why
        for record in others:
            if record.status is RunStatus.NOT_STARTED:
                owner._skip(record.step or "", why)
            else:
                owner.stop_step(record.step or "", why)

    # --- the end -----------------------------------------------------------------------------------

    def finish(self, loop: Running, ended: list[RunRecord]) -> None:
        """Every trial ended: the sweep's outputs and parameters are its best trial's."""
        control = self.plan.pipeline.steps[loop.node].control or {}
        goal, metric = str(control.get("goal")), str(control.get("metric"))
        scored = [
            (values[-1], record)
            for record in ended
            if record.status is RunStatus.FINISHED and (values := self.history(record))
        ]
        if not scored:
            error = self._hopeless.get(loop.node) or f"no trial finished with its primary metric {metric!r}"
            self.controls._end(loop.node, RunStatus.FAILED, error=error)
            return
        pick = max if goal == "maximize" else min
        best_value, best = pick(scored, key=lambda pair: pair[0])
        store = self.controls.owner.store
        for value, record in scored:  # a reused trial's metric is the run's it reused: said here
            if record.reused_from and f"{metric}=" not in (record.reason or ""):
                said = f"{metric}={value:g}"
                store.update(record.run_id, reason=f"{record.reason}; {said}" if record.reason else said)
        store.update(self.controls.owner.latest[loop.node].run_id, parameters=dict(best.parameters))
        reason = f"best trial {best.step}: {metric}={best_value:g} ({goal}), of {len(ended)} trials"
        self.controls._end(loop.node, RunStatus.FINISHED, reason=reason, outputs=dict(best.outputs))
