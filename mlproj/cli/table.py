"""Every command's arguments and options, written once. Two readers use the table: `mlproj.cli.parse`, a
small parser that handles a well-formed command line without importing click (start-up matters: click
costs more than `mlproj status` may take), and `mlproj.cli.clickapp`, which builds the click commands
for everything else (help, errors, completion). No dataclasses here either, for the same reason.
"""

from __future__ import annotations

from mlproj.cli.table_parts import (
    ASSET_MAP,
    DETACH,
    ENTRY_POINT,
    ENV_MANAGER,
    JSON,
    PARAM,
    RUN_ID,
    SET,
    VERSION,
    Arg,
    Command,
    Opt,
    convert,
)
from mlproj.cli.table_publish import PUBLISH_COMMANDS

TYPE_CHECKING = False  # typing's, not imported on the way to a command: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["BY_NAME", "COMMANDS", "Arg", "Command", "Opt", "call", "convert", "flag_names"]


BACKEND = Opt(
    ("-b", "--backend"),
    "backend",
    "Where the run executes: local, slurm or ray (default: the settings', else local).",
)
BACKEND_CONFIG = Opt(
    ("-c", "--backend-config"),
    "backend_config",
    "Backend settings: JSON text or a file.",
    metavar="JSON_OR_FILE",
)
EXPERIMENT_NAME = Opt(("--experiment-name",), "experiment_name", "Experiment to record the run under.")
STRICT_PARAMS = Opt(
    ("--strict-params",), "strict_params", "Refuse -P names the entry point does not declare.", "flag"
)
MAX_PARALLEL = Opt(
    ("--max-parallel",), "max_parallel", "Pipelines: steps running at once.", "int", metavar="N"
)

COMMANDS: tuple[Command, ...] = (
    Command(
        "run",
        "mlproj.cli.run:run",
        "Run a project or a pipeline from a folder, a file or a Git URI.",
        "Run the project or pipeline at URI: a folder, a pipeline file (.yml with `type: pipeline`) or a "
        "Git URI, with an optional #subdirectory (or #path/to/pipeline.yml).",
        (Arg("uri", "URI"),),
        (
            ENTRY_POINT,
            VERSION,
            PARAM,
            STRICT_PARAMS,
            ENV_MANAGER,
            BACKEND,
            BACKEND_CONFIG,
            EXPERIMENT_NAME,
            Opt(
                ("--experiment-id",),
                "experiment_id",
                "MLflow experiment ID to track the run under (instead of --experiment-name).",
                metavar="ID",
            ),
            Opt(
                ("--tracking-uri",),
                "tracking_uri",
                "MLflow tracking server or store (default: MLFLOW_TRACKING_URI).",
                metavar="URI",
            ),
            Opt(
                ("--tracking", "--no-tracking"),
                "tracking",
                "Track the run in MLflow when a tracking URI is known.",
                "toggle",
                default=True,
            ),
            Opt(("--run-name",), "run_name", "A name for the run."),
            Opt(("--tag",), "tags", "A tag (repeatable).", multiple=True, metavar="KEY=VALUE"),
            Opt(
                ("--storage-dir",),
                "storage_dir",
                "Where path parameters given as URIs are downloaded.",
                metavar="DIRECTORY",
            ),
            DETACH,
            JSON,
            Opt(
                ("--timeout",),
                "timeout",
                "Cancel the run after this long (exit 124).",
                "seconds",
                metavar="SECONDS",
            ),
            Opt(
                ("--rebuild-env",),
                "rebuild_env",
                "Build the environment again, not reusing it.",
                "flag",
            ),
            Opt(
                ("-A", "--docker-args"),
                "docker_args",
                "A docker run option for docker_env projects, e.g. -A gpus=all (repeatable).",
                multiple=True,
                metavar="NAME[=VALUE]",
            ),
            Opt(
                ("--build-image",),
                "build_image",
                "docker_env: build an image with the project copied in.",
                "flag",
            ),
            MAX_PARALLEL,
            Opt(("--force-rerun",), "force_rerun", "Pipelines: run every step, reuse none.", "flag"),
            Opt(
                ("--continue-on-step-failure",),
                "continue_on_step_failure",
                "Pipelines: keep running branches a failure does not reach.",
                "flag",
            ),
            SET,
            ASSET_MAP,
        ),
    ),
    Command(
        "status",
        "mlproj.cli.status:status",
        "Show one run.",
        "Show the status of RUN_ID (a run ID, a unique prefix of at least 4 characters, a unique run name, "
        "or last).",
        (RUN_ID,),
        (JSON, Opt(("--watch",), "watch", "Refresh until the run ends.", "flag")),
    ),
    Command(
        "logs",
        "mlproj.cli.logs:logs",
        "Print a run's output.",
        "Print the output of RUN_ID (for a pipeline: its events, or one step's output with --step; "
        "followed, its events and its steps' output, each line after its step's name).",
        (RUN_ID,),
        (
            Opt(("--step",), "step", "A pipeline step's log (its latest attempt)."),
            Opt(("-f", "--follow"), "follow", "Keep printing until the run ends.", "flag"),
            Opt(
                ("--json",),
                "as_json",
                "One JSON object per line: run_id, step, line, seen_at (JSON lines on stdout).",
                "flag",
            ),
        ),
    ),
    Command(
        "wait",
        "mlproj.cli.wait:wait",
        "Wait for a run to end; exit with its code.",
        "Wait until RUN_ID ends; exit 0 if it finished, its exit code if it failed, 130 if canceled.",
        (RUN_ID,),
        (
            Opt(
                ("--timeout",), "timeout", "Give up after this long (exit 124).", "seconds", metavar="SECONDS"
            ),
            Opt(
                ("--show-output", "--no-show-output"),
                "show_output",
                "Stream the run's log (on stderr with --json).",
                "toggle",
                default=True,
            ),
            JSON,
        ),
    ),
    Command(
        "cancel",
        "mlproj.cli.cancel:cancel",
        "Cancel a run and every process it started.",
        "Cancel RUN_ID: SIGTERM to every process it started, SIGKILL after --grace seconds.",
        (RUN_ID,),
        (
            Opt(
                ("--grace",),
                "grace",
                "Time between SIGTERM and SIGKILL.",
                "seconds0",
                default=10.0,
                metavar="SECONDS",
            ),
            JSON,
        ),
    ),
    Command(
        "runs",
        "mlproj.cli.runs:runs",
        "List runs, newest first.",
        "List runs, newest first.",
        (),
        (
            Opt(("--experiment-name",), "experiment_name", "Only runs of this experiment."),
            Opt(("--status",), "status_name", "Only runs in this status (e.g. Failed).", metavar="STATUS"),
            Opt(("--limit",), "limit", "At most this many.", "int", default=20),
            Opt(("--published",), "published", "Only runs of this published pipeline.", metavar="ID"),
            Opt(
                ("--name",), "name", "Only runs whose name (or, without one, URI) holds TEXT.", metavar="TEXT"
            ),
            Opt(("--tag",), "tag", "Only runs with this tag.", metavar="KEY=VALUE"),
            Opt(
                ("--since",),
                "since",
                "Only runs created since a duration ago (30m, 2h, 7d) or a date (2026-11-30, local time).",
                metavar="WHEN",
            ),
            Opt(
                ("--kind",),
                "kind",
                "Only project or pipeline runs.",
                "choice",
                choices=("project", "pipeline"),
            ),
            Opt(("--uri",), "uri", "Only runs whose URI holds TEXT.", metavar="TEXT"),
            Opt(
                ("--columns",),
                "columns",
                "More columns: params.NAME, metrics.NAME (from MLflow) or tags.NAME, comma-separated.",
                metavar="LIST",
            ),
            JSON,
        ),
    ),
    Command(
        "artifacts",
        "mlproj.cli.artifacts:artifacts",
        "List or copy a run's outputs.",
        "List the files a run left (a project run's folder; each step's outputs of a pipeline run) with "
        "their sizes, or copy them to DEST (a pipeline's under STEP/OUTPUT/).",
        (RUN_ID,),
        (
            Opt(("--step",), "step", "Only this step's outputs (pipeline runs).", metavar="STEP"),
            Opt(("--download",), "download", "Copy them into this new or empty folder.", metavar="DEST"),
            JSON,
        ),
    ),
    Command(
        "gc",
        "mlproj.cli.gc:gc",
        "Delete old finished runs.",
        "Delete runs that ended (their records, logs and outputs) and that nothing kept needs: a run whose "
        "outputs a kept run reuses is kept. Never a run that has not ended; never a published pipeline.",
        (),
        (
            Opt(
                ("--older-than",),
                "older_than",
                "Only runs created DAYS days ago or more (0: any age).",
                "days",
                metavar="DAYS",
            ),
            Opt(
                ("--status",),
                "statuses",
                "Only runs in these statuses (Finished, Failed, Canceled; comma-separated).",
                metavar="LIST",
            ),
            Opt(("--dry-run",), "dry_run", "Say what would be deleted, delete nothing.", "flag"),
            JSON,
        ),
    ),
    Command(
        "completion",
        "mlproj.cli.completion:completion",
        "Print a shell's completion script.",
        "Print the script that makes SHELL (bash, zsh or fish) complete mlproj's commands, options, entry "
        "points and run IDs and names. Load it from your shell's start-up file, for bash: "
        'eval "$(mlproj completion bash)"; for fish: mlproj completion fish | source.',
        (Arg("shell", "SHELL"),),
        (),
    ),
    Command(
        "config",
        "",
        "Show the settings and where each comes from.",
        "Settings come from a flag, an environment variable, mlproj.toml (or [tool.mlproj] in "
        "pyproject.toml) in the project's or the current folder, MLPROJ_HOME/config.toml, or the default.",
        subcommands=(
            Command(
                "show",
                "mlproj.cli.config:show",
                "Show each setting, its value and its source.",
                "Show each setting as a run of PATH (a project folder or a pipeline file; default: the "
                "current folder) would see it, and where its value comes from.",
                (Arg("path", "PATH", required=False),),
                (JSON,),
            ),
        ),
    ),
    Command(
        "compare",
        "mlproj.cli.compare:compare",
        "Show runs' parameters and metrics side by side.",
        "Show the parameters and the latest MLflow metrics of two or more runs side by side: only what "
        "differs, unless --all.",
        (Arg("run_ids", "RUN_ID...", many=True),),
        (Opt(("--all",), "show_all", "Show what the runs share too.", "flag"), JSON),
    ),
    Command(
        "validate",
        "mlproj.cli.validate:validate",
        "Show what would run, resolved, without running it.",
        "Check the project or pipeline at URI and show what it would run.",
        (Arg("uri", "URI"),),
        (
            ENTRY_POINT,
            VERSION,
            PARAM,
            ENV_MANAGER,
            BACKEND,
            BACKEND_CONFIG,
            EXPERIMENT_NAME,
            MAX_PARALLEL,
            STRICT_PARAMS,
            SET,
            ASSET_MAP,
            JSON,
        ),
    ),
    Command(
        "graph",
        "mlproj.cli.graph:graph",
        "Print a pipeline's steps and what they depend on.",
        "Print the DAG of a pipeline file, or of the pipeline a run ran.",
        (Arg("uri_or_run_id", "URI_OR_RUN_ID"),),
        (
            Opt(
                ("--format",),
                "fmt",
                "How to print it.",
                "choice",
                default="text",
                choices=("text", "mermaid", "dot", "json"),
            ),
        ),
    ),
    Command(
        "resume",
        "mlproj.cli.resume:resume",
        "Run a pipeline again, reusing the steps it finished.",
        "Run the pipeline of RUN_ID again with the same inputs: the steps it finished are reused (whatever "
        "allow_reuse says), the others run.",
        (RUN_ID,),
        (DETACH, JSON),
    ),
    Command(
        "rerun",
        "mlproj.cli.resume:rerun",
        "Run a run again, with parameters changed.",
        "Run what RUN_ID ran again, asked the same way (a Git URI at the same commit), with each -P given "
        "over the earlier parameters (a pipeline's inputs). The new run is tagged mlproj.rerun_of.",
        (RUN_ID,),
        (PARAM, DETACH, JSON),
    ),
    Command(
        "envs",
        "",
        "List or prune cached environments.",
        "Cached environments (under MLPROJ_HOME/envs).",
        subcommands=(
            Command(
                "list",
                "mlproj.cli.envs:list_envs",
                "List cached environments.",
                "List cached environments: fingerprint, manager, Python, size, last used.",
                (),
                (JSON,),
            ),
            Command(
                "prune",
                "mlproj.cli.envs:prune_envs",
                "Remove unused environments.",
                "Remove cached environments (and leftovers of failed builds) not used by an unfinished run.",
                (),
                (
                    Opt(
                        ("--older-than",),
                        "older_than",
                        "Only those unused for DAYS days.",
                        "days",
                        metavar="DAYS",
                    ),
                ),
            ),
        ),
    ),
)
COMMANDS += PUBLISH_COMMANDS
BY_NAME = {command.name: command for command in COMMANDS}


def flag_names(command: str, dest: str) -> str:
    """How an option of a command is written, for messages: `-e/--entry-point`."""
    (opt,) = [opt for opt in BY_NAME[command].opts if opt.dest == dest]
    return "/".join(opt.names)


def call(command: Command, values: dict[str, Any]) -> int:
    """Run a command: its function, given the one console of the command and the values."""
    from mlproj.ui.console import Console

    module_name, _, function = command.target.partition(":")
    module = __import__(module_name, fromlist=[function])
    values = dict(values)
    app = Console(as_json=bool(values.pop("as_json", False)))  # the console's to honour
    from mlproj import notices

    stop = notices.listen(lambda message: app.note(f"mlproj: warning: {message}"))
    try:
        return int(getattr(module, function)(app, **values) or 0)
    finally:
        stop()
