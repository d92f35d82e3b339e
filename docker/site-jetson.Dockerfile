# syntax=docker/dockerfile:1.7
# skyfleet-site-jetson: the site agent for an NVIDIA Jetson (Orin), on NVIDIA's PyTorch for
# Jetson's integrated GPU (the NGC PyTorch container's `-igpu` build, L4T/JetPack 6, CUDA,
# Python 3.12), with ONNX Runtime beside it. Build it for arm64, on a Jetson or with buildx:
#
#   docker buildx build --platform linux/arm64 -f docker/site-jetson.Dockerfile \
#       -t REGISTRY/skyfleet-site-jetson:TAG .
#
# The agent's venv sees the base image's torch (--system-site-packages) and installs nothing
# that replaces it. PyPI's onnxruntime for aarch64 runs on the CPU; for the TensorRT and CUDA
# execution providers pass the Jetson build of onnxruntime-gpu (docs/jetson.md), e.g.
#   --build-arg ONNXRUNTIME=onnxruntime-gpu==1.23.0 --build-arg PIP_EXTRA_INDEX_URL=https://...
# Run with the NVIDIA container runtime (`--runtime nvidia`, or runtimeClassName: nvidia).
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.06-py3-igpu

FROM ${BASE_IMAGE} AS build
ARG ONNXRUNTIME=onnxruntime==1.23.2
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
RUN python3 -m venv --system-site-packages /opt/skyfleet
WORKDIR /src
COPY docker/constraints.txt ./
COPY pyproject.toml README.md ./
COPY protos/ protos/
COPY fleetbus/ fleetbus/
COPY imaging/ imaging/
COPY site_agent/ site_agent/
COPY coordinator/ coordinator/
COPY training/ training/
COPY skyfleet/ skyfleet/
# NVIDIA's torch (a pre-release version such as 2.8.0a0+...nv25.6) is pinned to exactly what the
# base image holds, so pip never swaps in PyPI's CPU-only aarch64 wheel. The base image's own pip
# constraints (PIP_CONSTRAINT) are set aside: they pin numpy 1.x, and astropy needs numpy 2.
RUN torch_version="$(/opt/skyfleet/bin/python -c 'import torch; print(torch.__version__)')" \
    && grep -v -E '^(onnxruntime|numpy)=' constraints.txt > /tmp/constraints.txt \
    && echo "torch==${torch_version}" >> /tmp/constraints.txt \
    && PIP_CONSTRAINT="" /opt/skyfleet/bin/pip install --constraint /tmp/constraints.txt \
        ".[triton]" "${ONNXRUNTIME}" "numpy>=2,<3" \
    && /opt/skyfleet/bin/python -c "import onnxruntime, torch, site_agent.agent; print(torch.__version__)"

FROM ${BASE_IMAGE}
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
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=4)"]
# NGC images start through their own entrypoint script (banner, driver checks); the agent does not
# need it and must receive SIGTERM itself.
ENTRYPOINT ["skyfleet"]
CMD ["site", "run"]
