"""`mlproj run`, `status`, `logs`, `runs`, `validate` as a user types them: real child processes."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from mlproj.home import Home
from tests.helpers import (
    PYTHON,
    assert_input_error,
    command_project,
    invoke,
    mlproj,
    mlproj_json,
    write_project,
)

ARGV_PRINTER = f"{shlex.quote(PYTHON)} -c 'import sys, json; print(json.dumps(sys.argv[1:]))'"


def test_run_streams_output_and_records_finished(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo out; echo err >&2")
    done = mlproj("run", str(project))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["out", "err"]
    assert "Finished" in done.stderr
    run_id = done.stderr.split()[1]
    record = mlproj_json("status", run_id[:6])
    assert record["status"] == "Finished"
    assert record["exit_code"] == 0
    assert Path(record["log_path"]).read_text() == "out\nerr\n"
    assert mlproj("logs", run_id).stdout == "out\nerr\n"


@pytest.mark.parametrize("code", [1, 3, 125])
def test_exit_code_is_the_workloads(tmp_path: Path, home: Home, code: int) -> None:
    project = command_project(tmp_path / "p", f"echo failing; exit {code}")
    done = mlproj("run", str(project), "--json")
    assert done.returncode == code
    record = json.loads(done.stdout)
    assert record["status"] == "Failed"
    assert record["exit_code"] == code
    assert record["error"] == f"the command exited with code {code}"
    assert "failing" in done.stderr  # with --json, the workload's output goes to stderr


def test_killed_by_signal_fails_with_exit_1(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "kill -9 $$")
    done = mlproj("run", str(project), "--json")
    assert done.returncode == 1
    record = json.loads(done.stdout)
    assert record["exit_code"] == 137
    assert "SIGKILL" in record["error"]


def test_json_stdout_is_one_document(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "echo to-stdout")
    done = mlproj("run", str(project), "--json")
    record = json.loads(done.stdout)  # fails if anything else is on stdout
    assert record["status"] == "Finished"
    assert "to-stdout" in done.stderr


def test_hostile_values_reach_the_program_as_one_argument(tmp_path: Path, home: Home) -> None:
    project = command_project(
        tmp_path / "p", f"{ARGV_PRINTER} {{v}}", parameters="    parameters:\n      v: string\n"
    )
    for value in ["; rm -rf ~", "$(touch PWNED)", "`touch PWNED`", "a'b\"c", "x\ny", "*", "--x", ""]:
        done = mlproj("run", str(project), "-P", f"v={value}", "-P", f"extra={value}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [value, "--extra", value]
    assert not list(tmp_path.rglob("PWNED"))


def test_path_parameters(tmp_path: Path, home: Home) -> None:
    project = write_project(
        tmp_path / "proj",
        "entry_points:\n  main:\n    parameters:\n      data: {type: path, default: data.csv}\n"
        f"    command: {json.dumps(ARGV_PRINTER + ' {data}')}\n",
        {"data.csv": "x\n"},
    )
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "mine.csv").parent.mkdir()
    (elsewhere / "mine.csv").write_text("y\n")
    # The default is resolved against the project folder, wherever mlproj is called from.
    done = mlproj("run", str(project), cwd=elsewhere)
    assert json.loads(done.stdout) == [str(project / "data.csv")]
    # A relative value given with -P is resolved against the caller's folder, and recorded as given.
    done = mlproj("run", str(project), "-P", "data=mine.csv", "--json", cwd=elsewhere)
    assert str(elsewhere / "mine.csv") in done.stderr
    assert json.loads(done.stdout)["parameters"] == {"data": "mine.csv"}
    # file:// URIs are downloaded into --storage-dir.
    storage = tmp_path / "storage"
    uri = (elsewhere / "mine.csv").as_uri()
    done = mlproj("run", str(project), "-P", f"data={uri}", "--storage-dir", str(storage), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    (downloaded,) = json.loads(done.stdout)
    assert Path(downloaded).is_relative_to(storage)
    assert Path(downloaded).read_text() == "y\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "nope"], "unknown entry point 'nope' (declared: main"),
        (["-P", "n=abc"], "parameter 'n' (int): expected an integer, got 'abc'"),
        (["-P", "p=/does/not/exist"], "parameter 'p' (path): no such file or folder: /does/not/exist"),
        (["-P", "u=/no/scheme"], "parameter 'u' (uri): expected a URI with a scheme"),
        (["-P", "broken"], "-P 'broken': expected KEY=VALUE"),
        (["--env-manager", "pipenv"], "unknown --env-manager 'pipenv'"),
        (["-b", "moon"], "unknown backend 'moon' (available: local, slurm, ray, kubernetes"),
        (["-v", "main"], "is not inside a Git checkout"),
        (["--timeout", "0"], "--timeout 0: expected a positive number"),
        (["-c", "{bad json"], "--backend-config: malformed JSON"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_recorded(
    tmp_path: Path, home: Home, args: list[str], message: str
) -> None:
    project = write_project(
        tmp_path / "p",
        "entry_points:\n  main:\n    parameters:\n      n: {type: int, default: 1}\n"
        "      p: {type: path, default: MLproject}\n      u: {type: uri, default: 's3://b/k'}\n"
        "    command: echo {n} {p} {u}\n",
    )
    assert_input_error(invoke("run", str(project), *args), message)
    assert mlproj_json("runs") == []


def test_bad_input_without_project(tmp_path: Path, home: Home) -> None:
    done = mlproj("run", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert "missing" in done.stderr and "Traceback" not in done.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "MLproject").write_text("entry_points:\n  main: [unclosed\n")
    done = mlproj("run", str(bad))
    assert done.returncode == 2
    assert f"{bad / 'MLproject'}:" in done.stderr and "malformed YAML" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path: Path, home: Home) -> None:
    done = mlproj("--debug", "run", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert "Traceback" in done.stderr


def test_unknown_run_id(home: Home) -> None:
    for command in (["status"], ["logs"], ["wait"], ["cancel"]):
        assert_input_error(invoke(*command, "0123abcd"), "no run with ID '0123abcd'")


def test_script_entry_points_without_mlproject(tmp_path: Path, home: Home) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "hello.py").write_text("import sys; print('py', sys.argv[1:])\n")
    (folder / "hello.sh").write_text('echo sh "$@"\n')
    done = mlproj("run", str(folder), "-e", "hello.py", "-P", "x=1")
    assert done.stdout.strip() == "py ['--x', '1']"
    done = mlproj("run", str(folder), "-e", "hello.sh", "-P", "y=a b")
    assert done.stdout.strip() == "sh --y a b"


def test_runs_lists_and_filters(tmp_path: Path, home: Home) -> None:
    ok = command_project(tmp_path / "ok", "true")
    bad = command_project(tmp_path / "bad", "false")
    mlproj("run", str(ok), "--experiment-name", "exp-a", "--run-name", "first", "--tag", "k=v")
    mlproj("run", str(bad), "--experiment-name", "exp-b")
    everything = mlproj_json("runs")
    assert [r["status"] for r in everything] == ["Failed", "Finished"]
    assert everything[1]["run_name"] == "first"
    assert everything[1]["tags"] == {"k": "v"}
    assert [r["experiment"] for r in mlproj_json("runs", "--experiment-name", "exp-a")] == ["exp-a"]
    assert [r["status"] for r in mlproj_json("runs", "--status", "failed")] == ["Failed"]
    assert len(mlproj_json("runs", "--limit", "1")) == 1
    table = mlproj("runs")
    assert table.returncode == 0
    assert "Finished" in table.stdout and "Failed" in table.stdout
    assert mlproj("runs", "--status", "Sleeping").returncode == 2


def test_validate_runs_nothing(tmp_path: Path, home: Home) -> None:
    project = command_project(
        tmp_path / "p", "touch RAN; echo {x}", parameters="    parameters:\n      x: float\n"
    )
    done = mlproj("validate", str(project), "-P", "x=0.5", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["command"] == "touch RAN; echo 0.5"
    assert not (project / "RAN").exists()
    assert mlproj_json("runs") == []
    assert mlproj("validate", str(project), "-P", "x=abc").returncode == 2


def test_git_runs_work_in_a_private_copy(tmp_path: Path, home: Home) -> None:
    from tests.conftest import make_git_repo

    repo = tmp_path / "repo"
    make_git_repo(
        repo,
        {
            "shared.txt": "from the repository root\n",
            "sub/MLproject": (
                "entry_points:\n  main:\n    command: 'ls; cat ../shared.txt; touch written-by-run'\n"
            ),
        },
    )
    first = mlproj("run", f"{repo.as_uri()}#sub", "--json")
    assert first.returncode == 0, first.stderr
    assert "written-by-run" not in first.stderr
    assert "from the repository root" in first.stderr
    second = mlproj("run", f"{repo.as_uri()}#sub", "--json")
    assert "written-by-run" not in second.stderr  # the first run's file is not seen by the second
    work_dir = Path(json.loads(second.stdout)["work_dir"])
    assert work_dir.is_relative_to(home.runs_dir)


def test_status_watch_returns_when_the_run_ends(tmp_path: Path, home: Home) -> None:
    project = command_project(tmp_path / "p", "sleep 1")
    run_id = mlproj("run", str(project), "-d").stdout.strip()
    done = mlproj("status", run_id, "--watch")
    assert done.returncode == 0, done.stderr
    assert "Finished" in done.stdout


def test_works_by_full_path_without_the_virtualenv_on_path(tmp_path: Path, home: Home) -> None:
    """`python` in a command is the interpreter that runs mlproj; detached supervisors start too."""
    import os
    import subprocess
    import sys

    project = command_project(tmp_path / "p", "python -c 'import sys; print(sys.prefix)'")
    script = Path(sys.executable).with_name("mlproj")  # the console script, called by its full path
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [str(script), "run", str(project)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == sys.prefix
    detached = subprocess.run(
        [str(script), "run", str(project), "-d"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert mlproj("wait", detached.stdout.strip()).stdout.strip() == sys.prefix


def test_a_closed_pipe_does_not_stop_the_run(tmp_path: Path, home: Home) -> None:
    lines = "for i in $(seq 1 2000); do echo line $i; done"
    project = command_project(tmp_path / "p", f"{lines}; sleep 0.5; echo done")
    done = subprocess.run(
        f"{shlex.quote(PYTHON)} -m mlproj run {shlex.quote(str(project))} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout == "line 1\n"
    (record,) = mlproj_json("runs")
    assert record["status"] == "Finished"
    assert Path(record["log_path"]).read_text().endswith("line 2000\ndone\n")


def test_a_parameter_given_without_its_p_is_shown_with_it(tmp_path: Path, home: Home) -> None:
    project = command_project(
        tmp_path / "p", "echo {epochs}", "    parameters:\n      epochs: {default: 1}\n"
    )
    done = mlproj("run", str(project), "epochs=50", "note=a b")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"mlproj: error: unexpected argument 'epochs=50': give parameters with -P: mlproj run {project} "
        "-P epochs=50 -P 'note=a b'\n"
    )
    other = mlproj("run", str(project), "extra")  # not a parameter: click's own words
    assert other.returncode == 2 and "unexpected extra argument (extra)" in other.stderr
    assert mlproj_json("runs") == []


def test_no_docker_engine_names_docker_host_and_how_to_start_one(tmp_path: Path, home: Home) -> None:
    pytest.importorskip("docker")
    project = write_project(
        tmp_path / "d",
        "name: d\ndocker_env:\n  image: python:3.11-slim\nentry_points:\n  main:\n    command: echo hi\n",
    )
    done = mlproj("run", str(project), env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"})
    assert done.returncode == 2
    assert f"no Docker API answers at DOCKER_HOST=unix://{tmp_path}/nothing.sock" in done.stderr
    assert "start Docker or Podman's Docker-compatible service" in done.stderr
    assert mlproj_json("runs") == []
