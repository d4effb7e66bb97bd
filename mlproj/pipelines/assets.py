"""The asset map (design.md §9): what the `azureml:` names of an Azure ML pipeline stand for on this
machine. `azureml.yaml` beside the pipeline file, or the file given with `--asset-map`:

```yaml
environments:                      # an environment reference → {image} | {conda_file} | {env_manager}
  azureml:sklearn-env:1: {conda_file: ./envs/sklearn.yml}
  AzureML-sklearn-1.5@latest: {image: python:3.11-slim}
computes:                          # a compute → a backend and its configuration
  cpu-cluster: {backend: slurm, backend_config: {partition: debug}}
data:                              # a data asset or a datastore path → a local file or folder
  azureml:iris:1: ./data/iris.csv
  azureml://datastores/workspaceblobstore/paths/raw/: ./data/raw/
```

A reference is found as written, without its `azureml:` prefix, or by its name alone (any version,
`@latest`); a datastore path also by the longest mapped folder above it. Relative paths are relative to
the map file."""

from __future__ import annotations

import re
from pathlib import Path

from mlproj.errors import SpecError
from mlproj.pipelines.problems import Problems, Where
from mlproj.structs import dataclass, field

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

MAP_FILE = "azureml.yaml"
SECTIONS = ("environments", "computes", "data")
ENVIRONMENT_KEYS = ("image", "conda_file", "env_manager")
# azureml://subscriptions/…/workspaces/…/datastores/NAME/paths/P → azureml://datastores/NAME/paths/P
_LONG_DATASTORE = re.compile(r"^azureml://subscriptions/[^/]+/resource[gG]roups/[^/]+/workspaces/[^/]+/")
_REGISTRY_ASSET = re.compile(r"^azureml://registries/[^/]+/(?:environments|data)/([^/]+)(?:/.*)?$")


def is_reference(value: str) -> bool:
    """An Azure ML asset or datastore reference (`azureml:…`), which only the asset map can resolve."""
    return value.strip().lower().startswith("azureml:")


@dataclass(frozen=True)
class AssetMap:
    file: Path | None  # None: no map (nothing is mapped)
    environments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    computes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)

    def describe(self, expected: Path) -> str:
        """Where an entry was looked for, for a message."""
        if self.file is None:
            return f"not in an asset map (there is none at {expected}; --asset-map names one)"
        return f"not in the asset map {self.file}"

    def environment(self, reference: str) -> Mapping[str, Any] | None:
        found: Mapping[str, Any] | None = _lookup(self.environments, reference)
        return found

    def compute(self, name: str) -> Mapping[str, Any] | None:
        found: Mapping[str, Any] | None = _lookup(self.computes, name)
        return found

    def data_path(self, reference: str) -> str | None:
        """The local path a data asset or a datastore path stands for, or None."""
        found: str | None = _lookup(self.data, reference)
        if found is not None:
            return found
        target = _LONG_DATASTORE.sub("azureml://", reference.strip())
        best = ""
        for key in self.data:
            folder = _LONG_DATASTORE.sub("azureml://", key).rstrip("/") + "/"
            if target.startswith(folder) and len(folder) > len(best):
                best = folder
                found = str(Path(self.data[key]) / target[len(folder) :])
        return found


def _names(reference: str) -> list[str]:
    """The keys a reference may be mapped under, most specific first."""
    text = _LONG_DATASTORE.sub("azureml://", reference.strip())
    names = [text]
    bare = text[len("azureml:") :] if text.lower().startswith("azureml:") else text
    names.append(bare)
    registry = _REGISTRY_ASSET.match(text)
    if registry is not None:
        names.append(registry.group(1))
    elif not bare.startswith("//"):
        names.append(re.split(r"[:@]", bare, maxsplit=1)[0])
    return names


def _lookup(section: Mapping[str, Any], reference: str) -> Any:
    for name in _names(reference):
        for key, value in section.items():
            if key == name or _names(key)[1] == name:
                return value
    return None


def load_asset_map(pipeline_file: Path, given: Path | None, problems: Problems) -> AssetMap:
    """The map given with `--asset-map` (it must exist), or `azureml.yaml` beside the pipeline file (if
    there is one). Its problems are added to `problems`."""
    from mlproj.yamlio import load_yaml_with_lines

    path = given if given is not None else pipeline_file.parent / MAP_FILE
    if given is None and not path.is_file():
        return AssetMap(file=None)
    path = path.absolute()
    try:
        data, lines = load_yaml_with_lines(path)
    except SpecError as exc:
        problems.add(exc)
        return AssetMap(file=path)
    where = Where(path, "", lines)
    if data is None:
        return AssetMap(file=path)
    if not isinstance(data, dict):
        problems.add(where.error("", f"expected a mapping with {', '.join(SECTIONS)}"))
        return AssetMap(file=path)
    for key in data:
        if key not in SECTIONS:
            problems.add(where.error(str(key), f"unknown key (expected one of: {', '.join(SECTIONS)})"))
    sections = {name: _section(data.get(name), where.at(name), problems) for name in SECTIONS}
    environments = {}
    for name, body in sections["environments"].items():
        environments[name] = _environment(body, where.at(f"environments.{name}"), path.parent, problems)
    computes = {}
    for name, body in sections["computes"].items():
        computes[name] = _compute(body, where.at(f"computes.{name}"), problems)
    data_paths = {}
    for name, body in sections["data"].items():
        target = body.get("path") if isinstance(body, dict) else body
        if not isinstance(target, str) or not target.strip():
            problems.add(where.error(f"data.{name}", "expected a local path, or {path: PATH}"))
            continue
        data_paths[name] = str((path.parent / Path(target.strip()).expanduser()).absolute())
    return AssetMap(file=path, environments=environments, computes=computes, data=data_paths)


def _section(value: Any, where: Where, problems: Problems) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(where.error("", "expected a mapping of names"))
        return {}
    return {str(key): body for key, body in value.items()}


def _environment(body: Any, where: Where, folder: Path, problems: Problems) -> dict[str, Any]:
    if isinstance(body, str):  # `name: uv`: an environment manager
        body = {"env_manager": body}
    if not isinstance(body, dict) or not body:
        problems.add(where.error("", f"expected a mapping with {', '.join(ENVIRONMENT_KEYS)}"))
        return {}
    result: dict[str, Any] = {}
    for key, value in body.items():
        if key not in ENVIRONMENT_KEYS:
            problems.add(
                where.error(str(key), f"unknown key (expected one of: {', '.join(ENVIRONMENT_KEYS)})")
            )
        elif not isinstance(value, str) or not value.strip():
            problems.add(where.error(str(key), "expected a string"))
        elif key == "conda_file":
            result[key] = str((folder / value.strip()).absolute())
        else:
            result[key] = value.strip()
    return result


def _compute(body: Any, where: Where, problems: Problems) -> dict[str, Any]:
    if isinstance(body, str):  # `cpu-cluster: slurm`
        body = {"backend": body}
    if not isinstance(body, dict) or not isinstance(body.get("backend"), str):
        problems.add(where.error("", "expected {backend: NAME, backend_config: {...}}"))
        return {"backend": "local"}
    for key in body:
        if key not in ("backend", "backend_config"):
            problems.add(where.error(str(key), "unknown key (expected backend, backend_config)"))
    config = body.get("backend_config")
    if config is not None and not isinstance(config, dict):
        problems.add(where.error("backend_config", "expected a mapping"))
        config = None
    return {"backend": body["backend"].strip(), "backend_config": dict(config) if config else None}
