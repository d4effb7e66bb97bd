"""`mlproj completion bash|zsh|fish` (design.md §12): each script loads in the real shell (Debian's) and
completes commands, option values, entry points and run IDs, names and `last` from the store. bash and
fish run their own completion machinery here; zsh's needs a terminal, so its script is loaded in zsh
and the answer its function asks mlproj for is checked. Skipped where a shell is missing, except when
MLPROJ_TEST_REQUIRE names `shells` (CI installs them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.home import Home
from tests.clusters import need
from tests.helpers import command_project, mlproj, mlproj_json


def shell(name: str) -> str:
    found = shutil.which(name)
    need("shells", None if found else f"{name} is not installed (Debian: apt install {name})")
    assert found is not None
    return found


def in_shell(program: str, script: str, cwd: Path) -> str:
    """`script` run by the shell `program`, with `mlproj` on its PATH as this interpreter's."""
    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    launcher = bin_dir / "mlproj"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m mlproj "$@"\n')
    launcher.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        [program, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def runs(tmp_path: Path, home: Home) -> dict[str, str]:
    project = tmp_path / "proj"
    (project).mkdir()
    (project / "MLproject").write_text(
        "name: t\nentry_points:\n  main:\n    command: echo main\n  train:\n    command: echo train\n"
    )
    named = mlproj_json("run", str(project), "--run-name", "nightly-train")["run_id"]
    other = mlproj_json("run", str(command_project(tmp_path / "other", "echo hi")))["run_id"]
    return {"named": named, "other": other}


def test_bash_completes_commands_run_ids_names_and_entry_points(tmp_path: Path, runs: dict[str, str]) -> None:
    bash = shell("bash")

    def complete(*words: str) -> list[str]:
        script = (
            'eval "$(mlproj completion bash)"; COMP_WORDS=(' + " ".join(f"'{w}'" for w in words) + ");"
            f" COMP_CWORD={len(words) - 1}; _mlproj_completion mlproj; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        return in_shell(bash, script, tmp_path).split()

    assert complete("mlproj", "sta") == ["status"]
    assert complete("mlproj", "status", runs["named"][:6]) == [runs["named"]]
    assert complete("mlproj", "logs", "nightly") == ["nightly-train"]
    assert complete("mlproj", "wait", "la") == ["last"]
    assert complete("mlproj", "run", "proj", "-e", "") == ["main", "train"]
    assert complete("mlproj", "run", "proj", "-b", "sl") == ["slurm"]
    assert complete("mlproj", "runs", "--status", "Fa") == ["Failed"]


def test_fish_completes_a_run_id_prefix(tmp_path: Path, runs: dict[str, str]) -> None:
    fish = shell("fish")
    out = in_shell(
        fish, f'mlproj completion fish | source; complete -C "mlproj status {runs["other"][:6]}"', tmp_path
    )
    assert out.split("\t")[0] == runs["other"] and "Finished" in out
    out = in_shell(
        fish, 'mlproj completion fish | source; complete -C "mlproj run proj --env-manager v"', tmp_path
    )
    assert out.split() == ["virtualenv"]


def test_zsh_loads_the_script_and_its_function_gets_run_ids(tmp_path: Path, runs: dict[str, str]) -> None:
    zsh = shell("zsh")
    loaded = in_shell(
        zsh,
        'autoload -U compinit; compinit -u; eval "$(mlproj completion zsh)"; whence -w _mlproj_completion',
        tmp_path,
    )
    assert loaded.strip() == "_mlproj_completion: function"
    asked = mlproj(
        env={
            "COMP_WORDS": f"mlproj status {runs['named'][:6]}",
            "COMP_CWORD": "2",
            "_MLPROJ_COMPLETE": "zsh_complete",
        },
    )
    assert asked.stdout.splitlines()[:2] == ["plain", runs["named"]]  # what the zsh function hands compadd


def test_completion_of_an_unknown_shell_is_refused(home: Home) -> None:
    done = mlproj("completion", "tcsh")
    assert done.returncode == 2 and "completion 'tcsh': expected bash, zsh or fish" in done.stderr
    assert mlproj("completion", "bash").stdout.startswith("_mlproj_completion() {")
