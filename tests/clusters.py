"""Whether the real engines the backend tests talk to are here: Slurm, a Ray cluster, a Docker API.

Tests that need one are skipped, with the reason, where it is absent, except when its name is listed
in MLPROJ_TEST_REQUIRE (CI sets `docker,slurm,ray`): then its absence fails the test instead, so a
broken engine in CI can never pass for a skipped test.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

DEFAULT_RAY_ADDRESS = "http://127.0.0.1:8265"


def required() -> set[str]:
    return {name.strip() for name in os.environ.get("MLPROJ_TEST_REQUIRE", "").split(",") if name.strip()}


def need(name: str, missing: str | None) -> None:
    """Skip (or fail, where `name` is required) when `missing` says why the engine is not here."""
    if missing is None:
        return
    if name in required():
        pytest.fail(f"{name} is required here (MLPROJ_TEST_REQUIRE) but {missing}")
    pytest.skip(missing)


def slurm_missing() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm's commands (sinfo, sbatch) are not installed (start one as .ci/slurm.sh does)"
    done = subprocess.run(
        ["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        answer = lines[-1] if lines else done.returncode
        return f"no Slurm cluster answers: {answer} (start one as .ci/slurm.sh does)"
    if "up" not in done.stdout:
        return f"no Slurm partition is up: {done.stdout.strip()!r}"
    return None


def ray_address() -> str:
    return os.environ.get("RAY_ADDRESS") or DEFAULT_RAY_ADDRESS


def ray_missing() -> str | None:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        return "the ray package is not installed (pip install 'mlproj[ray]')"
    saved = os.environ.pop("RAY_ADDRESS", None)
    try:
        JobSubmissionClient(ray_address())
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the engine is not there
        return (
            f"no Ray cluster answers at {ray_address()}: {type(exc).__name__}: {str(exc)[:200]} "
            "(start a head: ray start --head, as .ci/ray.sh does, and set RAY_ADDRESS)"
        )
    finally:
        if saved is not None:
            os.environ["RAY_ADDRESS"] = saved
    return None
