"""The web UI in a real headless Chromium (Debian's `chromium`, driven by Playwright from PyPI without
its own browser download), against a real `mlproj serve` (design.md §11): each page renders (its
screenshot kept in MLPROJ_TEST_SCREENSHOTS when set), a running step's status and log change without a
reload, cancel from the page cancels the run, a reader sees no cancel button, and no request leaves the
server the pages came from.

Skipped where Chromium or Playwright is missing, except when MLPROJ_TEST_REQUIRE names `chromium`
(CI: .ci/chromium.sh installs both).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlproj.home import Home
from tests.clusters import need
from tests.helpers import mlproj, mlproj_json, wait_until
from tests.pipelines import write_pipeline
from tests.servers import Server, token

CHROMIUM = os.environ.get("MLPROJ_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def chromium_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)"
    if not Path(CHROMIUM).exists():
        return "Chromium is not installed (Debian: apt install chromium; or set MLPROJ_TEST_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need("chromium", chromium_missing())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        try:
            yield launched
        finally:
            launched.close()


def logged_in(browser: Any, server: Server, key: str, requests: list[str] | None = None) -> Any:
    """A page of a fresh browser context, logged in with `key`; every URL it asks for goes to
    `requests`."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    if requests is not None:
        page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url + "/")
    page.fill("#token", key)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
    return page


def shoot(page: Any, name: str) -> None:
    folder = os.environ.get("MLPROJ_TEST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def start_slow_run(tmp_path: Path, seconds: float = 60) -> str:
    """A pipeline whose step prints a line, waits for the file `gate` in tmp_path, prints another, then
    sleeps `seconds`."""
    gate = tmp_path / "gate"
    pipeline = write_pipeline(
        tmp_path / "slow.yml",
        f"""
        type: pipeline
        name: slow
        jobs:
          wait:
            command: >-
              echo first line; while [ ! -e {gate} ]; do sleep 0.1; done;
              echo second line; sleep {seconds}
        """,
    )
    done = mlproj("run", str(pipeline), "--detach")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_each_page_renders_and_nothing_leaves_the_server(
    browser: Any, server: Server, home: Home, tmp_path: Path
) -> None:
    key = token("browser-admin", "admin")
    published = write_pipeline(tmp_path / "p.yml", "type: pipeline\njobs:\n  a:\n    command: echo hi\n")
    pipeline_id = mlproj("publish", str(published), "--name", "shown").stdout.strip()
    assert mlproj("endpoints", "create", "shown-ep", "--pipeline", pipeline_id).returncode == 0
    assert mlproj("schedules", "create", "hourly", "--endpoint", "shown-ep", "--every", "1h").returncode == 0
    run = mlproj_json("run", str(published))
    other = mlproj_json("published", "submit", pipeline_id)
    requests: list[str] = []
    page = logged_in(browser, server, key, requests)
    for path, name, expected in (
        ("/", "runs", "Runs"),
        (f"/runs/{run['run_id']}", "run", "Finished"),
        ("/published", "published", "shown"),
        (f"/published/{pipeline_id}", "published-one", "Published pipeline shown"),
        ("/endpoints", "endpoints", "Endpoints"),
        ("/endpoints/shown-ep", "endpoint-one", "0 (default)"),
        ("/schedules", "schedules", "Schedules"),
        ("/schedules/hourly", "schedule-one", "every 1h"),
        (f"/compare?run={run['run_id']}&run={other['run_id']}&all=1", "compare-all", "Compare 2 runs"),
    ):
        page.goto(server.url + path)
        assert expected in page.inner_text("main"), path
        shoot(page, name)
    dark = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    dark_page = dark.new_page()
    dark_page.context.add_cookies(page.context.cookies())
    dark_page.goto(f"{server.url}/runs/{run['run_id']}")
    background = dark_page.locator("body").evaluate("body => getComputedStyle(body).backgroundColor")
    assert background == "rgb(21, 23, 26)"  # the dark palette, as the system asks
    shoot(dark_page, "run-dark")
    dark.close()
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(server.url + "/")
    shoot(page, "runs-phone")
    assert requests and all(url.startswith(server.url + "/") for url in requests), [
        url for url in requests if not url.startswith(server.url)
    ]


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_a_running_step_s_status_and_log_change_without_a_reload(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    key = token("browser-reader", "read")
    run_id = start_slow_run(tmp_path, seconds=1)
    wait_until(lambda: any(s["step"] == "wait" for s in mlproj_json("status", run_id)["steps"]))
    step = next(s for s in mlproj_json("status", run_id)["steps"] if s["step"] == "wait")
    wait_until(lambda: "first line" in mlproj("logs", run_id, "--step", "wait").stdout)
    page = logged_in(browser, server, key)
    runs = page.context.new_page()  # the runs list, loaded while the run runs
    runs.goto(server.url + "/")
    assert "Running" in runs.inner_text("#rows")
    pipeline_page = page.context.new_page()  # the pipeline's DAG, loaded while its step runs
    pipeline_page.goto(f"{server.url}/runs/{run_id}")
    assert "▶ Running" in pipeline_page.inner_text("#dag")
    page.goto(f"{server.url}/runs/{step['run_id']}")
    log = page.inner_text("#log")
    assert "first line" in log and "second line" not in log  # held: what comes next comes live
    assert page.inner_text("#status").strip() == "Running"
    (tmp_path / "gate").touch()
    # (The pages' Content-Security-Policy forbids evaluating strings: Playwright's `expect` polls.)
    expect(page.locator("#log")).to_contain_text("second line", timeout=30_000)
    expect(page.locator("#status")).to_have_text("Finished", timeout=30_000)
    shoot(page, "step-finished")
    expect(runs.locator("#rows")).to_contain_text("Finished", timeout=30_000)  # refreshed, no reload
    expect(pipeline_page.locator("#dag")).to_contain_text("✓ Finished", timeout=30_000)
    expect(pipeline_page.locator("#pipeline table")).to_contain_text("Finished", timeout=30_000)
    shoot(pipeline_page, "pipeline-dag")
    assert "Running" not in runs.inner_text("#rows")


def test_cancel_from_the_page_cancels_the_run(browser: Any, server: Server, tmp_path: Path) -> None:
    key = token("browser-submitter", "submit")
    run_id = start_slow_run(tmp_path)
    (tmp_path / "gate").touch()
    wait_until(lambda: mlproj_json("status", run_id)["status"] == "Running")
    page = logged_in(browser, server, key)
    page.goto(f"{server.url}/runs/{run_id}")
    page.click("#cancel")
    wait_until(lambda: mlproj_json("status", run_id)["status"] == "Canceled", timeout=60)
    expect(page.locator("#status")).to_have_text("Canceled", timeout=30_000)


def test_a_reader_sees_no_cancel_button_and_a_forged_post_is_refused(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    key = token("browser-reader2", "read")
    run_id = start_slow_run(tmp_path)
    try:
        page = logged_in(browser, server, key)
        page.goto(f"{server.url}/runs/{run_id}")
        assert page.query_selector("#cancel") is None
        csrf = page.get_attribute("input[name=csrf]", "value")  # the logout form's: this session's
        same_origin = {"Origin": server.url}
        for form, headers, why in (
            ({"csrf": csrf}, same_origin, "needs a submit token"),  # the reader's own, valid form
            ({"csrf": "0" * 32}, same_origin, "not one this server gave"),
            ({"csrf": csrf}, {"Origin": "http://evil.example"}, "another site"),
        ):
            forged = page.request.post(f"{server.url}/runs/{run_id}/cancel", form=form, headers=headers)
            assert forged.status == 403 and why in forged.text(), why
        assert mlproj_json("status", run_id)["status"] in ("Queued", "Running")
    finally:
        mlproj("cancel", run_id, "--grace", "1")


BRANCHES = Path(__file__).parent / "azure" / "control" / "branches.yml"


def test_a_click_or_the_keyboard_on_a_step_opens_its_log_and_outputs(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    key = token("browser-panel", "read")
    run = mlproj_json("run", str(BRANCHES), "-P", "score=0.9")
    page = logged_in(browser, server, key)
    page.goto(f"{server.url}/runs/{run['run_id']}")
    page.click("#dag a[aria-label^='announce_deploy']")
    expect(page.locator("#step-panel")).to_contain_text("deploying", timeout=10_000)  # its log, here
    assert page.url == f"{server.url}/runs/{run['run_id']}"  # no page left
    expect(page.locator("#panel-title")).to_be_focused()  # a keyboard user lands on what opened
    shoot(page, "pipeline-panel")
    # The same with the keyboard only: Tab from the page's top reaches the DAG's nodes, Enter opens.
    page.goto(f"{server.url}/runs/{run['run_id']}")
    for _ in range(40):
        page.keyboard.press("Tab")
        label = page.evaluate_handle("document.activeElement").get_property("ariaLabel").json_value()
        if label and str(label).startswith("evaluate"):
            break
    else:
        pytest.fail("no DAG node was reached with Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title")).to_contain_text("evaluate", timeout=10_000)
    # A branch's iterations and blocks are told in words in the steps table.
    expect(page.locator("#pipeline")).to_contain_text("true_block → deploy (✓ taken)")


def test_rerun_from_the_page_starts_a_new_run_with_the_changed_parameter(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    key = token("browser-admin2", "admin")
    run = mlproj_json("run", str(BRANCHES), "-P", "score=0.9")
    page = logged_in(browser, server, key)
    page.goto(f"{server.url}/runs/{run['run_id']}")
    page.click("details.rerun summary")
    page.fill("input[name='param.score']", "0.2")
    shoot(page, "rerun-form")
    page.click("#rerun")
    page.wait_for_url(lambda url: "/runs/" in url and run["run_id"] not in url)
    new_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#status")).to_have_text("Finished", timeout=60_000)
    again = mlproj_json("status", new_id)
    assert again["parameters"] == {"score": "0.2"} and again["tags"]["mlproj.rerun_of"] == run["run_id"]


def test_runs_ticked_on_the_runs_page_are_compared(browser: Any, server: Server, tmp_path: Path) -> None:
    key = token("browser-compare", "read")
    one = mlproj_json("run", str(BRANCHES), "-P", "score=0.9")["run_id"]
    two = mlproj_json("run", str(BRANCHES), "-P", "score=0.2")["run_id"]
    page = logged_in(browser, server, key)
    page.check(f"#pick-{one}")
    page.check(f"#pick-{two}")
    page.wait_for_timeout(2_500)  # the rows are refreshed every 2 s: the ticks must survive it
    assert page.is_checked(f"#pick-{one}") and page.is_checked(f"#pick-{two}")
    page.click("form#compare button")
    page.wait_for_url(lambda url: "/compare?" in url)
    expect(page.locator("table.compare")).to_contain_text("score")
    assert "≠ differs" in page.inner_text("table.compare")
    shoot(page, "compare")


def test_the_runs_page_of_a_store_of_100_000_runs_loads_and_pages(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Its time is measured by bench/ui_pages.py, not here: these machines are shared.)"""
    import subprocess
    import sys

    home_root = tmp_path / "big-home"
    fill = Path(__file__).parents[1] / "bench" / "fill_store.py"
    done = subprocess.run(
        [sys.executable, str(fill), str(home_root), "100000"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("MLPROJ_HOME", str(home_root))
    key = token("browser-big", "read")
    big = Server(home_root).start()
    try:
        page = logged_in(browser, big, key)
        rows = page.locator("#rows tr")
        assert rows.count() == 50
        first = page.inner_text("#rows")
        page.click("a[rel=next]")
        page.wait_for_url(lambda url: "cursor=" in url)
        assert page.locator("#rows tr").count() == 50 and page.inner_text("#rows") != first
        page.goto(big.url + "/?status=Failed")
        assert page.locator("#rows tr").count() == 50 and "Failed" in page.inner_text("#rows")
        shoot(page, "runs-100000")
    finally:
        big.stop()


def test_a_loop_folded_by_hand_stays_folded_while_the_page_refreshes(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    key = token("browser-folds", "read")
    pipeline = write_pipeline(
        tmp_path / "loop.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          body:
            command: echo ${{inputs.n}}; sleep 60
            inputs:
              n: {type: integer, value: 0}
          fan:
            type: parallel_for
            body: ${{parent.jobs.body}}
            items: [{n: 1}, {n: 2}]
        """,
    )
    run_id = mlproj("run", str(pipeline), "--detach").stdout.strip()
    try:
        wait_until(
            lambda: any(s["step"] == "fan.0" for s in mlproj_json("status", run_id)["steps"]), timeout=60
        )
        page = logged_in(browser, server, key)
        page.goto(f"{server.url}/runs/{run_id}")
        fold = page.locator("details[data-fold]")
        expect(fold).to_have_attribute("open", "")  # unfolded while the loop runs
        page.click("details[data-fold] summary")
        assert fold.get_attribute("open") is None
        page.wait_for_timeout(4_500)  # two refreshes of the steps table
        assert page.locator("details[data-fold]").get_attribute("open") is None
        expect(page.locator("#pipeline")).to_contain_text("2 iterations of parallel_for fan")
    finally:
        mlproj("cancel", run_id, "--grace", "1")
