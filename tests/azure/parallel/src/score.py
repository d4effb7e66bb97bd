"""An entry script as Azure ML's parallel jobs run it: init() once per process, run() per mini-batch."""

import argparse
import logging
import os
import time
from typing import Any

PREFIX = FAIL_ONCE = ALWAYS = SLEEP = ""


def init() -> None:
    global PREFIX, FAIL_ONCE, ALWAYS, SLEEP
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", default="scored")
    parser.add_argument("--fail-once", default="")  # a marker folder: the first try of f07.txt fails
    parser.add_argument("--always-fail", default="")  # a name whose mini-batch always fails
    parser.add_argument("--sleep-on", default="")  # a name whose mini-batch outlasts its timeout
    args, _ = parser.parse_known_args()
    PREFIX, FAIL_ONCE, ALWAYS, SLEEP = args.prefix, args.fail_once, args.always_fail, args.sleep_on
    logging.info("init in process %s", os.getpid())


def run(mini_batch: Any) -> list[str]:
    results = []
    to_dict = getattr(mini_batch, "to_dict", None)  # a pandas DataFrame, or a list
    items = to_dict("records") if to_dict is not None else mini_batch
    for item in items:
        name = os.path.basename(item) if isinstance(item, str) else item["name"]
        if FAIL_ONCE and name == "f07.txt":
            marker = os.path.join(FAIL_ONCE, name)
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("the first try of f07.txt fails")
        if name == ALWAYS:
            raise RuntimeError(f"{name} always fails")
        if name == SLEEP:
            time.sleep(30)
        results.append(f"{PREFIX} {name}")
    return results
