# syntax=docker/dockerfile:1.7
# skyfleet-site: the site agent (`skyfleet site run`) for an x86-64 edge computer, with its own
# leaf-node nats-server (the agent starts it from the venv), Triton's gRPC client and ONNX Runtime.
# For a Jetson use docker/site-jetson.Dockerfile.
#
#   docker build -f docker/site.Dockerfile -t REGISTRY/skyfleet-site:TAG .
#
# The camera's folder is mounted at /frames/incoming; state, quarantine, references and the
# site's JetStream store live in /var/lib/skyfleet (a volume: it must survive restarts).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/skyfleet
WORKDIR /src
COPY docker/constraints.txt ./
# The pinned CPU build of torch: scoring a frame is 4.5 ms on two CPU cores (docs/site-agent.md);
# a GPU node scores through Triton (SKYFLEET_SITE_TRITON_URL) or uses the CUDA build instead.
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
RUN /opt/skyfleet/bin/pip install --constraint constraints.txt ".[triton,onnx]"

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/skyfleet --create-home skyfleet \
    && mkdir -p /frames/incoming \
    && chown skyfleet:skyfleet /frames/incoming
COPY --from=build /opt/skyfleet /opt/skyfleet
ENV PATH=/opt/skyfleet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SKYFLEET_SITE_WATCH_DIR=/frames/incoming \
    SKYFLEET_SITE_WORK_DIR=/var/lib/skyfleet \
    SKYFLEET_SITE_METRICS_HOST=0.0.0.0 \
    SKYFLEET_SITE_METRICS_PORT=9100
USER 10001:10001
WORKDIR /var/lib/skyfleet
VOLUME ["/var/lib/skyfleet"]
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=4)"]
ENTRYPOINT ["skyfleet"]
CMD ["site", "run"]
