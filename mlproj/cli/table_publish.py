"""The commands of publishing and the server (design.md §10), in the table's terms (`mlproj.cli.table`):
publish, published, endpoints, schedules, tokens, serve."""

from __future__ import annotations

from mlproj.cli.table_parts import ASSET_MAP, DETACH, JSON, PARAM, SET, Arg, Command, Opt

PIPELINE_ID = Arg("pipeline_id", "ID")
NAME = Arg("name", "NAME")
EXPERIMENT = Opt(("--experiment-name",), "experiment_name", "The experiment of the run.")
SUBMIT_OPTS = (PARAM, EXPERIMENT, DETACH, JSON)


def _simple(group: str, name: str, summary: str, arg: Arg | None, function: str | None = None) -> Command:
    """A subcommand that takes one argument (or none) and --json."""
    target = f"mlproj.cli.{group}:{function or name}"
    return Command(name, target, summary + ".", summary + ".", (arg,) if arg else (), (JSON,))


PUBLISH_COMMANDS = (
    Command(
        "publish",
        "mlproj.cli.publish:publish",
        "Publish a pipeline: an immutable snapshot others can run by ID.",
        "Snapshot the pipeline at PIPELINE (a file or a Git URI), with the content of every code folder and "
        "project it uses, and print the published pipeline's ID.",
        (Arg("uri", "PIPELINE"),),
        (
            Opt(("--name",), "name", "Its name (required)."),
            Opt(("--version",), "version", "A version label of your own."),
            Opt(("--description",), "description", "What it does."),
            Opt(
                ("--continue-on-step-failure",),
                "continue_on_step_failure",
                "Its runs go on past a failed step.",
                "flag",
            ),
            SET,
            ASSET_MAP,
            JSON,
        ),
    ),
    Command(
        "published",
        "",
        "List, show, disable, enable or run published pipelines.",
        "Published pipelines (mlproj publish).",
        subcommands=(
            _simple("publish", "list", "List published pipelines, newest first", None, "list_published"),
            _simple(
                "publish",
                "show",
                "Show a published pipeline and its last runs",
                PIPELINE_ID,
                "show_published",
            ),
            _simple("publish", "disable", "Disable a published pipeline", PIPELINE_ID, "disable_published"),
            _simple("publish", "enable", "Enable a published pipeline", PIPELINE_ID, "enable_published"),
            Command(
                "submit",
                "mlproj.cli.publish:submit_published",
                "Run a published pipeline.",
                "Run the published pipeline ID (as `mlproj run` runs a pipeline; -d: in the background).",
                (PIPELINE_ID,),
                SUBMIT_OPTS,
            ),
        ),
    ),
    Command(
        "endpoints",
        "",
        "Pipeline endpoints: a name over versions of published pipelines.",
        "Pipeline endpoints: a name over versions of published pipelines, one of them the default.",
        subcommands=(
            Command(
                "create",
                "mlproj.cli.endpoints:create",
                "Create an endpoint.",
                "Create the endpoint NAME; the published pipeline is its version 0 and its default.",
                (NAME,),
                (
                    Opt(("--pipeline",), "pipeline_id", "The published pipeline (required).", metavar="ID"),
                    Opt(("--description",), "description", "What it is for."),
                    JSON,
                ),
            ),
            Command(
                "add",
                "mlproj.cli.endpoints:add",
                "Add a version.",
                "Add a published pipeline to the endpoint NAME as its next version.",
                (NAME,),
                (
                    Opt(("--pipeline",), "pipeline_id", "The published pipeline (required).", metavar="ID"),
                    Opt(("--set-default",), "set_default", "Make it the default version.", "flag"),
                    JSON,
                ),
            ),
            Command(
                "set-default",
                "mlproj.cli.endpoints:set_default",
                "Set the default version.",
                "Make VERSION the default version of the endpoint NAME.",
                (NAME, Arg("version", "VERSION")),
                (JSON,),
            ),
            Command(
                "list",
                "mlproj.cli.endpoints:list_endpoints",
                "List endpoints.",
                "List endpoints.",
                (),
                (JSON,),
            ),
            _simple("endpoints", "show", "Show an endpoint and its versions", NAME),
            _simple("endpoints", "disable", "Disable an endpoint", NAME),
            _simple("endpoints", "enable", "Enable an endpoint", NAME),
            Command(
                "submit",
                "mlproj.cli.endpoints:submit",
                "Run an endpoint.",
                "Run the default version of the endpoint NAME (or --version).",
                (NAME,),
                (Opt(("--version",), "version", "The version to run."), *SUBMIT_OPTS),
            ),
        ),
    ),
    Command(
        "schedules",
        "",
        "Run published pipelines or endpoints on a schedule (while `mlproj serve` runs).",
        "Schedules fire while `mlproj serve` runs: each tick once, missed ticks not made up.",
        subcommands=(
            Command(
                "create",
                "mlproj.cli.schedules:create",
                "Create a schedule.",
                "Create the schedule NAME of a published pipeline (--pipeline) or an endpoint (--endpoint), "
                "firing on a cron expression in UTC (--cron) or at an interval (--every 15m).",
                (NAME,),
                (
                    Opt(("--pipeline",), "pipeline_id", "The published pipeline.", metavar="ID"),
                    Opt(("--endpoint",), "endpoint", "The endpoint (its default version)."),
                    Opt(("--cron",), "cron", "Five cron fields, in UTC: '0 6 * * mon-fri'.", metavar="EXPR"),
                    Opt(("--every",), "every", "An interval: 90s, 15m, 2h, 1d.", metavar="DURATION"),
                    PARAM,
                    EXPERIMENT,
                    JSON,
                ),
            ),
            Command(
                "list",
                "mlproj.cli.schedules:list_schedules",
                "List schedules.",
                "List schedules.",
                (),
                (JSON,),
            ),
            _simple("schedules", "show", "Show a schedule and its last fires", NAME),
            _simple("schedules", "enable", "Enable a schedule", NAME),
            _simple("schedules", "disable", "Disable a schedule", NAME),
            _simple("schedules", "delete", "Delete a schedule", NAME),
            _simple("schedules", "trigger", "Fire a schedule now", NAME),
        ),
    ),
    Command(
        "tokens",
        "",
        "Create, list or revoke the server's tokens.",
        "Bearer tokens for `mlproj serve`: read, submit (read, run published pipelines, cancel) or admin.",
        subcommands=(
            Command(
                "create",
                "mlproj.cli.tokens:create",
                "Create a token and print it (once).",
                "Create the token NAME and print it on stdout: it is stored hashed, and shown only now.",
                (NAME,),
                (
                    Opt(
                        ("--role",),
                        "role",
                        "What it may do (required): read, submit (read, run published pipelines, cancel) "
                        "or admin.",
                        "choice",
                        choices=("read", "submit", "admin"),
                    ),
                    JSON,
                ),
            ),
            Command(
                "list",
                "mlproj.cli.tokens:list_tokens",
                "List tokens.",
                "List tokens (never their values).",
                (),
                (JSON,),
            ),
            _simple("tokens", "revoke", "Revoke a token", NAME),
        ),
    ),
    Command(
        "ui",
        "mlproj.cli.serve:ui",
        "Open the web UI: a server on loopback and a one-time login link.",
        "Serve the web UI (and the REST API) on 127.0.0.1 and print a link that logs this browser in, once "
        "(within two minutes), with the rights of MLPROJ_HOME's owner. Needs mlproj[server].",
        (),
        (
            Opt(("--port",), "port", "The port to listen on.", "int", default=8700),
            Opt(("--open",), "open_browser", "Open the link in the default browser.", "flag"),
        ),
    ),
    Command(
        "serve",
        "mlproj.cli.serve:serve",
        "Serve the REST API and fire the schedules.",
        "Serve the REST API (/api/v1, OpenAPI at /api/v1/openapi.json) and fire the schedules until stopped. "
        "Needs mlproj[server].",
        (),
        (
            Opt(("--host",), "host", "The address to listen on.", default="127.0.0.1"),
            Opt(("--port",), "port", "The port to listen on.", "int", default=8700),
            Opt(("--workers",), "workers", "Server processes sharing the port.", "int", default=1),
            Opt(("--allow-remote",), "allow_remote", "Listen beyond loopback.", "flag"),
            Opt(("--ssl-keyfile",), "ssl_keyfile", "TLS: the key file.", metavar="FILE"),
            Opt(("--ssl-certfile",), "ssl_certfile", "TLS: the certificate file.", metavar="FILE"),
        ),
    ),
)
