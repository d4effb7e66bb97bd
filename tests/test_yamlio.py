"""mlproj.yamlio: the parse cache gives back exactly what parsing gives, is never used for a file whose
text changed, and a command that finds its file in the cache does not import PyYAML."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj import yamlio
from mlproj.errors import SpecError
from mlproj.home import Home

PROJECT = """\
name: demo
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      name: {type: string, default: "x y"}
      flags: [1, 2.5, true, null, "s"]
    command: "python train.py {alpha}"
"""


def slots(home: Home) -> list[Path]:
    folder = home.root / "cache" / "yaml"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_a_cached_parse_is_the_parse(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "MLproject"
    path.write_text(PROJECT)
    first = yamlio.load_yaml_with_lines(path)
    assert len(slots(home)) == 1
    second = yamlio.load_yaml_with_lines(path)
    assert second == first
    assert second[1]["entry_points.main.command"] == 8
    assert yamlio._parse(path, PROJECT) == first  # what parsing gives, without the cache


def test_a_changed_file_is_parsed_again(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "MLproject"
    path.write_text(PROJECT)
    yamlio.load_yaml_with_lines(path)
    path.write_text(PROJECT.replace("0.5", "0.7"))  # same size, other text: the text is compared
    data, _ = yamlio.load_yaml_with_lines(path)
    assert data["entry_points"]["main"]["parameters"]["alpha"]["default"] == 0.7


def test_what_json_would_change_is_not_cached(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "dates.yaml"
    path.write_text("when: 2024-01-02\n1: one\nbig: .inf\n")
    data, _ = yamlio.load_yaml_with_lines(path)
    assert data == {"when": datetime.date(2024, 1, 2), 1: "one", "big": float("inf")}
    assert slots(home) == []
    assert yamlio.load_yaml_with_lines(path)[0] == data


@pytest.mark.parametrize("damage", ["{not json", '{"version": 1, "path": "elsewhere"}', "[]", ""])
def test_a_damaged_or_foreign_entry_is_ignored(tmp_path: Path, home: Home, damage: str) -> None:
    path = tmp_path / "MLproject"
    path.write_text(PROJECT)
    expected = yamlio.load_yaml_with_lines(path)
    (slot,) = slots(home)
    slot.write_text(damage)
    assert yamlio.load_yaml_with_lines(path) == expected
    assert json.loads(slot.read_text())["path"] == str(path)  # written again


def test_an_entry_for_another_text_under_the_same_path_is_not_used(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "MLproject"
    path.write_text(PROJECT)
    yamlio.load_yaml_with_lines(path)
    (slot,) = slots(home)
    entry = json.loads(slot.read_text())
    entry["data"] = {"name": "poisoned"}
    entry["text"] = PROJECT + "\n# another text\n"
    slot.write_text(json.dumps(entry))
    assert yamlio.load_yaml_with_lines(path)[0]["name"] == "demo"


def test_errors_are_never_cached(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "MLproject"
    path.write_text("name: a\nname: b\n")
    for _ in range(2):
        with pytest.raises(SpecError, match="duplicate key 'name'"):
            yamlio.load_yaml_with_lines(path)
    assert slots(home) == []


def test_a_home_that_cannot_be_written_only_costs_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "home-is-a-file"
    blocked.write_text("")
    monkeypatch.setenv("MLPROJ_HOME", str(blocked))
    path = tmp_path / "MLproject"
    path.write_text(PROJECT)
    assert yamlio.load_yaml_with_lines(path)[0]["name"] == "demo"
    assert not list(tmp_path.glob("**/*.tmp"))


def test_the_cache_holds_a_bounded_number_of_slots(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlio, "CACHE_SLOTS", 4)
    for index in range(20):
        path = tmp_path / f"p{index}.yaml"
        path.write_text(f"value: {index}\n")
        assert yamlio.load_yaml_with_lines(path)[0] == {"value": index}
    assert 1 <= len(slots(home)) <= 4
    for index in range(20):  # whatever slot a file shares, it reads back its own content
        assert yamlio.load_yaml_with_lines(tmp_path / f"p{index}.yaml")[0] == {"value": index}


def test_a_cached_file_is_read_without_importing_yaml(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "MLproject"
    path.write_text(PROJECT)
    code = (
        "import sys; from pathlib import Path; from mlproj.yamlio import load_yaml_with_lines;"
        "data, _ = load_yaml_with_lines(Path(sys.argv[1])); print(data['name'], 'yaml' in sys.modules)"
    )
    env = {**os.environ, "MLPROJ_HOME": str(home.root)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True, check=True
        )
        for _ in range(2)
    ]
    assert [done.stdout.split() for done in runs] == [["demo", "True"], ["demo", "False"]]
