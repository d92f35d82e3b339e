"""Faults of the bus: the hub nats-server stopped or killed under load, a site's leaf server
killed, the leaf link cut (the site keeps writing), and duplicate and out-of-order delivery.

Each returns when its fault has ended (the server started again, the link restored, the
republishing done): recovery is counted from then.
"""

import asyncio
import os
import signal

from nats.js import JetStreamContext

from bench.chaos.counter import stored_file_names
from bench.chaos.fleet import COORDINATOR_CONSUMERS
from bench.chaos.strike import Strike, burst_reaching_store
from fleetbus.client import connect
from protos import FrameRejected, FrameScore, decode_subject_message
from protos.streams import FLEET_STREAM, site_stream_name


async def hub_stopped(strike: Strike) -> None:
    """The hub nats-server stopped (SIGTERM) for `fault_s`, then started again."""
    hub = strike.fleet.hub
    await asyncio.to_thread(hub.stop)
    await asyncio.sleep(strike.knobs.fault_s)
    await asyncio.to_thread(hub.start)


async def hub_killed(strike: Strike) -> None:
    """The hub nats-server killed -9 while a burst of frames flows to the centre, started
    again after `fault_s`."""
    burst = strike.camera.write(strike.knobs.burst)
    stored = await burst_reaching_store(strike, burst)
    await asyncio.to_thread(strike.fleet.hub.kill)
    strike.note(f"killed with {stored} of a {len(burst)}-frame burst stored")
    await asyncio.sleep(strike.knobs.fault_s)
    await asyncio.to_thread(strike.fleet.hub.start)


async def site_server_killed(strike: Strike) -> None:
    """The site's leaf nats-server killed -9; the agent starts it again by itself."""
    os.kill(strike.fleet.site_server_pid(), signal.SIGKILL)
    await asyncio.sleep(3.0)
    log = strike.fleet.agent_log.read_text(errors="replace")
    restarted = "restarting component=nats-server" in log
    strike.note(f"the agent restarted its nats-server: {'yes' if restarted else 'no'}")


async def link_cut(strike: Strike) -> None:
    """The TCP link between the site's leaf server and the hub reset and refused for
    `fault_s`; the camera and the site go on."""
    url = strike.fleet.database_url
    before = len(stored_file_names(url))
    written = len(strike.camera.written)
    await asyncio.to_thread(strike.fleet.proxy.sever)
    await asyncio.sleep(strike.knobs.fault_s)
    during = len(stored_file_names(url)) - before
    site_held = await _site_frame_messages(strike)
    strike.fleet.proxy.restore()
    strike.note(
        f"{len(strike.camera.written) - written} frames written during the cut, "
        f"{during} reached the store during it, the site's stream held {len(site_held)} frame "
        "messages at the end of it"
    )


async def _site_frame_messages(strike: Strike) -> list[tuple[str, bytes, str]]:
    """(subject, data, message id) of the frame messages in the site's own stream, read on the
    site's computer (its leaf server listens on 127.0.0.1 without a key)."""
    nc = await connect(strike.fleet.site_url, name="chaos-site-reader")
    try:
        js = nc.jetstream()
        stream = site_stream_name(strike.fleet.settings.site_id)
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await js.get_msg(stream, seq)
            message = decode_subject_message(raw.subject, raw.data)
            if isinstance(message, FrameScore | FrameRejected):
                found.append((raw.subject, raw.data, message.message_id))
        return found
    finally:
        await nc.close()


async def duplicates_and_out_of_order(strike: Strike) -> None:
    """Every frame message delivered so far published again at the site in reverse order, with
    its `Nats-Msg-Id` and again without one (what a resend after the 1-day duplicate window
    looks like: it reaches `FLEET` and the coordinator's consumer); a burst of new frames
    written in a shuffled order; then the coordinator's frame consumers rewound (deleted while it
    is stopped), so it is handed all of `FLEET` once more. The restart is how the consumers are
    rewound, not the fault: the fault ends when the coordinator is up again."""
    await asyncio.sleep(strike.knobs.fault_s / 2)  # more to resend
    delivered = list(reversed(await _site_frame_messages(strike)))
    nc = await connect(strike.fleet.site_url, name="chaos-resend")
    try:
        js = nc.jetstream()
        deduplicated = 0
        for subject, data, message_id in delivered:
            ack = await js.publish(subject, data, headers={"Nats-Msg-Id": message_id})
            deduplicated += bool(ack.duplicate)
        for subject, data, _ in delivered:
            await js.publish(subject, data)
    finally:
        await nc.close()
    strike.resent += len(delivered)
    burst = strike.camera.write(strike.knobs.burst, shuffled=True)
    await strike.fleet.stop_coordinator()
    await _delete_coordinator_consumers(strike)
    up_s = await (await strike.fleet.start_coordinator(wait=False))
    strike.note(
        f"{len(delivered)} frame messages resent in reverse order with their ids "
        f"({deduplicated} refused as duplicates by the site's stream) and {len(delivered)} "
        f"without; {len(burst)} new frames written shuffled; the coordinator's consumers "
        f"rewound to the first message of FLEET (the fault ends when it is up again, {up_s:.1f} s "
        "after its start)"
    )


async def _delete_coordinator_consumers(strike: Strike) -> None:
    nc = await connect(
        strike.fleet.hub.url, name="chaos-rewind", nkey_seed=strike.fleet.seed("coordinator")
    )
    try:
        js: JetStreamContext = nc.jetstream()
        for consumer in COORDINATOR_CONSUMERS:
            await js.delete_consumer(FLEET_STREAM, consumer)
    finally:
        await nc.close()
