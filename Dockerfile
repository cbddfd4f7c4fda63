# The code location's image: the project installed, with the Kubernetes run launcher (the `k8s` extra). The same
# image runs the code server (gRPC), each run's pod (K8sRunLauncher), and the CLI (`zoho-pipeline ...`, e.g. a
# CronJob for `zoho-pipeline alert`). Secrets come from the environment (docs/deployment.md §2), never the image.
#
#   docker build -t registry.internal/zoho-pipeline:1.0.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/zoho-pipeline

# dependencies first, so a code change rebuilds only the last layers
COPY pyproject.toml README.md ./
COPY zoho_pipeline ./zoho_pipeline
RUN pip install ".[k8s]" && useradd --system --uid 10001 zoho
COPY workspace.yaml dagster.yaml ./

USER zoho
EXPOSE 3030
# the code server; the Helm chart passes its own dagsterApiGrpcArgs, a run pod its own command
CMD ["dagster", "api", "grpc", "-m", "zoho_pipeline.definitions", "-h", "0.0.0.0", "-p", "3030"]
