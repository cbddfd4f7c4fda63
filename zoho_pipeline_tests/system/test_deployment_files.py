"""The Kubernetes path is files a user edits: the Dockerfile installs the project with the k8s extra, the Helm
values deploy this code location with the run launcher and the one-sync-at-a-time queue the docs describe."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_the_image_installs_the_project_with_the_kubernetes_extra():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'pip install ".[k8s]"' in dockerfile and "zoho_pipeline.definitions" in dockerfile
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("dagster-k8s==") for dep in extras["k8s"])


def test_the_helm_values_deploy_this_code_location():
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "zoho_pipeline.definitions"]
    assert {"name": "DAGSTER_DEPLOYMENT", "value": "production"} in deployment["env"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert {"key": "zoho_sync", "limit": 1} in coordinator["tagConcurrencyLimits"]
    assert values["postgresql"]["enabled"] is False
    assert "deploy/helm/values.yaml" in (REPO / "docs" / "deployment.md").read_text()
