"""Images built FROM a project's base image with the project copied in (`build_image`).

Tagged `<project name>:<content hash>`, so an unchanged project reuses its image. The build itself runs
as `python -m mlproj.envs.docker_image BASE TAG CONTEXT` under the run's supervisor (cancelable, its
output in the run log). `python -m mlproj.envs.docker_image --push TAG REPOSITORY:TAG` pushes it for a
backend whose cluster pulls it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import tarfile
from pathlib import Path

from mlproj.spec import Project

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from typing import Any

CODE_DIR = "/mlflow/projects/code"
IGNORED = {".git", "__pycache__", ".mlproj"}


def _files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if any(part in IGNORED for part in path.relative_to(root).parts):
            continue
        if path.is_file() or path.is_symlink():
            found.append(path)
    return found


def content_tag(project: Project, base_image: str) -> str:
    """`<project name>:<hash of the base image name and every file of the project>`."""
    digest = hashlib.sha256(base_image.encode())
    for path in _files(project.directory):
        digest.update(str(path.relative_to(project.directory)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else str(path.readlink()).encode())
    # A repository name is lowercase alphanumeric runs joined by separators; runs of dashes are always
    # valid separators, while "..", "._" or a leading separator are not: everything else becomes "-".
    name = re.sub(r"[^a-z0-9]+", "-", (project.name or project.directory.name).lower())[:100].strip("-")
    return f"{name or 'mlproj-project'}:{digest.hexdigest()[:16]}"


def image_exists(api: Any, tag: str) -> bool:
    import docker

    try:
        api.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _context(base: str, root: Path) -> io.BytesIO:
    """A build context: the project's files and a Dockerfile that copies them in."""
    buffer = io.BytesIO()
    dockerfile = f"FROM {base}\nCOPY . {CODE_DIR}/\nWORKDIR {CODE_DIR}\n".encode()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in _files(root):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
        for name, data in (
            ("Dockerfile.mlproj", dockerfile),
            (".dockerignore", b"Dockerfile.mlproj\n.dockerignore\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build(base: str, tag: str, root: Path) -> int:
    from mlproj.dockerapi import client

    api = client()
    stream = api.api.build(
        fileobj=_context(base, root),
        custom_context=True,
        dockerfile="Dockerfile.mlproj",
        tag=tag,
        rm=True,
        decode=True,
    )
    for event in stream:
        if "stream" in event:
            sys.stdout.write(event["stream"])
        elif "error" in event:
            sys.stdout.write(f"error: {event['error']}\n")
            return 1
        elif event:
            sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    return 0 if image_exists(api, tag) else 1


def push(tag: str, target: str) -> int:
    """Tag the built image `target` (REPOSITORY:TAG) and push it there. The registry's progress is
    printed once it has succeeded; a refusal is printed alone, on one line (the run's error)."""
    import re

    import docker

    from mlproj.dockerapi import client, reason

    api = client()
    repository, _, version = target.rpartition(":")
    said: list[str] = []
    try:
        api.images.get(tag).tag(repository, version)
        for event in api.api.push(repository, tag=version, stream=True, decode=True):
            if event.get("error"):
                sys.stdout.write(f"error: cannot push {target}: {_one_line(event['error'])}\n")
                return 1
            status = str(event.get("status") or "")
            found = re.search(r"digest: (sha256:[0-9a-f]{64})", status)
            if found:
                said.append(f"pushed {target}@{found.group(1)}")
            elif status and not event.get("progressDetail"):
                said.append(status)
    except docker.errors.DockerException as exc:
        sys.stdout.write(f"error: cannot push {target}: {_one_line(reason(exc))}\n")
        return 1
    sys.stdout.write("".join(f"{line}\n" for line in said))
    return 0


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


if __name__ == "__main__":
    if sys.argv[1] == "--push":
        sys.exit(push(sys.argv[2], sys.argv[3]))
    sys.exit(build(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
