# syntax=docker/dockerfile:1.7
# skyfleet-coordinator: the coordinator and its ops console (`skyfleet coordinator run`), and the
# hub tooling that runs beside it (`skyfleet site join`, `skyfleet site nats-config --hub`,
# `skyfleet coordinator migrate`, `skyfleet status`).
#
#   docker build -f docker/coordinator.Dockerfile -t REGISTRY/skyfleet-coordinator:TAG .
#
# From the repository root (the build context). Runs as uid 10001; writes only under
# /var/lib/skyfleet (SQLite, if no PostgreSQL URL is given).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/skyfleet
WORKDIR /src
COPY docker/constraints.txt ./
# torch first, the pinned CPU build: the command line imports it, the coordinator never runs a model
RUN /opt/skyfleet/bin/pip install --constraint constraints.txt \
        --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu"
COPY pyproject.toml README.md ./
COPY protos/ protos/
COPY fleetbus/ fleetbus/
COPY imaging/ imaging/
COPY site_agent/ site_agent/
COPY coordinator/ coordinator/
COPY training/ training/
COPY skyfleet/ skyfleet/
RUN /opt/skyfleet/bin/pip install --constraint constraints.txt ".[coordinator]"

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/skyfleet --create-home skyfleet
COPY --from=build /opt/skyfleet /opt/skyfleet
ENV PATH=/opt/skyfleet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SKYFLEET_COORDINATOR_HTTP_HOST=0.0.0.0 \
    SKYFLEET_COORDINATOR_HTTP_PORT=8080
USER 10001:10001
WORKDIR /var/lib/skyfleet
EXPOSE 8080
# Console reads are open to loopback clients only, which is what this check is.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/summary', timeout=4)"]
ENTRYPOINT ["skyfleet"]
CMD ["coordinator", "run"]
