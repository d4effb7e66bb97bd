"""Container start-to-exit: `mlproj run` of a docker_env project vs `docker run` by hand, same image.

Needs a Docker API (DOCKER_HOST; CI's .ci/podman.sh starts Podman's) and an image with a shell
(BENCH_IMAGE, default $MLPROJ_TEST_IMAGE or mlproj-test-busybox). `docker run` by hand mounts the
project folder and sets the working directory, as mlproj does, and removes the container (--rm).

Usage: python bench/docker_overhead.py [--rounds N]   (default 9, at least 5)
"""

import argparse
import os
import shutil
import subprocess

from common import ORDER, WORK, bin_path, child_env, ensure_mlproj_venv, measure, median, ms, write_section

TITLE = "docker_overhead: mlproj run (docker_env) vs docker run"
COMMAND = "echo hello from the container"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    rounds = max(5, parser.parse_args().rounds)
    image = os.environ.get("BENCH_IMAGE") or os.environ.get("MLPROJ_TEST_IMAGE") or "mlproj-test-busybox"
    docker = shutil.which("docker")
    if not os.environ.get("DOCKER_HOST") or docker is None:
        raise SystemExit("set DOCKER_HOST to a Docker API (source .ci/podman.sh) and install the docker CLI")

    venv = ensure_mlproj_venv()
    subprocess.run([str(bin_path(venv, "python")), "-m", "pip", "install", "-q", "docker>=7"], check=True)
    project = WORK / "docker-project"
    project.mkdir(parents=True, exist_ok=True)
    mlproject = f"name: docker-bench\ndocker_env:\n  image: {image}\n"
    mlproject += f"entry_points:\n  main:\n    command: {COMMAND!r}\n"
    (project / "MLproject").write_text(mlproject)
    home = WORK / "docker-mlproj-home"
    shutil.rmtree(home, ignore_errors=True)
    env = child_env(venv, MLPROJ_HOME=str(home))
    workdir = "/mlflow/projects/code"
    commands = {
        "mlproj run": ([str(bin_path(venv, "mlproj")), "run", str(project)], env),
        "docker run --rm": (
            [docker, "run", "--rm", "-v", f"{project}:{workdir}", "-w", workdir, image, "sh", "-c", COMMAND],
            env,
        ),
    }
    times = measure(commands, rounds)
    med = {name: median(values) for name, values in times.items()}
    rows = [f"| `{name}` | {ms(med[name])} | {ms(min(v))} | {ms(max(v))} |" for name, v in times.items()]
    ratio = med["mlproj run"] / med["docker run --rm"]
    engine = subprocess.run(
        [docker, "version", "--format", "{{.Server.Version}}"], check=False, capture_output=True, text=True
    )
    body = "\n".join(
        [
            f"Image `{image}`, command `sh -c '{COMMAND}'`, project folder mounted as the working directory; "
            f"engine: Docker API at `{os.environ['DOCKER_HOST']}` "
            f"(server {engine.stdout.strip() or 'unknown'}). "
            f"{rounds} rounds after one warm-up each, commands {ORDER}.",
            "",
            "| command | median | min | max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- mlproj / docker run: **{ratio:.2f}x** (target: at most 1.3x)",
        ]
    )
    write_section(TITLE, body)


if __name__ == "__main__":
    main()
