"""mlproj: run MLflow projects and pipelines from a folder or a Git URI, and record every run.

The public names are imported on first use, so that `import mlproj` stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing would cost the command line ~20 ms at start-up

__version__ = "0.1.0"
__all__ = [
    "Client",
    "ExecutionError",
    "MlprojError",
    "PipelineEndpoint",
    "PipelineRun",
    "PortDataReference",
    "PublishedPipeline",
    "StepRun",
    "SubmittedRun",
    "get_pipeline_runs",
    "run",
]

if TYPE_CHECKING:
    from typing import Any

    from mlproj.api import SubmittedRun, run
    from mlproj.api.client import Client
    from mlproj.api.pipeline import (
        PipelineEndpoint,
        PipelineRun,
        PortDataReference,
        PublishedPipeline,
        StepRun,
        get_pipeline_runs,
    )
    from mlproj.errors import ExecutionError, MlprojError

_LAZY = {
    "run": "mlproj.api",
    "SubmittedRun": "mlproj.api",
    "ExecutionError": "mlproj.errors",
    "MlprojError": "mlproj.errors",
    "PipelineRun": "mlproj.api.pipeline",
    "StepRun": "mlproj.api.pipeline",
    "PortDataReference": "mlproj.api.pipeline",
    "PublishedPipeline": "mlproj.api.pipeline",
    "PipelineEndpoint": "mlproj.api.pipeline",
    "get_pipeline_runs": "mlproj.api.pipeline",
    "Client": "mlproj.api.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlproj' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
