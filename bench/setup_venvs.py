"""Create the benchmark virtualenvs under bench/.work/.

mlproj-venv: mlproj installed (not editable) from this checkout, again on every call.
mlflow-venv: MLflow 3.x, installed once and reused.
"""

from common import ensure_mlflow_venv, ensure_mlproj_venv, package_version

if __name__ == "__main__":
    mlproj = ensure_mlproj_venv()
    mlflow = ensure_mlflow_venv()
    print(f"mlproj {package_version(mlproj, 'mlproj')} in {mlproj}")
    print(f"mlflow {package_version(mlflow, 'mlflow')} in {mlflow}")
