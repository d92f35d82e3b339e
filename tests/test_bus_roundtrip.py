"""Every message kind travels through a real JetStream and comes back valid and once."""

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from fleetbus.client import MSG_ID_HEADER, decode, publish
from protos.streams import COMMAND_STREAM, FLEET_STREAM
from protos.subjects import subject_for
from tests.examples import every_message, frame_score


async def _read_all(js, stream: str, count: int):
    sub = await js.pull_subscribe(
        "", durable=None, stream=stream, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    messages = await sub.fetch(count, timeout=5)
    for msg in messages:
        await msg.ack()
    return messages


async def test_every_message_kind_is_stored_and_read_back_validated(fleet_bus):
    _, js = fleet_bus
    sent = every_message("la-silla")
    commands = 0
    for message in sent:
        ack = await publish(js, message)
        is_command = subject_for(message).startswith("fleet.cmd.")
        assert ack.stream == (COMMAND_STREAM if is_command else FLEET_STREAM)
        commands += is_command
    assert commands == 4  # a follow-up request, cancel and re-prioritise, a model release
    site_msgs = await _read_all(js, FLEET_STREAM, len(sent) - commands)
    command_msgs = await _read_all(js, COMMAND_STREAM, commands)
    received = [decode(m) for m in site_msgs + command_msgs]
    assert sorted(received, key=lambda m: m.message_id) == sorted(sent, key=lambda m: m.message_id)
    assert all(m.headers[MSG_ID_HEADER] == decode(m).message_id for m in site_msgs)


async def test_a_resent_message_is_stored_once(fleet_bus):
    _, js = fleet_bus
    first = await publish(js, frame_score())
    again = await publish(js, frame_score())
    assert not first.duplicate and again.duplicate
    info = await js.stream_info(FLEET_STREAM)
    assert info.state.messages == 1


async def test_a_message_for_an_unknown_subject_is_not_stored(fleet_bus):
    _, js = fleet_bus
    from nats.js.errors import NoStreamResponseError

    with pytest.raises(NoStreamResponseError):
        await js.publish("fleet.elsewhere.x", b"{}", timeout=2)
