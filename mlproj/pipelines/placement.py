"""Where a pipeline's steps run and with what (design.md §9, §12): each step's backend (its own, else
`-b`, else the pipeline's settings, else the settings files, else local) with its configuration and
Azure ML's resources scaled onto it; and what the run's options leave open, from the settings."""

from __future__ import annotations

from mlproj.errors import InputError
from mlproj.structs import replace

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    import os
    from typing import Any

    from mlproj.backends.base import Backend
    from mlproj.pipelines.model import Pipeline, Step
    from mlproj.pipelines.options import PipelineOptions


def configured(
    options: PipelineOptions, pipeline: Pipeline, folders: tuple[str | os.PathLike[str], ...], home: str
) -> PipelineOptions:
    """The options with what they leave open taken from the pipeline's settings and then the settings
    (environment variables, mlproj.toml beside the pipeline or in the current folder, the user's
    config.toml): the environment manager, the backend and its configuration, the experiment, the
    steps run at once. The pipeline's own settings come before the settings files."""
    if options.origin.get("published_pipeline_id"):  # it runs as it was published, wherever it fires
        return options
    from mlproj.backends import check_setting
    from mlproj.config import backend_config as configured_table
    from mlproj.config import lookup

    def setting(key: str, given: Any = None) -> Any:
        found = lookup(key, given=given, folders=folders, home=home)
        if (
            key in ("backend", "env_manager")
            and found.value is not None
            and found.source not in ("flag", "default")
        ):
            check_setting(found)
        return found

    backend, backend_config = options.backend, options.backend_config
    if backend is None and pipeline.backend is None:
        found = setting("backend")
        backend = found.value if found.source != "default" else None
    if backend is not None and backend_config is None:  # -b or the files chose it: their table
        backend_config = configured_table(backend, folders=folders, home=home).value
    experiment = options.experiment
    if not options.experiment_id:
        experiment = experiment or pipeline.experiment_name or setting("experiment_name").value
    max_parallel = options.max_parallel
    if max_parallel is None:
        found = setting("max_parallel")
        from_variable = found.source.startswith("environment")
        max_parallel = found.value if from_variable else pipeline.max_parallel or found.value
    # A variable is MLPROJ_ENV_MANAGER's to read (envs.choose_manager); a file's value is named by
    # it; the pipeline's own settings.env_manager comes before the files.
    manager = setting("env_manager", options.env_manager)
    from_file = (
        manager.source not in ("flag", "default")
        and not manager.source.startswith("environment")
        and pipeline.env_manager is None
    )
    return replace(
        options,
        backend=backend,
        backend_config=backend_config,
        env_manager=manager.value if manager.source == "flag" or from_file else None,
        env_manager_from=manager.where if from_file else options.env_manager_from,
        experiment=experiment,
        max_parallel=max_parallel,
    )


def step_backend(
    pipeline: Pipeline, step: Step, options: PipelineOptions
) -> tuple[str, dict[str, Any], Backend]:
    """Where a step runs: its own `backend`, else `-b`, else `settings.backend`, else local; with the
    configuration that goes with it, checked."""
    from mlproj.backends import get_backend

    if step.backend is not None:
        name, config, where = step.backend, step.backend_config, "backend_config"
    elif options.backend is not None:
        name, config, where = options.backend, options.backend_config, "--backend-config"
    elif pipeline.backend is not None:
        name, config, where = pipeline.backend, pipeline.backend_config, "settings.backend_config"
    else:
        name, config, where = "local", step.backend_config or pipeline.backend_config, "backend_config"
    backend = get_backend(name)
    config = scaled(name, dict(config or {}), step, f"{pipeline.jobs_key}.{step.name}")
    try:
        return name, backend.validate_config(config), backend
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def scaled(backend: str, config: dict[str, Any], step: Step, key: str) -> dict[str, Any]:
    """Azure ML's `resources` and `distribution` where the backend gives them a meaning: Slurm's nodes
    and tasks per node; on Ray, a CPU per process for the job's entrypoint (unless the configuration
    says `num_cpus`); a notice where they have none."""
    from mlproj.notices import warn

    count = step.resources.get("instance_count")
    processes = step.distribution.get("process_count_per_instance", step.distribution.get("worker_count"))
    ignored = sorted(set(step.resources) - {"instance_count"})
    if ignored:
        warn(f"{key}.resources: {', '.join(ignored)} have no meaning here: ignored")
    if count is None and processes is None:
        return config
    nodes = count if isinstance(count, int) and count > 0 else 1
    tasks = processes if isinstance(processes, int) and processes > 0 else 1
    if backend == "local" and is_parallel_job(step) and nodes > 1:
        warn(f"{key}.resources.instance_count: this machine is one instance: {tasks} processes")
    if backend == "slurm" and is_parallel_job(step):  # an instance is a task of its processes' CPUs
        extra = [*(config.get("sbatch_args") or []), f"--ntasks={nodes}", f"--cpus-per-task={tasks}"]
        return {**config, "sbatch_args": extra}
    if backend == "slurm":
        extra = list(config.get("sbatch_args") or [])
        if count is not None:
            extra.append(f"--nodes={nodes}")
        if processes is not None:
            extra.append(f"--ntasks-per-node={tasks}")
        return {**config, "sbatch_args": extra}
    if backend == "ray" and "num_cpus" not in config:
        return {**config, "num_cpus": nodes * tasks}
    if backend != "ray" and nodes * tasks > 1 and not is_parallel_job(step):
        warn(
            f"{key}: resources.instance_count and distribution have no meaning on the "
            f"{backend} backend: the step runs as one process"
        )
    return config


def is_parallel_job(step: Step) -> bool:
    """An Azure ML parallel job (mlproj.pipelines.parallel_jobs): its processes are its own workers."""
    from mlproj.pipelines.parallel_jobs import RUNNER_VARIABLE

    return RUNNER_VARIABLE in step.environment_variables
