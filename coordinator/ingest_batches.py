"""What an ingest lane holds between fetching a batch and acknowledging it: the consumer it
fetches with, the batch with its decoded and held-back messages, and the in-progress
acknowledgements that keep a waiting batch from being delivered again."""

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import NamedTuple

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from protos import FleetMessage

IN_PROGRESS_SHARE = 0.5
"""A batch not yet acknowledged after this share of the ack wait says it is in progress (and
again each time), well before the server would deliver it again."""


def consumer_config(
    durable: str, filter_subject: str, batch: int, ack_wait_s: float, start_seq: int | None = None
) -> ConsumerConfig:
    """A durable pull consumer of the messages on `filter_subject` (one kind, of one site or of
    every site), from the stream's start or from `start_seq`; one explicit ack acknowledges a
    stored message (`AckPolicy.EXPLICIT`)."""
    return ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL if start_seq is None else DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        ack_wait=ack_wait_s,
        max_ack_pending=max(4 * batch, 1000),
    )


class Decoded(NamedTuple):
    """A message that validated, with its delivery (to acknowledge or dead-letter it)."""

    msg: Msg
    message: FleetMessage


async def keep_in_progress(messages: list[Msg], ack_wait_s: float) -> None:
    """Tell the server, every half ack wait until cancelled, that `messages` are being worked
    on (JetStream's in-progress acknowledgement): a batch waiting for the one store writer behind
    other sites' lanes, or for a database being retried, is then not delivered again meanwhile."""
    while True:
        await asyncio.sleep(IN_PROGRESS_SHARE * ack_wait_s)
        for msg in messages:
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()


@dataclass
class Batch:
    """One fetched batch on its way to the store: the messages that validated, and those held
    back (their dead letter could not be published: they are not acknowledged, and come again
    after the ack wait)."""

    fetched: list[Msg]
    decoded: list[Decoded] = field(default_factory=list)
    held_back: list[Msg] = field(default_factory=list)

    def to_acknowledge(self) -> list[Msg]:
        """Every message stored or dead-lettered: all but those held back."""
        held = {id(msg) for msg in self.held_back}
        return [msg for msg in self.fetched if id(msg) not in held]
