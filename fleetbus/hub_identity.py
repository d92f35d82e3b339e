"""Keeping a running hub's identities current: a site added or revoked with
`skyfleet fleet credentials` / `skyfleet fleet revoke` takes effect within a second (the hub's
supervisor looks twice a second).

The keeper reads the credentials folder's `identities.json` (a few hundred bytes) at each
check. A site added, or any change that
only adds, is applied by a reload of the hub (no link drops). A site removed needs a restart of
the hub: nats-server keeps an established leaf link through a reload even when its user is gone
(`tests/test_fleet_identity.py`), so only a restart ends the revoked site's link; the other
sites' links drop for a moment and their data waits in their own streams (store and forward).
"""

import logging
from pathlib import Path

from fleetbus.identity import FleetIdentities
from fleetbus.server import EmbeddedNats

log = logging.getLogger(__name__)


class IdentityKeeper:
    """Applies changes of a credentials folder to the hub server that uses it; a fault check of
    the hub's `ProcessSupervisor`, which does the restart a revocation needs (and counts it)."""

    def __init__(self, server: EmbeddedNats, folder: Path) -> None:
        self.server = server
        self.folder = folder
        self._seen = FleetIdentities.load(folder)

    def __call__(self) -> str | None:
        """Reload the hub for added identities; the reason to restart it for revoked ones."""
        identities = FleetIdentities.load(self.folder)
        if identities == self._seen:
            return None
        before = {i.public_key for i in self._seen.identities}
        after = {i.public_key for i in identities.identities}
        self._seen = identities
        if before <= after:
            self.server.reload()
            log.info("hub identities reloaded added=%d", len(after - before))
            return None
        return f"{len(before - after)} identities revoked: only a restart ends their links"
