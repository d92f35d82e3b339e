# syntax=docker/dockerfile:1.7
# skyfleet-triton: NVIDIA's Triton Inference Server with what its python-backend `model.py`
# imports (torch, the pinned CUDA build; NGC's image has none) and the quality model's
# repository, checked against its manifest at build time.
#
#   docker build -f docker/triton.Dockerfile -t REGISTRY/skyfleet-triton:TAG .
#
# The baked repository (/opt/skyfleet/model-repository: the shipped model, GPU instance config
# in quality/configs/gpu.pbtxt) is what the server loads by default; in Kubernetes it seeds the
# model-repository volume that retraining exports into (k8s/base/triton.yaml). Without a GPU:
#   docker run ... skyfleet-triton --model-repository=/opt/skyfleet/model-repository
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:25.06-py3

FROM ${PYTHON_IMAGE} AS repository
WORKDIR /build
COPY imaging/models/quality/ /repository/quality/
COPY imaging/triton_python_model.py docker/triton/gpu.pbtxt docker/triton/check_repository.py ./
RUN python check_repository.py /repository triton_python_model.py gpu.pbtxt

FROM ${TRITON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1
COPY docker/constraints.txt /tmp/constraints.txt
# The python backend's stub runs the image's python3: torch goes there.
RUN python3 -m pip install --constraint /tmp/constraints.txt "torch==2.13.0" \
    && python3 -c "import torch; print(torch.__version__)"
RUN useradd --system --uid 10001 --user-group --no-create-home skyfleet
COPY --from=repository --chown=10001:10001 /repository /opt/skyfleet/model-repository
USER 10001:10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4)"]
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/opt/skyfleet/model-repository", "--model-control-mode=poll", "--repository-poll-secs=30", "--model-config-name=gpu", "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]
