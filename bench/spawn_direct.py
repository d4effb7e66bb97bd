"""Start COUNT trivial step commands one after the other, as mlproj starts a pipeline step, and time it.

Run with the benchmark venv's Python (the interpreter mlproj runs on): `python spawn_direct.py FOLDER COUNT`.
Process i is `bash -c 'echo step-i'` (mlproj's shell), started like mlproj's `process.spawn`: in a
session of its own, stdin from /dev/null, stdout and stderr appended to a log file of its own (in
FOLDER, emptied first), working directory FOLDER. Prints the seconds the COUNT start-and-wait took.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    folder, count = Path(sys.argv[1]), int(sys.argv[2])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shell = shutil.which("bash") or "/bin/sh"
    env = dict(os.environ)
    start = time.perf_counter()
    for i in range(count):
        env["MLPROJ_STEP"] = f"s{i}"
        with (folder / f"s{i}.log").open("ab") as log:
            proc = subprocess.Popen(
                [shell, "-c", f"echo step-{i}"],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        if proc.wait() != 0:
            raise SystemExit(f"step {i} exited with {proc.returncode}")
    print(time.perf_counter() - start)


if __name__ == "__main__":
    main()
