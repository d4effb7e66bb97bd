"""What reading any pipeline document needs: where problems go, the asset map, and the scalars of
both dialects (names, mappings, booleans, numbers, backends, environment managers), each wrong value
a problem that names its file, line and key path."""

from __future__ import annotations

import math
from pathlib import Path

from mlproj.pipelines.model import NAME, text_of
from mlproj.pipelines.problems import Problems, Where

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from mlproj.pipelines.assets import AssetMap


class Reader:
    """The part of reading a pipeline document that its steps share: problems, the asset map, scalars."""

    def __init__(
        self, path: Path, lines: dict[str, int], *, check_paths: bool = True, asset_map: Path | None = None
    ) -> None:
        self.path = path
        self.lines = lines
        self.top = Where(path, "", lines)
        self.check_paths = check_paths
        self.problems = Problems()
        self.asset_map_file = asset_map
        self._assets: AssetMap | None = None

    @property
    def assets(self) -> AssetMap:
        if self._assets is None:
            from mlproj.pipelines.assets import load_asset_map

            self._assets = load_asset_map(self.path, self.asset_map_file, self.problems)
        return self._assets

    def problem(self, where: Where, key: str, message: str) -> None:
        self.problems.add(where.error(key, message))

    # --- the document ------------------------------------------------------------------------------

    def compute(self, value: Any, where: Where, key: str) -> tuple[str | None, dict[str, Any] | None]:
        """An Azure compute through the asset map's `computes`; unmapped: local, with a notice."""
        if not isinstance(value, str) or not value.strip():
            self.problem(where, key, f"expected the name of a compute, got {value!r}")
            return None, None
        name = value.strip()
        mapped = self.assets.compute(name)
        if mapped is None:
            from mlproj.notices import warn

            expected = self.path.parent / "azureml.yaml"
            warn(f"{where.error(key, name)}: {self.assets.describe(expected)}: runs locally")
            return None, None
        backend = self.backend(mapped, where.at(key))
        return backend, mapped.get("backend_config")

    def data_reference(self, value: str, where: Where, key: str) -> str:
        """An `azureml:` data asset or datastore path → its local path in the asset map (exit 2 when
        it has none); any other value as it is."""
        from mlproj.pipelines.assets import is_reference

        if not is_reference(value):
            return value
        found = self.assets.data_path(value)
        if found is None:
            expected = self.path.parent / "azureml.yaml"
            self.problem(where, key, f"{value}: {self.assets.describe(expected)} (add it under data:)")
            return value
        return found

    def name(self, where: Where, section: str, value: Any) -> bool:
        """A step, input or output name: it stands in bindings and names folders of the run."""
        text = str(value)
        if NAME.fullmatch(text):
            return True
        self.problem(
            where,
            f"{section}.{text}",
            f"{text!r}: a name is letters, digits, '_' and '-', starting with a letter or '_'",
        )
        return False

    def mapping(self, value: Any, where: Where, key: str) -> dict[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(where, key, "expected a mapping")
            return {}
        return value

    def strings(self, value: Any, where: Where, key: str) -> dict[str, str]:
        return {str(k): text_of(v) for k, v in self.mapping(value, where, key).items()}

    @staticmethod
    def optional_str(data: dict[Any, Any], key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    def boolean(
        self, data: Mapping[Any, Any], key: str, where: Where, *, default: bool | None
    ) -> bool | None:
        value = data.get(key, default)
        if value is None and default is None:
            return None
        if not isinstance(value, bool):
            self.problem(where, key, f"expected true or false, got {value!r}")
            return default
        return value

    def positive_int(self, data: dict[Any, Any], key: str, where: Where, minimum: int = 1) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(where, key, f"expected a whole number of at least {minimum}, got {value!r}")
            return None
        return value

    def positive_number(self, data: dict[Any, Any], key: str, where: Where) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            self.problem(where, key, f"expected a positive number of seconds, got {value!r}")
            return None
        return float(value)

    def backend(self, data: Mapping[Any, Any], where: Where) -> str | None:
        """A backend name; unknown ones are errors here (their configuration is checked in `plan`)."""
        from mlproj.backends import get_backend
        from mlproj.errors import InputError

        value = data.get("backend")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(where, "backend", f"expected the name of a backend, got {value!r}")
            return None
        try:
            get_backend(value.strip())
        except InputError as exc:
            self.problem(where, "backend", str(exc))
            return None
        return value.strip()

    def backend_config(self, data: Mapping[Any, Any], where: Where) -> dict[str, Any] | None:
        value = data.get("backend_config")
        if value is None:
            return None
        return dict(self.mapping(value, where, "backend_config"))

    def limits(self, body: Mapping[Any, Any], where: Where, key: str) -> dict[str, Any]:
        """An input's `min`, `max` (numbers) and `enum` (a list of values), checked."""
        found: dict[str, Any] = {}
        for name in ("min", "max"):
            bound = body.get(name)
            if bound is None:
                continue
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                self.problem(where, f"{key}.{name}", f"expected a number, got {bound!r}")
            else:
                found[name] = bound
        enum = body.get("enum")
        if enum is not None:
            if not isinstance(enum, list) or not enum or any(isinstance(item, (dict, list)) for item in enum):
                self.problem(where, f"{key}.enum", "expected a list of values")
            else:
                found["enum"] = enum
        return found

    def within(self, value: Any, limits: Mapping[str, Any], where: Where, key: str) -> None:
        """A literal value inside its input's limits (a binding is checked when it has a value)."""
        from mlproj.pipelines.model import BINDING, out_of_limits

        if value is None or not limits or (isinstance(value, str) and BINDING.search(value)):
            return
        problem = out_of_limits(text_of(value), limits)
        if problem:
            self.problem(where, key, problem)

    def env_manager(self, value: Any, where: Where, key: str) -> str | None:
        from mlproj.envs import MANAGERS

        if value is None:
            return None
        if value not in MANAGERS:
            self.problem(
                where, key, f"unknown environment manager {value!r} (expected one of: {', '.join(MANAGERS)})"
            )
            return None
        return str(value)
