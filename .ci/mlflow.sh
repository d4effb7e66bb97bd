#!/usr/bin/env bash
# Source me: installs MLflow into its own virtualenv (its server and a Python that imports mlflow, for
# workloads that log) and exports MLPROJ_TEST_MLFLOW, its `mlflow` executable. The tracking tests start
# `mlflow server` from it on 127.0.0.1 (sqlite backend store, a temporary artifact folder): their own,
# so that one of them can stop and restart it in the middle of a run.
W=${MLFLOW_WORK:-/tmp/mlproj-ci-mlflow}
mkdir -p "$W"
[ -x "$W/venv/bin/mlflow" ] || { python3 -m venv "$W/venv" && "$W/venv/bin/pip" install -q "mlflow>=2.16"; }
export MLPROJ_TEST_MLFLOW="$W/venv/bin/mlflow"
