"""`ray`: runs submitted through the Ray Job Submission API (`pip install 'mlproj[ray]'`).

The project folder is uploaded as the job's `working_dir`, and its Python environment becomes the job's
`runtime_env` (`pip` for virtualenv, `uv` for uv, `conda` for conda), so the cluster builds it; nothing
is built where mlproj runs. The job's output is tailed into the run's log; `cancel` is `stop_job`.
The job is named `mlproj-<run id>`, so any shell can find it again.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from mlproj.backends.base import Backend, Launch, config_of, mapping, positive_int, positive_number, text
from mlproj.backends.workload import ClusterWorkload, JobState, append_missing
from mlproj.errors import InputError, MlprojError
from mlproj.process import CREDENTIAL_VARIABLES, RUN_DIR_VARIABLE, RUN_ID_VARIABLE
from mlproj.runs.status import RunStatus

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.backends.workload import Workload
    from mlproj.envs.base import EnvManager, PortableEnv
    from mlproj.runs.envspec import EnvSpec
    from mlproj.runs.record import RunRecord

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
STATES = {
    "PENDING": RunStatus.QUEUED,
    "RUNNING": RunStatus.RUNNING,
    "SUCCEEDED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "STOPPED": RunStatus.CANCELED,
}
# mlproj's variables that travel with the job (the rest of this machine's environment does not).
CARRIED = (
    RUN_ID_VARIABLE,
    RUN_DIR_VARIABLE,
    "PYTHONUNBUFFERED",
    "MLPROJ_PIPELINE_RUN_ID",
    "MLPROJ_STEP",
    "MLPROJ_BACKEND",
    *CREDENTIAL_VARIABLES,
)
LOG_WAIT = 10.0  # seconds to let the log tail catch up once the job has ended
_CLIENTS: dict[str, Any] = {}


def address_of(config: Mapping[str, Any]) -> str:
    return str(config.get("address") or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS)


def submission_id(run_id: str) -> str:
    return f"mlproj-{run_id}"


def client(address: str, error: type[MlprojError] = InputError) -> Any:
    """A Job Submission client for the cluster at `address` (one per address per process)."""
    if address in _CLIENTS:
        return _CLIENTS[address]
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise error("backend ray: the ray package is not installed: pip install 'mlproj[ray]'") from None
    import logging

    for name in list(logging.root.manager.loggerDict):  # Ray's INFO lines are not for our users
        if name == "ray" or name.startswith("ray."):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        # Ray's client prefers RAY_ADDRESS to the address it is given: the address chosen here wins.
        with _environment_without("RAY_ADDRESS"):
            made = JobSubmissionClient(address)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, or Ray's own errors for a bad address
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"backend ray: no Ray cluster answers at {address}: {reason[:300]}") from None
    _CLIENTS[address] = made
    return made


@contextlib.contextmanager
def _environment_without(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


class RayBackend(Backend):
    name = "ray"
    prepares_environment = False  # the cluster builds the job's runtime_env
    queues = True
    copies_working_dir = True  # uploaded as the job's working_dir
    config_fields = {  # noqa: RUF012 - read-only table
        "address": (text, "the address of the Ray dashboard, such as http://127.0.0.1:8265"),
        "num_cpus": (positive_number, "a number of CPUs for the job's entrypoint"),
        "num_gpus": (positive_number, "a number of GPUs for the job's entrypoint"),
        "memory": (positive_int, "bytes of memory for the job's entrypoint"),
        "resources": (mapping, "custom resources, name → amount"),
        "runtime_env": (mapping, "runtime_env settings merged over the ones mlproj makes"),
    }

    def check(self, config: Mapping[str, Any], manager: EnvManager, spec: EnvSpec | None) -> None:
        super().check(config, manager, spec)
        try:
            manager.portable(spec)  # an environment Ray cannot build is an input error now
        except InputError as exc:
            raise InputError(f"backend ray: {exc}") from None
        client(address_of(config))

    def launch(self, launch: Launch) -> Workload:
        record, request = launch.record, launch.process
        config = dict(launch.request.backend_config)
        env = runtime_env(launch.portable)
        env["working_dir"] = str(request.cwd)
        # The run's own variables, and those its request adds (MLflow tracking's, a pipeline's): the
        # cluster's workers do not inherit this process's environment.
        carried = {name: request.env[name] for name in CARRIED if name in request.env}
        env["env_vars"] = {**carried, **launch.request.env}
        for key, value in (config.get("runtime_env") or {}).items():
            env[key] = (
                {**env[key], **value} if isinstance(env.get(key), dict) and isinstance(value, dict) else value
            )
        argv = [Path(launch.request.shell).name, "-c", launch.request.command]  # the cluster's own shell
        jobs = client(address_of(config), MlprojError)
        options: dict[str, Any] = {}
        for key, option in (("num_cpus", "entrypoint_num_cpus"), ("num_gpus", "entrypoint_num_gpus")):
            if key in config:
                options[option] = config[key]
        if "memory" in config:
            options["entrypoint_memory"] = config["memory"]
        if "resources" in config:
            options["entrypoint_resources"] = config["resources"]
        try:
            job_id = jobs.submit_job(
                entrypoint=" ".join(shlex.quote(arg) for arg in argv),
                runtime_env=env,
                submission_id=submission_id(record.run_id),
                metadata={"mlproj_run_id": record.run_id},
                **options,
            )
        except Exception as exc:  # noqa: BLE001 - Ray's errors are not known: any one is a refusal
            raise MlprojError(f"backend ray: the cluster refused the job: {_reason(exc)}") from None
        return RayJob(f"ray job {job_id}", record, str(job_id), jobs, request.log_path)

    def job_state(self, record: RunRecord) -> JobState | None:
        jobs = client(address_of(config_of(record)), MlprojError)
        return query(jobs, record.job_id or submission_id(record.run_id))

    def cancel_job(self, record: RunRecord, grace: float) -> None:  # noqa: ARG002 - the Backend interface's signature
        jobs = client(address_of(config_of(record)), MlprojError)
        with contextlib.suppress(Exception):  # it has ended, or the cluster forgot it: nothing to stop
            jobs.stop_job(record.job_id or submission_id(record.run_id))

    def collect_logs(self, record: RunRecord) -> None:
        if not record.log_path:
            return
        jobs = client(address_of(config_of(record)), MlprojError)
        try:
            text_now = jobs.get_job_logs(record.job_id or submission_id(record.run_id))
        except Exception:  # noqa: BLE001 - whatever Ray raises, there is no log to collect
            return
        append_missing(Path(record.log_path), text_now)


def runtime_env(portable: PortableEnv | None) -> dict[str, Any]:
    """The environment as a Ray runtime_env the cluster builds (`pip`, `uv` or `conda`)."""
    if portable is None:
        return {}
    if portable.conda is not None:
        return {"conda": dict(portable.conda)}
    return {portable.installer: list(portable.packages)} if portable.packages else {}


def query(jobs: Any, job_id: str) -> JobState | None:
    try:
        info = jobs.get_job_info(job_id)
    except Exception as exc:  # noqa: BLE001 - Ray's errors are not typed: a missing job is told by its message
        if "does not exist" in str(exc) or "404" in str(exc):
            return None
        raise MlprojError(f"backend ray: cannot ask about job {job_id}: {_reason(exc)}") from None
    native = str(getattr(info.status, "value", info.status))
    status = STATES.get(native, RunStatus.RUNNING)
    exit_code = getattr(info, "driver_exit_code", None)
    reason = None
    if status is RunStatus.FAILED and info.message and not exit_code:
        reason = f"Ray: {info.message.strip().splitlines()[-1][:300]}"
    if status is RunStatus.CANCELED:
        reason = "stopped on the cluster (STOPPED)"
    started, ended = getattr(info, "start_time", None), getattr(info, "end_time", None)
    return JobState(
        status,
        native,
        exit_code,
        reason,
        started_at=started / 1000 if started and status is not RunStatus.QUEUED else None,
        ended_at=ended / 1000 if ended else None,
    )


class RayJob(ClusterWorkload):
    """A Ray job whose output a thread tails into the run's log."""

    def __init__(self, described: str, record: RunRecord, job_id: str, jobs: Any, log_path: Path) -> None:
        super().__init__(described, record, job_id, poll=0.25)
        self.jobs = jobs
        self.log_path = log_path
        self.written = 0  # bytes of the job's output in the log so far
        self._lock = threading.Lock()
        self._closed = False
        self._tail = threading.Thread(target=self._follow, name=f"ray-logs-{job_id}", daemon=True)
        self._tail.start()

    def fetch_state(self) -> JobState | None:
        return query(self.jobs, self.job_id or "")

    def _follow(self) -> None:
        import asyncio

        async def tail() -> None:
            with self.log_path.open("ab") as log:
                async for chunk in self.jobs.tail_job_logs(self.job_id):
                    data = chunk.encode("utf-8")
                    with self._lock:
                        if self._closed:  # `finish` has written the rest
                            return
                        log.write(data)
                        log.flush()
                        self.written += len(data)

        with contextlib.suppress(Exception):  # the final read in `finish` catches up whatever was missed
            asyncio.run(tail())

    def stop_job(self, sig: int) -> None:  # noqa: ARG002 - ClusterWorkload's signature (Ray's stop_job takes no signal)
        with contextlib.suppress(Exception):  # it has ended meanwhile
            self.jobs.stop_job(self.job_id)

    def release(self) -> None:
        """The job has ended: its complete output is one request away, while Ray's log stream closes
        seconds later. The tail is told to stop, and the log completed from the full output."""
        try:
            complete = self.jobs.get_job_logs(self.job_id)
        except Exception:  # noqa: BLE001 - whatever Ray raises, the stream is all there is
            self._tail.join(LOG_WAIT)  # the stream is all there is
            return
        with self._lock:
            self._closed = True
            append_missing(self.log_path, complete, self.written)


def _reason(exc: BaseException) -> str:
    message = str(exc).strip()
    return message.splitlines()[-1][:300] if message else type(exc).__name__
