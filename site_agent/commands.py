"""Commands from the centre (follow-up requests, cancels and re-prioritisations, model
releases): receive, validate, acknowledge, log; follow-up commands go to the site's executor
(`site_agent.executor`), which answers each.

The site reads its commands with a durable pull consumer on the hub's command stream,
filtered to its own subjects (`fleet.cmd.<site>.>`), through the hub's JetStream domain. The
hub keeps commands while the link is down and the consumer resumes where it stopped, so none
is lost to an outage. A command that does not validate is terminated (never redelivered) and
logged (the decoder also refuses a body whose site is not the subject's); a follow-up request
command is answered with the executor's `FollowUpStatus` (accepted, or refused with its reason:
deadline passed, duplicate id, target never observable; cancelled; an unknown request id); a
model release is logged, counted and handed to the model manager (`site_agent.model_manager`),
which installs it.
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
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpRequest,
    FollowUpStatus,
    MessageDecodeError,
    ModelRelease,
)
from protos.streams import COMMAND_STREAM, site_command_consumer
from protos.subjects import site_commands
from site_agent.executor import FollowUpExecutor

log = logging.getLogger(__name__)

Send = Callable[[FleetMessage], Awaitable[object]]
Count = Callable[[str, str], None]


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
        executor: FollowUpExecutor,
        on_release: Callable[[ModelRelease], object] | None = None,
    ) -> None:
        self.site_id = site_id
        self._js: JetStreamContext = nc.jetstream(domain=hub_js_domain, timeout=5.0)
        self._send = send
        self._count = count
        self._fetch_timeout_s = fetch_timeout_s
        self._executor = executor
        self._on_release = on_release

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
        if isinstance(command, FollowUpRequest | FollowUpCancel | FollowUpReprioritise):
            await self._followup(command)
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
            if self._on_release is not None:
                self._on_release(command)  # installed by the model manager, not here
        else:
            log.warning("unexpected command site=%s kind=%s", self.site_id, command.KIND)
            self._count(command.KIND, "unexpected")
        await msg.ack()

    async def _followup(
        self, command: FollowUpRequest | FollowUpCancel | FollowUpReprioritise
    ) -> None:
        """Hand a follow-up command to the executor and send its answer."""
        answer: FollowUpStatus
        if isinstance(command, FollowUpRequest):
            answer = await self._executor.submit(command)  # queued before we say yes
            detail = f"target={command.target.name} deadline={command.deadline.isoformat()}"
        elif isinstance(command, FollowUpCancel):
            answer = self._executor.cancel(command)
            detail = f"reason={command.reason!r}"
        else:
            answer = self._executor.reprioritise(command)
            detail = f"priority={command.priority}"
        log.info(
            "follow-up command site=%s kind=%s request_id=%s %s answer=%s reason=%s",
            self.site_id,
            command.KIND,
            command.request_id,
            detail,
            answer.state.value,
            answer.reason,
        )
        await self._send(answer)
        self._count(command.KIND, answer.state.value)
