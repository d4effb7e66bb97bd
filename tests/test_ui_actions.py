"""The web UI's pipeline page, step panels, rerun, comparison and catalog pages over HTTP (design.md
§11, §12), against a real `mlproj serve` and real runs. (The browser's part: tests/test_ui_browser.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlproj.home import Home
from tests.helpers import mlproj, mlproj_json, wait_until
from tests.pipelines import write_pipeline
from tests.servers import Server, token
from tests.test_ui_pages import Visitor

BRANCHES = Path(__file__).parent / "azure" / "control" / "branches.yml"


@pytest.fixture
def visitors(server: Server, home: Home) -> dict[str, Visitor]:
    """A logged-in visitor for each role."""
    found = {}
    for role in ("read", "submit", "admin"):
        visitor = Visitor(server)
        visitor.log_in(token(f"ui-{role}", role))
        found[role] = visitor
    return found


def loop_and_branch(tmp_path: Path) -> Path:
    return write_pipeline(
        tmp_path / "p.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        inputs:
          score: 0.9
        jobs:
          evaluate:
            command: >-
              awk -v s=${{inputs.score}} 'BEGIN { print (s > 0.5) ? "true" : "false" }' > ${{outputs.good}}
            inputs:
              score: ${{parent.inputs.score}}
            outputs:
              good: {type: boolean, is_control: true}
          gate:
            type: if_else
            condition: ${{parent.jobs.evaluate.outputs.good}}
            true_block: ${{parent.jobs.deploy}}
            false_block: ${{parent.jobs.retrain}}
          deploy:
            command: echo deploying
          retrain:
            command: echo retraining
          body:
            command: echo item ${{inputs.n}}
            inputs:
              n: {type: integer, value: 0}
          fan:
            type: parallel_for
            body: ${{parent.jobs.body}}
            items: [{n: 1}, {n: 2}, {n: 3}]
        """,
    )


def test_a_pipeline_page_groups_loops_and_branches_and_a_step_opens_its_panel(
    visitors: dict[str, Visitor], tmp_path: Path
) -> None:
    document = mlproj_json("run", str(loop_and_branch(tmp_path)))
    assert document["status"] == "Finished"
    steps = {step["step"]: step for step in document["steps"]}
    status, _, part = visitors["read"].get(f"/ui/pipeline/{document['run_id']}")
    assert status == 286
    # The loop: one row, its iterations folded under it with their inputs.
    assert "3 iterations of parallel_for fan: 3 Finished" in part
    assert re.search(r'data-panel="/ui/step/\w+">0</a>.*?n=1', part, re.S)
    # The if_else: the branch taken and the one not, in words; the step not taken says why.
    assert "true_block → deploy (✓ taken)" in part and "false_block → retrain (↷ not taken)" in part
    assert "not run: gate took its true_block" in part
    assert '<path class="edge branch taken"' in part and '<path class="edge branch not-taken"' in part
    # A step's panel: its status, why it ran, its outputs and its log's end; 286 as it has ended.
    item = steps["fan.0"]
    status, _, panel = visitors["read"].get(f"/ui/step/{item['run_id']}")
    assert status == 286 and "<html" not in panel
    assert "item 1" in panel and "Finished" in panel and f'href="/runs/{item["run_id"]}"' in panel
    assert f"/runs/{item['run_id']}/outputs/artifacts" in panel
    assert visitors["read"].get("/ui/step/" + "0" * 32)[0] == 404


def test_a_running_step_s_panel_is_asked_for_again_until_it_ends(
    visitors: dict[str, Visitor], tmp_path: Path
) -> None:
    pipeline = write_pipeline(
        tmp_path / "slow.yml",
        """
        type: pipeline
        jobs:
          wait:
            command: echo started; sleep 30
        """,
    )
    run_id = mlproj("run", str(pipeline), "--detach").stdout.strip()
    wait_until(lambda: mlproj_json("status", run_id)["steps"][0]["status"] == "Running", timeout=60)
    step_id = mlproj_json("status", run_id)["steps"][0]["run_id"]
    wait_until(lambda: "started" in visitors["read"].get(f"/ui/step/{step_id}")[2], timeout=30)
    status, _, panel = visitors["read"].get(f"/ui/step/{step_id}")
    assert status == 200 and f'hx-get="/ui/step/{step_id}" hx-trigger="every 2s"' in panel
    assert mlproj("cancel", run_id).returncode == 0
    status, _, panel = visitors["read"].get(f"/ui/step/{step_id}")
    assert status == 286 and "hx-trigger" not in panel


def rerun_form(visitor: Visitor, run_id: str) -> dict[str, str]:
    _, _, page = visitor.get(f"/runs/{run_id}")
    assert 'id="rerun"' in page, page[:300]
    form = dict(re.findall(r'<input name="(param\.[^"]+)" value="([^"]*)"', page))
    return {"csrf": visitor.csrf(f"/runs/{run_id}"), **form}


def test_rerun_from_the_page_with_a_parameter_changed(visitors: dict[str, Visitor], tmp_path: Path) -> None:
    first = mlproj_json("run", str(BRANCHES), "-P", "score=0.9")
    admin = visitors["admin"]
    form = rerun_form(admin, first["run_id"])
    assert form["param.score"] == "0.9"
    status, headers, _ = admin.request(
        "POST", f"/runs/{first['run_id']}/rerun", {**form, "param.score": "0.2"}
    )
    assert status == 303
    new_id = headers["location"].removeprefix("/runs/")
    assert mlproj("wait", new_id).returncode == 0
    again = mlproj_json("status", new_id)
    assert again["parameters"] == {"score": "0.2"} and again["tags"]["mlproj.rerun_of"] == first["run_id"]
    assert {s["step"]: s["status"] for s in again["steps"]}["retrain"] == "Finished"  # the other branch
    # A reader sees no rerun button; a submit token may not rerun what is not a published pipeline's
    # run (it would run code of its choosing); neither may a forged form.
    _, _, page = visitors["read"].get(f"/runs/{first['run_id']}")
    assert 'id="rerun"' not in page
    _, _, page = visitors["submit"].get(f"/runs/{first['run_id']}")
    assert 'id="rerun"' not in page
    submit = visitors["submit"]
    status, _, _ = submit.request("POST", f"/runs/{first['run_id']}/rerun", {"csrf": submit.csrf("/")})
    assert status == 403
    status, _, _ = admin.request("POST", f"/runs/{first['run_id']}/rerun", {"csrf": "0" * 64})
    assert status == 403
    status, _, _ = admin.request("POST", f"/runs/{first['run_id']}/rerun", form, origin="http://evil.test")
    assert status == 403
    assert len(mlproj_json("runs")) == 2  # nothing else was started


def test_a_published_pipeline_s_run_is_rerun_by_a_submit_token_unless_disabled(
    visitors: dict[str, Visitor], tmp_path: Path
) -> None:
    published = mlproj("publish", str(BRANCHES), "--name", "gate").stdout.strip()
    first = mlproj_json("published", "submit", published, "-P", "score=0.9")
    assert mlproj("wait", first["run_id"]).returncode == 0
    submit = visitors["submit"]
    form = rerun_form(submit, first["run_id"])
    status, headers, _ = submit.request("POST", f"/runs/{first['run_id']}/rerun", form)
    assert status == 303
    new_id = headers["location"].removeprefix("/runs/")
    assert mlproj_json("status", new_id)["published_pipeline_id"] == published
    assert mlproj("published", "disable", published).returncode == 0
    status, _, page = submit.request("POST", f"/runs/{first['run_id']}/rerun", form)
    assert status == 409 and "disabled" in page
    # A step is rerun with its pipeline run: no button on its page.
    step = mlproj_json("status", first["run_id"])["steps"][0]
    _, _, page = visitors["admin"].get(f"/runs/{step['run_id']}")
    assert 'id="rerun"' not in page


def test_runs_are_compared_side_by_side(visitors: dict[str, Visitor], tmp_path: Path) -> None:
    one = mlproj_json("run", str(BRANCHES), "-P", "score=0.9")["run_id"]
    two = mlproj_json("run", str(BRANCHES), "-P", "score=0.2")["run_id"]
    reader = visitors["read"]
    _, _, page = reader.get("/")
    assert f'name="run" value="{one}" form="compare"' in page  # each row may be ticked
    status, _, page = reader.get(f"/compare?run={one}&run={two}")
    assert status == 200
    row = re.search(r'<tr class="differs"><th scope="row">score .*?</tr>', page, re.S)
    assert row and "0.9" in row.group(0) and "0.2" in row.group(0)
    same = mlproj_json("run", str(BRANCHES), "-P", "score=0.9")["run_id"]
    _, _, page = reader.get(f"/compare?run={one}&run={same}")
    assert "parameters and metrics are the same." in page
    _, _, page = reader.get(f"/compare?run={one}&run={same}&all=1")
    assert '<th scope="row">score' in page and 'class="differs"' not in page
    assert reader.get(f"/compare?run={one}")[0] == 400  # one run: nothing to compare
    assert reader.get(f"/compare?run={one}&run={one[:8]}")[0] == 400  # the same run, named twice
    assert reader.get(f"/compare?run={one}&run=" + "f" * 32)[0] == 404
    assert reader.get(f"/compare?run={one}&run=%3Cscript%3E")[0] == 404


def test_published_pipelines_endpoints_and_schedules_have_pages_with_their_runs(
    visitors: dict[str, Visitor], tmp_path: Path
) -> None:
    published = mlproj("publish", str(BRANCHES), "--name", "gate", "--version", "2").stdout.strip()
    assert mlproj("endpoints", "create", "scoring", "--pipeline", published).returncode == 0
    assert mlproj("schedules", "create", "nightly", "--endpoint", "scoring", "--every", "1h").returncode == 0
    by_endpoint = mlproj_json("endpoints", "submit", "scoring")["run_id"]
    direct = mlproj_json("published", "submit", published)["run_id"]
    reader = visitors["read"]
    _, _, listing = reader.get("/published")
    assert f'href="/published/{published}"' in listing
    status, _, page = reader.get(f"/published/{published}")
    assert status == 200 and "Published pipeline gate" in page
    assert by_endpoint in page and direct in page  # both are this pipeline's runs
    status, _, page = reader.get("/endpoints/scoring")
    assert status == 200 and f'href="/published/{published}"' in page and "0 (default)" in page
    assert by_endpoint in page and direct not in page  # only the endpoint's
    _, _, page = reader.get("/?endpoint=scoring")  # the runs page, filtered the same way
    assert by_endpoint in page and direct not in page and 'name="endpoint" value="scoring"' in page
    status, _, page = reader.get("/schedules/nightly")
    assert status == 200 and "every 1h" in page and "Last ticks" in page
    for missing in ("/schedules/nope", "/endpoints/%3Cb%3E", "/published/ffff"):
        assert reader.get(missing)[0] == 404, missing


def test_the_ui_and_the_api_take_run_ids_not_names(
    server: Server, visitors: dict[str, Visitor], tmp_path: Path
) -> None:
    import urllib.request

    run = mlproj_json("run", str(BRANCHES), "--run-name", "cafe")
    assert mlproj_json("status", "cafe")["run_id"] == run["run_id"]  # the command line takes names
    assert visitors["read"].get("/runs/cafe")[0] == 404
    assert visitors["read"].get("/runs/last")[0] == 404
    request = urllib.request.Request(
        f"{server.url}/api/v1/runs/cafe", headers={"Authorization": f"Bearer {token('api-read', 'read')}"}
    )
    try:
        urllib.request.urlopen(request, timeout=30)
        status = 200
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 404
