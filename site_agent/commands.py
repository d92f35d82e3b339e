"""Commands from the centre (follow-up requests, model releases): receive, validate,
acknowledge, log; accepted follow-ups go to the telescope's queue (`site_agent.followups`).

The site reads its commands with a durable pull consumer on the hub's command stream,
filtered to its own subjects (`fleet.cmd.<site>.>`), through the hub's JetStream domain. The
hub keeps commands while the link is down and the consumer resumes where it stopped, so none
is lost to an outage. A command that does not validate is terminated (never redelivered) and
logged (the decoder also refuses a body whose site is not the subject's); a follow-up request
is answered with a `FollowUpStatus` (accepted, or failed when its deadline has passed); a
model release is logged and counted (installing it is the model manager's job).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fleetbus.client import decode
from protos import (
    FleetMessage,
    FollowUpRequest,
    FollowUpState,
    FollowUpStatus,
    MessageDecodeError,
    ModelRelease,
    stable_message_id,
)
from protos.base import utc_now
from protos.streams import COMMAND_STREAM, site_command_consumer
from protos.subjects import site_commands

log = logging.getLogger(__name__)

Send = Callable[[FleetMessage], Awaitable[object]]
Count = Callable[[str, str], None]


def followup_answer(site_id: str, request: FollowUpRequest) -> FollowUpStatus:
    """The site's reply to a valid follow-up request."""
    if request.deadline <= utc_now():
        state, reason = FollowUpState.FAILED, "deadline already passed"
    else:
        state, reason = FollowUpState.ACCEPTED, None
    return FollowUpStatus(
        message_id=stable_message_id(FollowUpStatus.KIND, site_id, request.request_id, state),
        site_id=site_id,
        request_id=request.request_id,
        state=state,
        reason=reason,
    )


class CommandReceiver:
    """Reads, checks and acknowledges one site's commands until cancelled."""

    def __init__(
        self,
        nc: Client,
        site_id: str,
        *,
        send: Send,
        count: Count,
        hub_js_domain: str | None,
        fetch_timeout_s: float = 5.0,
        on_accepted: Callable[[FollowUpRequest], object] | None = None,
    ) -> None:
        self.site_id = site_id
        self._js: JetStreamContext = nc.jetstream(domain=hub_js_domain, timeout=5.0)
        self._send = send
        self._count = count
        self._fetch_timeout_s = fetch_timeout_s
        self._on_accepted = on_accepted

    async def run(self) -> None:
        """Consume commands for ever (the hub being unreachable only delays them)."""
        subscription: JetStreamContext.PullSubscription | None = None
        reported_down = False  # log changes, not every retry of a months-long outage
        while True:
            try:
                if subscription is None:
                    subscription = await self._subscribe()
                    log.info("reading commands site=%s", self.site_id)
                    reported_down = False
                batch = await subscription.fetch(16, timeout=self._fetch_timeout_s)
            except TimeoutError:
                continue
            except NatsError as exc:
                if not reported_down:
                    log.info("commands unavailable site=%s error=%r", self.site_id, exc)
                    reported_down = True
                if subscription is not None:
                    with contextlib.suppress(NatsError, TimeoutError):
                        await subscription.unsubscribe()
                subscription = None
                await asyncio.sleep(self._fetch_timeout_s)
                continue
            for msg in batch:
                await self.handle(msg)

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        return await self._js.pull_subscribe(
            site_commands(self.site_id),
            durable=site_command_consumer(self.site_id),
            stream=COMMAND_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30.0,
            ),
        )

    async def handle(self, msg: Msg) -> None:
        """Validate one command, act on it and acknowledge it."""
        try:
            command = decode(msg)
        except MessageDecodeError as exc:
            log.warning(
                "invalid command site=%s subject=%s error=%s", self.site_id, msg.subject, exc
            )
            self._count("unknown", "invalid")
            await msg.term()
            return
        if isinstance(command, FollowUpRequest):
            answer = followup_answer(self.site_id, command)
            log.info(
                "follow-up request site=%s request_id=%s target=%s deadline=%s answer=%s",
                self.site_id,
                command.request_id,
                command.target.name,
                command.deadline.isoformat(),
                answer.state.value,
            )
            if answer.state is FollowUpState.ACCEPTED and self._on_accepted is not None:
                self._on_accepted(command)  # queued for the telescope before we say yes
            await self._send(answer)
            self._count(command.KIND, answer.state.value)
        elif isinstance(command, ModelRelease):
            log.info(
                "model release site=%s model=%s version=%s sha256=%s uri=%s",
                self.site_id,
                command.model_name,
                command.version,
                command.sha256,
                command.repository_uri,
            )
            self._count(command.KIND, "received")
        else:
            log.warning("unexpected command site=%s kind=%s", self.site_id, command.KIND)
            self._count(command.KIND, "unexpected")
        await msg.ack()
