"""Runs an Azure ML parallel job's entry script over mini-batches (design.md §9). A standalone program:
it runs with the step environment's interpreter, so it imports nothing but the standard library.

    python3 parallel_runner.py --entry-script score.py --input DATA --mini-batch-size 10
        --max-concurrency 2 [--append-row-to FILE] ... -- PROGRAM ARGUMENTS

The input's files (a folder, every file under it, sorted) or rows (a CSV file, or the CSV files of a
folder such as an MLTable's) are cut into mini-batches. Each of `--max-concurrency` worker processes
imports the entry script, calls its `init()` once, then `run(mini_batch)` for each batch it is given:
a list of file paths, or the rows (a pandas DataFrame where pandas is installed, else a list of
dicts). A batch that raises, or outlasts `--timeout`, is tried again up to `--max-retries` times (a
worker that outlasts it is replaced). What `run()` returns is appended to `--append-row-to`, one line
per item, once per batch: the attempt that succeeded. More failed items than `--error-threshold`, or
failed batches than `--mini-batch-error-threshold` (-1: any number), fail the job.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import multiprocessing
import os
import queue
import re
import shutil
import sys
import time
import traceback
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROGRESS_EVERY = 1.0  # seconds between two progress lines


def main(argv: list[str]) -> int:
    args, program = _parse(argv)
    if args.instance == "slurm":  # one of the instances `srun` started: SLURM_PROCID says which
        args.instance = os.environ.get("SLURM_PROCID", "0")
    items, tabular = _items(Path(args.input))
    batches = _batches(items, args.mini_batch_size, tabular=tabular)
    if args.instance is None:
        kind = "rows" if tabular else "files"
        print(f"mlproj parallel: {len(items)} {kind} in {len(batches)} mini-batches", flush=True)
        if args.instances > 1:
            spread = _spread(args, argv, batches)
            if spread is not None:
                return spread
    pool = Pool(args, program, batches, tabular=tabular)
    try:
        return pool.run()
    finally:
        pool.close()


def _spread(args: argparse.Namespace, argv: list[str], batches: list[list[Any]]) -> int | None:
    """`instance_count` instances: on Slurm, a task each of the job (`srun`; Slurm spreads them over
    its nodes), each taking every N-th mini-batch, their rows gathered in instance order; on Ray, N
    times the processes on the node the job runs on; elsewhere, one instance (None: run here as one)."""
    import subprocess

    count, backend = args.instances, os.environ.get("MLPROJ_BACKEND", "local")
    if backend == "ray":
        args.max_concurrency *= count
        processes = args.max_concurrency
        print(f"mlproj parallel: {count} instances as {processes} processes on this node", flush=True)
        return None
    srun = shutil.which("srun")
    if backend != "slurm" or not os.environ.get("SLURM_JOB_ID") or srun is None:
        print(f"mlproj parallel: instance_count {count}: one instance here", flush=True)
        return None
    work = _work_dir()
    for old in work.glob("instance-*"):
        old.unlink()
    own, program = (argv[: argv.index("--")], argv[argv.index("--") :]) if "--" in argv else (argv, [])
    command = [
        srun,
        f"--ntasks={count}",
        f"--cpus-per-task={args.max_concurrency}",
        "--kill-on-bad-exit=0",
        sys.executable,
        str(Path(__file__).resolve()),
        *own,
        "--instance",
        "slurm",
        *program,
    ]
    print(f"mlproj parallel: {count} instances as Slurm tasks ({' '.join(command[:3])} ...)", flush=True)
    process = subprocess.Popen(command)  # our own program, its arguments as a list
    while process.poll() is None:
        time.sleep(PROGRESS_EVERY)
        _gather_progress(work, count, len(batches))
    _gather_progress(work, count, len(batches))
    return _gather(args, work, count, len(batches))


def _work_dir() -> Path:
    """Where the instances leave their rows, progress and counts."""
    folder = Path(os.environ.get("MLPROJ_RUN_DIR") or ".") / "parallel"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _gather_progress(work: Path, count: int, total: int) -> None:
    done = failed = 0
    for index in range(count):
        try:
            found = json.loads((work / f"instance-{index}.progress").read_text())
        except (OSError, ValueError):
            continue
        done, failed = done + int(found.get("done", 0)), failed + int(found.get("failed", 0))
    _progress(done, total, failed)


def _gather(args: argparse.Namespace, work: Path, count: int, total: int) -> int:
    """The instances' counts summed and checked, their rows appended in instance order."""
    done = failed_items = failed_batches = 0
    missing = []
    for index in range(count):
        try:
            found = json.loads((work / f"instance-{index}.json").read_text())
        except (OSError, ValueError):
            missing.append(index)
            continue
        done += int(found["done"])
        failed_items += int(found["failed_items"])
        failed_batches += int(found["failed_batches"])
    if args.append_row_to:
        with Path(args.append_row_to).open("a", encoding="utf-8") as output:
            for index in range(count):
                part = work / f"instance-{index}.rows"
                if part.is_file():
                    with part.open(encoding="utf-8") as rows:
                        shutil.copyfileobj(rows, output)
    if missing:
        print(f"mlproj parallel: failed: instance {missing[0]} of {count} did not finish", flush=True)
        return 1
    if _over(args, failed_items, failed_batches) or (total and not done):
        counts = f"{failed_items} items and {failed_batches} mini-batches failed"
        print(f"mlproj parallel: failed: {counts}", flush=True)
        return 1
    print(f"mlproj parallel: {done} of {total} mini-batches done, {failed_batches} failed", flush=True)
    return 0


class Pool:
    """The worker processes and the mini-batches: which runs where, until each is done or failed."""

    def __init__(
        self, args: argparse.Namespace, program: list[str], batches: list[list[Any]], *, tabular: bool
    ) -> None:
        self.args, self.batches = args, batches
        self.context = multiprocessing.get_context("spawn")
        self.results: multiprocessing.Queue[Any] = self.context.Queue()
        self.workers: dict[int, Any] = {}
        self.inboxes: dict[int, multiprocessing.Queue[Any]] = {}
        self.setup = (str(Path(args.entry_script).resolve()), program, args.logging_level, tabular)
        self.index = None if args.instance is None else int(args.instance)
        self.pending = list(range(len(batches)))
        if self.index is not None:  # an instance: every N-th mini-batch
            self.pending = self.pending[self.index :: args.instances]
        self.mine = len(self.pending)
        self.attempts = dict.fromkeys(self.pending, 0)
        self.running: dict[int, tuple[int, float]] = {}  # batch → (worker slot, deadline)
        self.done: set[int] = set()
        self.failed_items = self.failed_batches = 0
        target = args.append_row_to
        if target and self.index is not None:
            target = _work_dir() / f"instance-{self.index}.rows"
            target.write_text("")
        self.output = Path(target).open("a", encoding="utf-8") if target else None  # noqa: SIM115
        for slot in range(min(args.max_concurrency, max(self.mine, 1))):
            self.start(slot)
        self.idle = list(self.workers)

    def start(self, slot: int) -> None:
        self.inboxes[slot] = self.context.Queue()
        worker = self.context.Process(
            target=_work, args=(slot, self.setup, self.inboxes[slot], self.results), daemon=True
        )
        worker.start()
        self.workers[slot] = worker

    def run(self) -> int:
        shown = 0.0
        while self.pending or self.running:
            self.dispatch()
            self.collect()
            self.reap()
            if _over(self.args, self.failed_items, self.failed_batches):
                args = self.args
                counts = f"{self.failed_items} items and {self.failed_batches} mini-batches failed"
                limits = f"error_threshold {args.error_threshold}"
                limits += f", mini_batch_error_threshold {args.mini_batch_error_threshold}"
                print(f"mlproj parallel: failed: {counts} ({limits})", flush=True)
                self.report()
                return 1
            if time.monotonic() >= shown:
                shown = time.monotonic() + PROGRESS_EVERY
                self.progress()
        self.progress()
        self.report()
        total = self.mine
        if total and not self.done:
            print(f"mlproj parallel: failed: none of the {total} mini-batches succeeded", flush=True)
            return 1
        print(
            f"mlproj parallel: {len(self.done)} of {total} mini-batches done, {self.failed_batches} failed",
            flush=True,
        )
        return 0

    def report(self) -> None:
        """An instance's counts, for the runner that started the instances."""
        if self.index is not None:
            counts = {"done": len(self.done), "failed_items": self.failed_items}
            counts["failed_batches"] = self.failed_batches
            (_work_dir() / f"instance-{self.index}.json").write_text(json.dumps(counts))

    def progress(self) -> None:
        if self.index is None:
            _progress(len(self.done), self.mine, self.failed_batches)
            return
        progress = {"done": len(self.done), "total": self.mine, "failed": self.failed_batches}
        (_work_dir() / f"instance-{self.index}.progress").write_text(json.dumps(progress))

    def dispatch(self) -> None:
        while self.pending and self.idle:
            batch, slot = self.pending.pop(0), self.idle.pop(0)
            self.attempts[batch] += 1
            self.running[batch] = (slot, time.monotonic() + self.args.timeout)
            self.inboxes[slot].put((batch, self.batches[batch]))

    def collect(self) -> None:
        try:
            slot, batch, ok, payload = self.results.get(timeout=0.2)
        except queue.Empty:
            return
        if self.running.get(batch, (None,))[0] != slot:
            return  # from an attempt given up already (its worker was replaced)
        del self.running[batch]
        self.idle.append(slot)
        if not ok:
            self.fail(batch, payload)
            return
        self.failed_items += max(len(self.batches[batch]) - len(payload), 0)  # items it returned nothing for
        self.done.add(batch)
        if self.output is not None:
            self.output.writelines(f"{line}\n" for line in payload)
            self.output.flush()

    def reap(self) -> None:
        """A batch that outlasts its timeout, or whose worker died: the worker is replaced."""
        now = time.monotonic()
        for batch, (slot, deadline) in list(self.running.items()):
            alive = self.workers[slot].is_alive()
            if now <= deadline and alive:
                continue
            self.workers[slot].kill()
            self.workers[slot].join()
            self.start(slot)
            del self.running[batch]
            self.idle.append(slot)
            self.fail(
                batch, f"timed out after {self.args.timeout:g} s" if alive else "its worker process died"
            )

    def fail(self, batch: int, why: str) -> None:
        """The batch is tried again, or counted as failed for good."""
        print(
            f"mlproj parallel: mini-batch {batch} failed (attempt {self.attempts[batch]}): {why}", flush=True
        )
        if self.attempts[batch] <= self.args.max_retries:
            self.pending.append(batch)
            return
        self.failed_batches += 1
        self.failed_items += len(self.batches[batch])

    def close(self) -> None:
        if self.output is not None:
            self.output.close()
        for inbox in self.inboxes.values():
            inbox.put(None)
        for worker in self.workers.values():
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    own, _, program = (
        (argv[: argv.index("--")], "--", argv[argv.index("--") + 1 :]) if "--" in argv else (argv, "", [])
    )
    parser = argparse.ArgumentParser(prog="parallel_runner")
    parser.add_argument("--entry-script", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--mini-batch-size", default="1")
    parser.add_argument("--max-concurrency", type=int, default=1)
    parser.add_argument("--error-threshold", type=int, default=-1)
    parser.add_argument("--mini-batch-error-threshold", type=int, default=-1)
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--logging-level", default="INFO")
    parser.add_argument("--append-row-to")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--instance")  # set for the instances `--instances` starts (`slurm`: SLURM_PROCID)
    return parser.parse_args(own), program


def _items(source: Path) -> tuple[list[Any], bool]:
    """(the files under a folder, or the rows of CSV data; whether they are rows)."""
    if source.is_dir() and not (source / "MLTable").is_file():
        return sorted(str(p) for p in source.rglob("*") if p.is_file()), False
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*.csv") if p.is_file())
    rows: list[Any] = []
    for file in files:
        with file.open(newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    return rows, True


def _batches(items: list[Any], size: str, *, tabular: bool) -> list[list[Any]]:
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?b)?\s*", size.lower())
    if match is None:
        raise SystemExit(f"mini_batch_size {size!r}: expected a count, or a size such as 100kb")
    count, unit = int(match.group(1)), match.group(2)
    if unit and tabular:  # a size: rows until their text reaches it
        limit = count * {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}[unit]
        batches: list[list[Any]] = [[]]
        used = 0
        for row in items:
            length = len(",".join(str(v) for v in row.values()))
            if batches[-1] and used + length > limit:
                batches.append([])
                used = 0
            batches[-1].append(row)
            used += length
        return [b for b in batches if b]
    count = max(count, 1)
    return [items[start : start + count] for start in range(0, len(items), count)]


def _over(args: argparse.Namespace, items: int, batches: int) -> bool:
    over_items = args.error_threshold >= 0 and items > args.error_threshold
    over_batches = args.mini_batch_error_threshold >= 0 and batches > args.mini_batch_error_threshold
    return bool(over_items or over_batches)


def _progress(done: int, total: int, failed: int) -> None:
    folder = os.environ.get("MLPROJ_RUN_DIR")
    if folder:
        target = Path(folder) / "progress.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps({"done": done, "total": total, "failed": failed}))
        temporary.replace(target)


def _work(
    slot: int, setup: tuple[Any, ...], inbox: multiprocessing.Queue[Any], results: multiprocessing.Queue[Any]
) -> None:
    script, program, level, tabular = setup
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO))
    sys.argv = [script, *program]
    sys.path.insert(0, str(Path(script).parent))
    spec = importlib.util.spec_from_file_location("entry_script", script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    if hasattr(module, "init"):
        module.init()
    while True:
        task = inbox.get()
        if task is None:
            return
        batch, items = task
        try:
            returned = module.run(_frame(items) if tabular else items)
            results.put((slot, batch, True, _lines(returned)))
        except Exception:  # noqa: BLE001 - the entry script's failure is the batch's
            results.put((slot, batch, False, traceback.format_exc(limit=3).strip().splitlines()[-1]))


def _frame(rows: list[Any]) -> object:
    try:
        import pandas  # type: ignore[import-untyped]
    except ImportError:
        return rows
    return pandas.DataFrame(rows)


def _lines(returned: object) -> list[str]:
    if returned is None:
        return []
    to_rows = getattr(returned, "itertuples", None)
    if to_rows is not None:  # a DataFrame: a row per line
        return [" ".join(str(value) for value in row) for row in to_rows(index=False)]
    return [str(item) for item in returned]  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
