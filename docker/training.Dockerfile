# syntax=docker/dockerfile:1.7
# skyfleet-training: fleet retraining on Ray Train (`skyfleet train fleet`), the image of every
# pod of the KubeRay RayCluster (head and GPU workers) and so of the RayJob that runs on it.
# Ray's own image carries what KubeRay expects (ray, bash, wget for its probes, user `ray`);
# Skyfleet and the pinned CUDA build of torch go on top.
#
#   docker build -f docker/training.Dockerfile -t REGISTRY/skyfleet-training:TAG .
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu

FROM ${RAY_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /tmp/src
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users protos/ protos/
COPY --chown=ray:users fleetbus/ fleetbus/
COPY --chown=ray:users imaging/ imaging/
COPY --chown=ray:users site_agent/ site_agent/
COPY --chown=ray:users coordinator/ coordinator/
COPY --chown=ray:users training/ training/
COPY --chown=ray:users skyfleet/ skyfleet/
RUN pip wheel --no-deps --wheel-dir /tmp/wheels .

FROM ${RAY_IMAGE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0
COPY docker/constraints.txt /tmp/constraints.txt
COPY --from=build /tmp/wheels /tmp/wheels
# torch from PyPI is the CUDA build; ray stays the version the base image holds (pinned alike)
RUN pip install --constraint /tmp/constraints.txt "torch==2.13.0" \
    && pip install --constraint /tmp/constraints.txt \
        "skyfleet[train] @ file://$(ls /tmp/wheels/skyfleet-*.whl)" \
    && python -c "import ray, torch, training.train_quality; print(ray.__version__, torch.__version__)"
# `ray` (uid 1000, group `users`, gid 100) in Ray's images
USER 1000:100
WORKDIR /home/ray
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["ray", "health-check"]
ENTRYPOINT ["skyfleet"]
CMD ["train", "quality", "--help"]
