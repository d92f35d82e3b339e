"""TLS on the hub's client and leaf ports: with a certificate the hub speaks only TLS, sites'
links and the coordinator verify it against the fleet's CA, and data flows as before; a client
that does not trust the fleet's CA does not connect."""

import asyncio
import ssl
import subprocess
from pathlib import Path

import nats
import pytest

from fleetbus.client import connect
from fleetbus.hub import ensure_hub_streams, hub_server_config, keep_sources_flowing
from fleetbus.identity import issue_credentials, read_seed
from fleetbus.server import EmbeddedNats, TlsFiles
from fleetbus.streams import ensure_streams
from fleetbus.tasks import cancel_and_wait
from protos.streams import FLEET_STREAM, site_stream
from site_agent.site_nats import site_server_config
from tests.site_topology import leaf_links, wait_for


def make_certificates(folder: Path) -> tuple[Path, TlsFiles]:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    folder.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fleet-ca",
        "-keyout", "ca.key", "-out", "ca.pem",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=hub",
        "-keyout", "hub.key", "-out", "hub.csr",
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", "hub.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "hub.pem",
    )  # fmt: skip
    return folder / "ca.pem", TlsFiles(cert_file=folder / "hub.pem", key_file=folder / "hub.key")


async def test_a_hub_with_tls_carries_the_fleet_and_refuses_plain_clients(tmp_path):
    ca, hub_tls = make_certificates(tmp_path / "certs")
    keys = tmp_path / "keys"
    issue_credentials(keys, ["a"])
    hub_config = hub_server_config(
        tmp_path / "hub", authorization_file=keys / "hub-auth.conf", tls=hub_tls
    )
    with EmbeddedNats(hub_config) as hub:
        site_config = site_server_config(
            "a",
            tmp_path / "a",
            hub_leaf_url=hub.config.leaf_url,
            leaf_nkey_seed=read_seed(keys / "site-a.nk"),
            hub_ca_file=ca,
        )
        with EmbeddedNats(site_config) as site:
            await wait_for(lambda: leaf_links(hub) == ["site-a"])
            coordinator_seed = read_seed(keys / "coordinator.nk")
            nc = await connect(hub.url, name="test", nkey_seed=coordinator_seed, tls_ca_file=ca)
            keeper = asyncio.create_task(keep_sources_flowing(nc))
            try:
                js = nc.jetstream()
                await ensure_hub_streams(js, ["a"])
                local = await nats.connect(site.url)
                site_js = local.jetstream()
                await ensure_streams(site_js, [site_stream("a")])
                for i in range(3):
                    await site_js.publish(
                        "fleet.site.a.frame.score", b"{}", headers={"Nats-Msg-Id": f"a-{i}"}
                    )
                await local.close()
                for _ in range(75):
                    if (await js.stream_info(FLEET_STREAM)).state.messages == 3:
                        break
                    await asyncio.sleep(0.2)
                assert (await js.stream_info(FLEET_STREAM)).state.messages == 3
            finally:
                await cancel_and_wait([keeper], timeout_s=10)
                await nc.close()
        # a client without the fleet's CA does not trust the hub (nats-py upgrades to TLS)
        with pytest.raises(ssl.SSLCertVerificationError):
            await nats.connect(
                hub.url,
                nkeys_seed_str=coordinator_seed,
                allow_reconnect=False,
                connect_timeout=2,
            )
