"""The kubernetes backend's Job template and settings, as plain data (no cluster, no client needed):
MLflow's template as its documentation gives it, what mlproj fills in and adds, and every bad input
named with its file or key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mlproj.backends import kubejob
from mlproj.backends.kubejob import COMMAND_PLACEHOLDER, IMAGE_PLACEHOLDER, NAME_PLACEHOLDER
from mlproj.errors import InputError

# MLflow's example template (docs, "Run an MLflow Project on Kubernetes"), env note included.
MLFLOW_TEMPLATE = f"""\
apiVersion: batch/v1
kind: Job
metadata:
  name: "{NAME_PLACEHOLDER}"
  namespace: mlflow
spec:
  ttlSecondsAfterFinished: 100
  backoffLimit: 0
  template:
    spec:
      containers:
      - name: "{NAME_PLACEHOLDER}"
        image: "{IMAGE_PLACEHOLDER}"
        command: ["{COMMAND_PLACEHOLDER}"]
        env: ["{{appended with MLFLOW_TRACKING_URI, MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID}}"]
        resources:
          limits:
            memory: 512Mi
          requests:
            memory: 256Mi
      restartPolicy: Never
"""
RUN_ID = "0123456789abcdef0123456789abcdef"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


def rendered(template: dict[str, Any], **config: Any) -> dict[str, Any]:
    return kubejob.render(
        template,
        run_id=RUN_ID,
        project="wine-quality",
        namespace="ml",
        image="registry.example.com/ml/wine:abc",
        command=["/bin/sh", "-c", "python train.py --alpha 0.5"],
        env={"MLFLOW_RUN_ID": "r1", "MLPROJ_RUN_ID": RUN_ID},
        config=config,
    )


def test_mlflow_documented_template_loads_and_renders(tmp_path: Path) -> None:
    template = kubejob.load_template(write(tmp_path, MLFLOW_TEMPLATE))
    before = copy.deepcopy(template)
    job = rendered(template)
    assert template == before  # the template is not changed: each run renders its own Job
    assert job["metadata"]["name"] == f"wine-quality-{RUN_ID}"
    assert job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["labels"] == {"mlproj/run-id": RUN_ID, "app.kubernetes.io/managed-by": "mlproj"}
    assert job["spec"]["template"]["metadata"]["labels"] == {"mlproj/run-id": RUN_ID}
    assert job["spec"]["ttlSecondsAfterFinished"] == 100  # the rest of the template is kept
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "wine-quality"
    assert container["image"] == "registry.example.com/ml/wine:abc"
    assert container["command"] == ["/bin/sh", "-c", "python train.py --alpha 0.5"]
    assert container["env"] == [  # MLflow's "{appended with …}" note is dropped, the run's variables added
        {"name": "MLFLOW_RUN_ID", "value": "r1"},
        {"name": "MLPROJ_RUN_ID", "value": RUN_ID},
    ]
    assert container["resources"] == {"limits": {"memory": "512Mi"}, "requests": {"memory": "256Mi"}}
    assert container["volumeMounts"] == [{"name": "mlproj-run", "mountPath": "/mlproj/run"}]
    assert job["spec"]["template"]["spec"]["volumes"] == [{"name": "mlproj-run", "emptyDir": {}}]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    json.dumps(job)  # plain data, as the client sends it


def test_template_variables_win_and_config_adds_resources_and_pull_secrets(tmp_path: Path) -> None:
    text = MLFLOW_TEMPLATE.replace(
        'env: ["{appended with MLFLOW_TRACKING_URI, MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID}"]',
        "env:\n        - name: MLFLOW_RUN_ID\n          valueFrom: {secretKeyRef: {name: s, key: k}}\n"
        "        volumeMounts: [{name: data, mountPath: /data}]",
    ).replace(
        "      restartPolicy: Never",
        "      restartPolicy: Never\n      volumes: [{name: data, emptyDir: {}}]",
    )
    template = kubejob.load_template(write(tmp_path, text))
    job = rendered(
        template,
        resources={"limits": {"cpu": "2", "nvidia.com/gpu": "1"}},
        image_pull_secrets=["regcred", "other"],
    )
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # The template's own MLFLOW_RUN_ID (from a Secret) is kept; the run's value is not added twice.
    assert [entry["name"] for entry in container["env"]] == ["MLFLOW_RUN_ID", "MLPROJ_RUN_ID"]
    assert "valueFrom" in container["env"][0]
    assert container["resources"] == {  # the config's amounts over the template's
        "limits": {"memory": "512Mi", "cpu": "2", "nvidia.com/gpu": "1"},
        "requests": {"memory": "256Mi"},
    }
    assert container["volumeMounts"][0] == {"name": "data", "mountPath": "/data"}
    assert [v["name"] for v in pod["volumes"]] == ["data", "mlproj-run"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]


def test_the_project_container_is_the_one_with_the_image_placeholder(tmp_path: Path) -> None:
    text = f"""\
apiVersion: batch/v1
kind: Job
metadata: {{name: x}}
spec:
  template:
    spec:
      containers:
      - {{name: sidecar, image: busybox, command: [sleep, "1"]}}
      - {{name: main, image: "{IMAGE_PLACEHOLDER}", command: "{COMMAND_PLACEHOLDER}"}}
"""
    job = rendered(kubejob.load_template(write(tmp_path, text)))
    sidecar, main = job["spec"]["template"]["spec"]["containers"]
    assert sidecar == {"name": "sidecar", "image": "busybox", "command": ["sleep", "1"]}
    assert main["image"] == "registry.example.com/ml/wine:abc"
    assert main["command"][0] == "/bin/sh"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"  # mlproj's, where none is given


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (None, "no such file (expected a Kubernetes Job in YAML)"),
        ("kind: Job\n  bad: [", "kube-job-template-path"),
        ("- a list\n", "expected a Kubernetes Job (a mapping), got list"),
        ("apiVersion: v1\nkind: Pod\n", "expected apiVersion: batch/v1 and kind: Job, got 'v1' and 'Pod'"),
        ("apiVersion: batch/v1\nkind: Job\nspec: {}\n", "spec.template.spec.containers: expected a list"),
        (
            "apiVersion: batch/v1\nkind: Job\n"
            "spec: {template: {spec: {containers: [{name: a, image: b}]}}}\n",
            "no container has image:",
        ),
        (
            MLFLOW_TEMPLATE.replace(f'["{COMMAND_PLACEHOLDER}"]', '["python", "x.py"]'),
            "containers[0].command: expected",
        ),
        (
            MLFLOW_TEMPLATE.replace("restartPolicy: Never", "restartPolicy: Always"),
            "restartPolicy: expected Never",
        ),
        (
            MLFLOW_TEMPLATE.replace("restartPolicy: Never", "restartPolicy: OnFailure"),
            "a retry is a pod of its own",
        ),
        (
            MLFLOW_TEMPLATE.replace("ttlSecondsAfterFinished: 100", "ttlSecondsAfterFinished: 0"),
            "at least 60",
        ),
        (
            MLFLOW_TEMPLATE.replace("  namespace: mlflow", "  namespace: mlflow\n  labels: [a]"),
            "metadata.labels: expected a mapping, got list",
        ),
        (
            MLFLOW_TEMPLATE.replace("  template:\n", "  template:\n    metadata: oops\n"),
            "spec.template.metadata: expected a mapping, got str",
        ),
        (
            MLFLOW_TEMPLATE.replace("        resources:\n", "        resources: 2\n        x:\n"),
            "containers[0].resources: expected a mapping, got int",
        ),
        (
            MLFLOW_TEMPLATE.replace("          limits:\n", "          limits: [1]\n          x:\n"),
            "containers[0].resources.limits: expected a mapping",
        ),
        (
            MLFLOW_TEMPLATE.replace(
                "      restartPolicy: Never", "      restartPolicy: Never\n      volumes: {a: 1}"
            ),
            "spec.template.spec.volumes: expected a list",
        ),
        (
            MLFLOW_TEMPLATE.replace(
                'env: ["{appended with MLFLOW_TRACKING_URI, MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID}"]',
                "env: x",
            ),
            "containers[0].env: expected a list, got str",
        ),
    ],
)
def test_bad_templates_are_named_with_what_is_wrong(tmp_path: Path, text: str | None, fragment: str) -> None:
    path = write(tmp_path, text) if text is not None else str(tmp_path / "missing.yaml")
    with pytest.raises(InputError) as caught:
        kubejob.load_template(path)
    message = str(caught.value)
    assert message.startswith(f"kube-job-template-path {path}"), message
    assert fragment in message
    assert "\n" not in message


def test_job_names_fit_a_label_and_slugs_are_names() -> None:
    assert kubejob.job_name("p" * 80, RUN_ID) == "p" * 30 + "-" + RUN_ID
    assert len(kubejob.job_name("p" * 80, RUN_ID)) == 63
    assert kubejob.project_slug("My Project_v2!") == "my-project-v2"
    assert kubejob.project_slug(None) == "mlproj"
    assert kubejob.project_slug("---") == "mlproj"
    assert len(kubejob.project_slug("x" * 100)) == 30


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("namespace", "ml-team", "ml-team"),
        ("repository-uri", "registry.example.com:5000/team/wine", "registry.example.com:5000/team/wine"),
        ("repository-uri", "wine", "wine"),
        ("image_pull_secrets", "regcred", ["regcred"]),
        ("resources", {"limits": {"cpu": 1.5, "memory": "1Gi"}}, {"limits": {"cpu": "1.5", "memory": "1Gi"}}),
        ("resources", {"requests": {"cpu": "500m"}}, {"requests": {"cpu": "500m"}}),
    ],
)
def test_config_values_accepted(key: str, value: Any, expected: Any) -> None:
    from mlproj.backends.kubernetes import KubernetesBackend

    assert KubernetesBackend().validate_config({key: value})[key] == expected


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("namespace", "ML_Team", "expected a Kubernetes name"),
        ("namespace", "x" * 64, "expected a Kubernetes name"),
        ("repository-uri", "registry.example.com/team/wine:v1", "without a tag"),
        ("repository-uri", "Team/Wine", "without a tag"),
        ("image_pull_secrets", [], "expected a list of Secret names"),
        ("image_pull_secrets", ["ok", "Not OK"], "expected a Kubernetes name"),
        ("resources", {"limit": {"cpu": 1}}, "unknown key 'limit'"),
        ("resources", {"limits": {"memory": "lots"}}, "limits.memory='lots': expected a quantity"),
        ("resources", {"limits": {"cpu": True}}, "limits.cpu: expected a quantity"),
        ("resources", {"limits": 2}, "limits: expected a mapping"),
        ("kube-job-template-path", "", "expected the path of a Job template"),
        ("kube-context", "", "expected a non-empty string"),
        ("kubeconfig", "x", "unknown backend_config key 'kubeconfig'"),
    ],
)
def test_config_values_refused_with_the_key(key: str, value: Any, fragment: str) -> None:
    from mlproj.backends.kubernetes import KubernetesBackend

    with pytest.raises(InputError) as caught:
        KubernetesBackend().validate_config({key: value})
    assert str(caught.value).startswith("backend kubernetes: "), caught.value
    assert fragment in str(caught.value)


def test_template_path_is_made_absolute_from_where_mlproj_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlproj.backends.kubernetes import KubernetesBackend

    monkeypatch.chdir(tmp_path)
    config = KubernetesBackend().validate_config({"kube-job-template-path": "k8s/job.yaml"})
    assert config["kube-job-template-path"] == str(tmp_path / "k8s" / "job.yaml")


def test_the_example_template_and_settings_are_valid() -> None:
    from mlproj.backends import load_backend_config
    from mlproj.backends.kubernetes import KubernetesBackend

    examples = Path(__file__).parent.parent / "examples" / "kubernetes"
    settings = KubernetesBackend().validate_config(load_backend_config(str(examples / "kubernetes.json")))
    assert Path(settings["kube-job-template-path"]).name == "job.yaml"
    job = rendered(kubejob.load_template(str(examples / "job.yaml")), **settings)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["env"][0]["name"] == "MLFLOW_TRACKING_TOKEN"  # from a Secret, in the template
    assert container["resources"]["limits"] == {"memory": "512Mi", "cpu": "2"}  # backend_config's added
