"""What people read about mlproj says true things: every command and option has its help, the README
shows the flags people look for, and the README, CHANGELOG and docs name only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

from mlproj.cli.table import COMMANDS, Command

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "bench" / "README.md",
]
# A path of the repository written in a document: a folder we keep, then a file name with its suffix.
PATH = re.compile(r"(?<![\w/.~-])((?:mlproj|tests|bench|examples|docs|\.ci)/[\w./-]*\w)")
NOT_FILES = {
    "mlproj/output.log",  # the MLflow artifact a run's log is logged as, not a file of ours
    "mlproj/run-id",  # the label of a Kubernetes Job
}
MADE = ("bench/.work",)  # where the benchmarks put what they make: not in a checkout


def every(commands: tuple[Command, ...]) -> list[Command]:
    found = []
    for command in commands:
        found.append(command)
        found += every(command.subcommands)
    return found


def test_every_command_and_option_has_its_help() -> None:
    for command in every(COMMANDS):
        assert command.summary and command.help, command.name
        for opt in command.opts:
            assert opt.help and opt.help.strip(), (command.name, opt.names)
    run = next(c for c in COMMANDS if c.name == "run")
    helps = {opt.dest: opt.help for opt in run.opts}
    assert "slurm" in helps["backend"] and "ray" in helps["backend"]  # -b lists the backends
    assert "docker" in helps["env_manager"]


def test_the_readme_shows_the_flags_people_look_for() -> None:
    readme = (ROOT / "README.md").read_text()
    for flag in (
        "--run-name",
        "--tag",
        "--experiment-name",
        "status 3f2a --watch",
        "mlproj rerun",
        "mlproj gc",
    ):
        assert flag in readme, flag


def test_documents_name_only_files_that_exist() -> None:
    missing = []
    for document in DOCUMENTS:
        for path in PATH.findall(document.read_text()):
            if "*" in path or "<" in path or path in NOT_FILES or path.startswith(MADE):
                continue
            if not (ROOT / path).exists() and not (ROOT / path.rstrip(".")).exists():
                missing.append(f"{document.relative_to(ROOT)}: {path}")
    assert missing == []
