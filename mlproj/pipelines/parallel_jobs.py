"""An Azure ML parallel job (design.md §9) read as the command step that runs it: the entry script's
`init()` and `run(mini_batch)` over the input's mini-batches, through mlproj's parallel runner
(mlproj/pipelines/parallel_runner.py, run with the step environment's interpreter).

```yaml
score:
  type: parallel
  inputs: {data: {type: uri_folder, path: ./images}, model: ...}
  outputs: {scores: {type: uri_file}}
  input_data: ${{inputs.data}}
  mini_batch_size: "10"                 # files per batch; rows (or a size, 100kb) for tabular data
  max_concurrency_per_instance: 2
  error_threshold: -1
  mini_batch_error_threshold: 5
  retry_settings: {max_retries: 2, timeout: 60}
  logging_level: INFO
  task:
    type: run_function
    code: ./src
    entry_script: score.py
    program_arguments: --model ${{inputs.model}}
    append_row_to: ${{outputs.scores}}
    environment: {conda_file: ./env.yml}
```
"""

from __future__ import annotations

import shlex
from pathlib import Path

from mlproj.pipelines.model import BINDING

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

    from mlproj.pipelines.problems import Problems, Where

RUNNER = Path(__file__).with_name("parallel_runner.py")
RUNNER_VARIABLE = "MLPROJ_PARALLEL_RUNNER"
PARALLEL_KEYS = (
    "input_data",
    "mini_batch_size",
    "max_concurrency_per_instance",
    "error_threshold",
    "mini_batch_error_threshold",
    "retry_settings",
    "logging_level",
    "task",
)
TASK_KEYS = (
    "type",
    "code",
    "entry_script",
    "program_arguments",
    "append_row_to",
    "environment",
    "environment_variables",
)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def to_command(spec: dict[str, Any], where: Where, problems: Problems) -> dict[str, Any] | None:
    """A parallel job's or component's keys as a command's: `code`, `environment`, the runner's
    `command`; its other keys as they are. None (with the problems said) when it cannot run."""
    task = spec.get("task")
    if not isinstance(task, dict):
        problems.add(
            where.error("task", "a parallel job needs its task: {type: run_function, entry_script: ...}")
        )
        return None
    for key in task:
        if key not in TASK_KEYS:
            problems.add(where.error(f"task.{key}", f"unknown key (expected one of: {', '.join(TASK_KEYS)})"))
    if task.get("type", "run_function") != "run_function":
        problems.add(where.error("task.type", f"expected run_function, got {task.get('type')!r}"))
    entry = task.get("entry_script")
    if not isinstance(entry, str) or not entry.strip():
        problems.add(
            where.error(
                "task.entry_script", "a parallel job needs its entry_script (the file with init() and run())"
            )
        )
        return None
    data = spec.get("input_data")
    if not isinstance(data, str) or BINDING.fullmatch(data.strip()) is None:
        problems.add(
            where.error("input_data", "expected the input it cuts into mini-batches: ${{inputs.NAME}}")
        )
        return None
    options = _options(spec, where, problems)
    arguments = task.get("program_arguments") or ""
    if not isinstance(arguments, str):
        problems.add(where.error("task.program_arguments", "expected the entry script's arguments, as text"))
        arguments = ""
    command = (
        f'python3 "${RUNNER_VARIABLE}" --entry-script {shlex.quote(entry.strip())} --input {data.strip()}'
    )
    command += "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in options)
    command += _instances(spec)
    append = task.get("append_row_to")
    if isinstance(append, str) and BINDING.fullmatch(append.strip()):
        command += f" --append-row-to {append.strip()}"
    elif append is not None:
        problems.add(where.error("task.append_row_to", "expected the output it fills: ${{outputs.NAME}}"))
    command += f" -- {arguments.strip()}" if arguments.strip() else ""
    body = {key: value for key, value in spec.items() if key not in (*PARALLEL_KEYS, "type")}
    variables = _variables(spec, task, where, problems)
    body.update(
        type="command", command=command, environment_variables={**variables, RUNNER_VARIABLE: str(RUNNER)}
    )
    concurrency = dict(options)["--max-concurrency"]
    distribution = body.get("distribution")
    if distribution is None:  # its processes per instance, for the backends that reserve CPUs for them
        body["distribution"] = {"process_count_per_instance": concurrency}
    for key in ("code", "environment"):
        if key in task:
            body[key] = task[key]
    return body


def _instances(spec: dict[str, Any]) -> str:
    """The runner's `--instances` for `resources.instance_count` (a wrong count: the reader says)."""
    resources = spec.get("resources")
    count = resources.get("instance_count") if isinstance(resources, dict) else None
    if isinstance(count, int) and not isinstance(count, bool) and count > 1:
        return f" --instances {count}"
    return ""


def _variables(
    spec: dict[str, Any], task: dict[str, Any], where: Where, problems: Problems
) -> dict[str, Any]:
    """The job's and the task's `environment_variables`, the task's over the job's."""
    variables: dict[str, Any] = {}
    for key in ("environment_variables",):
        for owner, prefix in ((spec, ""), (task, "task.")):
            given = owner.get(key)
            if given is not None and not isinstance(given, dict):
                problems.add(where.error(prefix + key, "expected a mapping of variables"))
            elif given:
                variables.update(given)
    return variables


def _options(spec: dict[str, Any], where: Where, problems: Problems) -> list[tuple[str, Any]]:
    def number(key: str, default: int, minimum: int) -> int:
        value = spec.get(key, default)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            problems.add(where.error(key, f"expected a whole number of at least {minimum}, got {value!r}"))
            return default
        return value

    size = str(spec.get("mini_batch_size", "1")).strip().lower()
    if not size or not (
        size.isdigit() or (size[:-2].strip().isdigit() and size.endswith(("kb", "mb", "gb")))
    ):
        problems.add(where.error("mini_batch_size", f"expected a count (10) or a size (100kb), got {size!r}"))
        size = "1"
    retry = spec.get("retry_settings") or {}
    if not isinstance(retry, dict):
        problems.add(where.error("retry_settings", "expected {max_retries, timeout}"))
        retry = {}
    level = str(spec.get("logging_level", "INFO")).upper()
    if level not in LEVELS:
        problems.add(where.error("logging_level", f"expected one of: {', '.join(LEVELS)}, got {level!r}"))
        level = "INFO"
    timeout = retry.get("timeout", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        problems.add(
            where.error("retry_settings.timeout", f"expected a positive number of seconds, got {timeout!r}")
        )
        timeout = 60
    retries = retry.get("max_retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.add(where.error("retry_settings.max_retries", f"expected a whole number, got {retries!r}"))
        retries = 3
    return [
        ("--mini-batch-size", size),
        ("--max-concurrency", number("max_concurrency_per_instance", 1, 1)),
        ("--error-threshold", number("error_threshold", -1, -1)),
        ("--mini-batch-error-threshold", number("mini_batch_error_threshold", -1, -1)),
        ("--max-retries", retries),
        ("--timeout", timeout),
        ("--logging-level", level),
    ]
