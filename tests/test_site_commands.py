"""Commands reach the site through the leaf link: valid ones are acknowledged and answered,
invalid ones are refused without stopping the ones after them."""

import asyncio
from datetime import timedelta

from fleetbus.client import connect, publish
from fleetbus.tasks import cancel_and_wait
from protos import FollowUpRequest, FollowUpState, FollowUpStatus, ModelRelease, stable_message_id
from protos.base import utc_now
from protos.streams import HUB_JS_DOMAIN
from site_agent.commands import CommandReceiver
from site_agent.executor import HandOffExecutor
from site_agent.followups import FollowUpQueue
from site_agent.publisher import SitePublisher
from site_agent.telemetry import AgentMetrics
from tests.examples import every_message
from tests.site_topology import (
    hub_sourcing,
    running_hub,
    running_site_server,
    stored_messages,
    wait_for_stored,
)


def _example(kind: type, site_id: str = "east"):
    return next(m for m in every_message(site_id) if isinstance(m, kind))


def _request(site_id: str, request_id: str, deadline_in_h: float) -> FollowUpRequest:
    return _example(FollowUpRequest, site_id).model_copy(
        update={
            "site_id": site_id,
            "request_id": request_id,
            "message_id": stable_message_id(FollowUpRequest.KIND, site_id, request_id),
            "not_before": None,
            "deadline": utc_now() + timedelta(hours=deadline_in_h),
        }
    )


async def test_follow_up_requests_are_answered_and_bad_commands_refused(tmp_path):
    metrics = AgentMetrics("east")
    with (
        running_hub(tmp_path / "hub") as hub,
        running_site_server(tmp_path / "east", "east", hub) as site,
    ):
        async with hub_sourcing(hub, ["east"]) as hub_js:
            nc = await connect(site.url, name="test-site")
            publisher = SitePublisher(nc, "east", hub_js_domain=HUB_JS_DOMAIN)
            await publisher.prepare()
            receiver = CommandReceiver(
                nc,
                "east",
                send=publisher.send,
                count=metrics.command,
                hub_js_domain=HUB_JS_DOMAIN,
                fetch_timeout_s=0.5,
                executor=HandOffExecutor("east", FollowUpQueue(tmp_path / "followups")),
            )
            await hub_js.publish("fleet.cmd.east.followup.request", b'{"not": "a request"}')
            await publish(hub_js, _request("east", "grb-1", deadline_in_h=2))
            await publish(hub_js, _request("east", "late-1", deadline_in_h=-1))
            await publish(hub_js, _example(ModelRelease))
            misaddressed = _request("west", "elsewhere", deadline_in_h=2)
            await hub_js.publish(
                "fleet.cmd.east.followup.request", misaddressed.model_dump_json().encode()
            )
            consuming = asyncio.create_task(receiver.run())
            try:
                assert await wait_for_stored(hub_js, 2, timeout_s=20) == 2
                await asyncio.sleep(0.5)  # and nothing else comes
            finally:
                await cancel_and_wait([consuming], timeout_s=10)
            await nc.close()
            answers = {
                m.request_id: m
                for m in await stored_messages(hub_js)
                if isinstance(m, FollowUpStatus)
            }
    assert answers["grb-1"].state is FollowUpState.ACCEPTED
    assert answers["late-1"].state is FollowUpState.FAILED
    assert "deadline" in (answers["late-1"].reason or "")
    assert set(answers) == {"grb-1", "late-1"}

    def count(kind, outcome):
        labels = {"site": "east", "kind": kind, "outcome": outcome}
        return metrics.registry.get_sample_value("skyfleet_site_commands_total", labels)

    assert count("unknown", "invalid") == 2  # not a request; addressed to another site
    assert count("model-release", "received") == 1
