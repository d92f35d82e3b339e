"""`skyfleet demo`: a whole fleet on this machine with an embedded NATS server."""

import asyncio
import tempfile
from pathlib import Path

from rich.console import Console

from fleetbus.client import connect
from fleetbus.server import EmbeddedNats, NatsServerConfig
from fleetbus.streams import ensure_streams
from protos.streams import central_streams

console = Console()


async def _create_streams(url: str) -> list[str]:
    nc = await connect(url, name="skyfleet-demo")
    try:
        return await ensure_streams(nc.jetstream(), central_streams())
    finally:
        await nc.close()


def demo() -> None:
    """Run the fleet demo: embedded NATS, simulated sites, coordinator (as far as built)."""
    with tempfile.TemporaryDirectory(prefix="skyfleet-demo-") as work:
        config = NatsServerConfig.on_free_ports("demo-hub", Path(work) / "nats")
        with EmbeddedNats(config) as server:
            streams = asyncio.run(_create_streams(server.url))
            console.print(f"Embedded NATS with JetStream at {server.url}: streams {streams}")
            console.print(
                "[yellow]Not built yet:[/] simulated sites and their agents (issue #4), "
                "transient detection (#5), coordinator and ops console (#6)."
            )
    console.print("Demo finished; the embedded server is stopped.")
