"""A site's own nats-server: JetStream in the site's domain, a leaf node of the hub; and what
makes the agent restart it when its store has failed.

The agent publishes to its own server and gets local acknowledgements even when the link to
the hub is down; the hub's `FLEET` stream sources the site stream (`fleetbus.hub`), so what was
stored during an outage flows to the centre, once, when the link returns.

JetStream's file store limit is set (`SITE_STORE_LIMIT_BYTES`) rather than left to
nats-server, whose default (75 % of the disk's free space at start) refused the 2 GiB site
stream on a disk with less than ~2.7 GB free, so such a site could not start at all. With the
limit set, a small disk only means a shorter outage can be buffered; when the disk does fill,
publishing waits (frames wait in the folder, nothing is acknowledged and lost) and
`StoreFaultCheck` has the server restarted once there is room again.
"""

import logging
import shutil
import time
from pathlib import Path

from pydantic import SecretStr

from fleetbus.server import EmbeddedNats, LeafRemote, NatsServerConfig, NatsServerError, free_port
from protos.streams import SITE_STREAM_MAX_BYTES, site_domain

log = logging.getLogger(__name__)

DEFAULT_CLIENT_PORT = 4222
DEFAULT_MONITOR_PORT = 8222
SITE_STORE_LIMIT_BYTES = SITE_STREAM_MAX_BYTES + 1024**3
"""The site stream's 2 GiB and 1 GiB for the site's other JetStream data (consumers, buckets)."""
STORE_FAULT_MEMORY_S = 60.0
"""A store fault logged within this long is still a reason to restart once there is room."""
FULL_DISK_REPORT_EVERY_S = 60.0
"""While the disk stays full, the agent says so this often (not at every check)."""


def site_server_config(
    site_id: str,
    store_dir: Path,
    *,
    hub_leaf_url: str | None,
    host: str = "127.0.0.1",
    port: int = 0,
    monitor_port: int = 0,
    leaf_nkey_seed: str | None = None,
    hub_ca_file: Path | None = None,
) -> NatsServerConfig:
    """A site's own server: JetStream in the site's domain, a leaf node of the hub (if given),
    the link authenticated with the site's nkey seed where the hub requires identities.

    A port of 0 takes a free one now.
    """
    seed = SecretStr(leaf_nkey_seed) if leaf_nkey_seed is not None else None
    remote = LeafRemote(url=hub_leaf_url or "", nkey_seed=seed, tls_ca_file=hub_ca_file)
    return NatsServerConfig(
        server_name=f"site-{site_id}",
        host=host,
        port=port or free_port(host),
        monitor_port=monitor_port or free_port(host),
        store_dir=store_dir,
        jetstream_domain=site_domain(site_id),
        leaf_remotes=[remote] if hub_leaf_url else [],
        max_file_store_bytes=SITE_STORE_LIMIT_BYTES,
    )


def start_embedded_server(config: NatsServerConfig, *, timeout_s: float = 20.0) -> EmbeddedNats:
    """Start a site's server, waiting while a previous one (killed with its agent) still holds
    the store directory."""
    deadline = time.monotonic() + timeout_s
    while True:
        server = EmbeddedNats(config)
        try:
            return server.start()
        except NatsServerError:
            if time.monotonic() >= deadline:
                raise
            log.warning("site nats-server did not start, retrying name=%s", config.server_name)
            time.sleep(0.5)


class StoreFaultCheck:
    """Says when the site's server must be restarted because its store failed: it logged a
    failed write (`EmbeddedNats.store_faults`) in the last `STORE_FAULT_MEMORY_S` and its disk
    has at least `min_free_bytes` free again. While the disk is still full it logs that, once a
    minute, and asks for nothing: a restart would only fail again."""

    def __init__(self, server: EmbeddedNats, *, min_free_bytes: int) -> None:
        self.server = server
        self.min_free_bytes = min_free_bytes
        self.disk_full = False
        """Whether the last look found a failed store on a full disk (the site is degraded)."""
        self._fault: str | None = None
        self._fault_at = 0.0
        self._reported_at = 0.0

    def __call__(self) -> str | None:
        now = time.monotonic()
        faults = self.server.store_faults()
        if faults:
            self._fault, self._fault_at = faults[-1], now
        if self._fault is None or now - self._fault_at > STORE_FAULT_MEMORY_S:
            self._fault, self.disk_full = None, False
            return None
        free = shutil.disk_usage(self.server.config.store_dir).free
        self.disk_full = free < self.min_free_bytes
        if self.disk_full:
            if now - self._reported_at >= FULL_DISK_REPORT_EVERY_S:
                self._reported_at = now
                log.error(
                    "site store full: frames wait in the folder until space is freed "
                    "store=%s free_mb=%.0f needed_mb=%.0f",
                    self.server.config.store_dir,
                    free / 1e6,
                    self.min_free_bytes / 1e6,
                )
            return None
        logged = self._fault.split("] ", 1)[-1]  # without the pid, time and level
        self._fault = None
        return f"JetStream store failed ({logged}); {free / 1e6:.0f} MB free now"
