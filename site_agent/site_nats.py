"""A site's own nats-server: JetStream in the site's domain, a leaf node of the hub.

The agent publishes to its own server and gets local acknowledgements even when the link to
the hub is down; the hub's `FLEET` stream sources the site stream (`fleetbus.hub`), so what was
stored during an outage flows to the centre, once, when the link returns.
"""

import logging
import time
from pathlib import Path

from fleetbus.server import EmbeddedNats, LeafRemote, NatsServerConfig, NatsServerError, free_port
from protos.streams import site_domain

log = logging.getLogger(__name__)

DEFAULT_CLIENT_PORT = 4222
DEFAULT_MONITOR_PORT = 8222


def site_server_config(
    site_id: str,
    store_dir: Path,
    *,
    hub_leaf_url: str | None,
    host: str = "127.0.0.1",
    port: int = 0,
    monitor_port: int = 0,
) -> NatsServerConfig:
    """A site's own server: JetStream in the site's domain, a leaf node of the hub (if given).

    A port of 0 takes a free one now.
    """
    return NatsServerConfig(
        server_name=f"site-{site_id}",
        host=host,
        port=port or free_port(host),
        monitor_port=monitor_port or free_port(host),
        store_dir=store_dir,
        jetstream_domain=site_domain(site_id),
        leaf_remotes=[LeafRemote(url=hub_leaf_url)] if hub_leaf_url else [],
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
