"""Fill a run store with COUNT finished runs, fast, through mlproj's own store code.

Run with the benchmark venv's Python (it imports mlproj): `python fill_store.py HOME COUNT`.
The store at HOME is created afresh; prints the ID of a run from the middle of the history.
"""

import random
import shutil
import sys
import time
from pathlib import Path

from mlproj.home import Home
from mlproj.runs.record import RunRecord
from mlproj.runs.request import RunRequest
from mlproj.runs.status import RunStatus
from mlproj.runs.store import Store, new_run_id

YEAR = 365 * 24 * 3600.0
EXPERIMENTS = ("Default", "taxi-fares", "churn", "ranking")
ENTRY_POINTS = ("main", "train", "evaluate")


def make_record(rng: random.Random, home: Home, created_at: float, experiments: dict[str, int]) -> RunRecord:
    run_id = new_run_id()
    run_dir = home.run_dir(run_id)
    experiment = rng.choice(EXPERIMENTS)
    roll = rng.random()
    status = RunStatus.FINISHED if roll < 0.85 else RunStatus.FAILED if roll < 0.97 else RunStatus.CANCELED
    exit_code = {RunStatus.FINISHED: 0, RunStatus.FAILED: rng.choice((1, 2, 137)), RunStatus.CANCELED: 130}
    started_at = created_at + rng.uniform(0.05, 30)
    params = {"lr": f"{rng.choice((0.1, 0.01, 0.001))}", "epochs": str(rng.randint(1, 200)), "seed": "42"}
    return RunRecord(
        run_id=run_id,
        status=status,
        exit_code=exit_code[status],
        error="the command exited with code 1" if status is RunStatus.FAILED else None,
        experiment=experiment,
        experiment_id=experiments[experiment],
        run_name=f"run-{rng.randint(1, 10**6)}" if rng.random() < 0.3 else None,
        uri=f"/home/user/projects/{rng.choice(('train', 'etl', 'eval'))}",
        entry_point=rng.choice(ENTRY_POINTS),
        parameters=params,
        env_manager=rng.choice(("local", "virtualenv", "uv")),
        created_at=created_at,
        started_at=started_at,
        ended_at=started_at + rng.expovariate(1 / 600),
        log_path=str(run_dir / "output.log"),
        tags={"team": rng.choice(("ml", "search", "ads")), "ci": rng.choice(("true", "false"))},
        command=f"python train.py --lr {params['lr']} --epochs {params['epochs']} --seed 42",
        work_dir=f"/home/user/projects/{rng.choice(('train', 'etl', 'eval'))}",
        run_dir=str(run_dir),
        supervisor_pid=rng.randint(1000, 60000),
        pid=rng.randint(1000, 60000),
        request=RunRequest(command="python train.py", cwd=f"/home/user/projects/{experiment}"),
    )


def fill(root: Path, count: int) -> str:
    shutil.rmtree(root, ignore_errors=True)
    home = Home.from_env(root)
    store = Store.open(home)
    rng = random.Random(20240601)  # noqa: S311 (reproducible test data, not secrets)
    ids = {name: store.experiment_id(name) for name in EXPERIMENTS}
    now = time.time()
    times = sorted(now - rng.uniform(60, YEAR) for _ in range(count))
    with store.immediate():
        records = [make_record(rng, home, t, ids) for t in times]
        for record in records:
            store.insert(record)
    store.close()
    return records[count // 2].run_id


if __name__ == "__main__":
    print(fill(Path(sys.argv[1]), int(sys.argv[2])))
