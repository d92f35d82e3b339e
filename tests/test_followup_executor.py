"""The site's follow-up executors on their own: answers to requests, cancels and new priorities,
the sky constraints that refuse a request, and the records that survive a restart."""

import socket
import time
from datetime import timedelta

import pytest
from pydantic import ValidationError

from protos import (
    FleetMessage,
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpState,
    SkyTarget,
    stable_message_id,
)
from protos.base import utc_now
from site_agent.alpaca_devices import DeviceError, TelescopeRig
from site_agent.alpaca_executor import AlpacaExecutor
from site_agent.executor import HandOffExecutor, RecordBook
from site_agent.followups import FollowUpQueue
from site_agent.settings import AlpacaDevices, SiteAgentSettings
from site_agent.sky_constraints import SiteSky
from tests.telescopes import (
    HORIZON_LIMIT_DEG,
    followup_request,
    night_site,
    overhead_target,
    site_at,
)

SITE = "obs"
NOBODY = AlpacaDevices(address="127.0.0.1:9")  # never contacted by these tests


def _executor(tmp_path, site, sent: list[FleetMessage]) -> AlpacaExecutor:
    async def send(message: FleetMessage) -> None:
        sent.append(message)

    return AlpacaExecutor(
        SITE,
        NOBODY,
        SiteSky(site, HORIZON_LIMIT_DEG),
        records_dir=tmp_path / "records",
        intake_dir=tmp_path / "incoming",
        pixel_scale_arcsec=0.6,
        send=send,
    )


def _cancel(request_id: str) -> FollowUpCancel:
    return FollowUpCancel(
        message_id=stable_message_id(FollowUpCancel.KIND, SITE, request_id),
        site_id=SITE,
        request_id=request_id,
        reason="operator",
    )


async def test_a_request_in_daylight_for_its_whole_window_is_refused_with_the_reason(tmp_path):
    noon = site_at(12.0)
    target = SkyTarget(name="day", ra_deg=10.0, dec_deg=-30.0)
    request = followup_request(
        SITE, "day-1", target, count=1, exptime_s=10, deadline=utc_now() + timedelta(hours=1)
    )
    answer = await _executor(tmp_path, noon, []).submit(request)
    assert answer.state is FollowUpState.FAILED
    assert "daylight" in (answer.reason or "") or "below the horizon" in (answer.reason or "")
    assert (answer.reason or "").startswith("not observable in its whole window")


async def test_a_target_up_at_night_is_accepted_and_a_cancel_keeps_it_from_ever_running(tmp_path):
    site = night_site()
    executor = _executor(tmp_path, site, [])
    request = followup_request(SITE, "n-1", overhead_target(site), count=2, exptime_s=5)
    assert (await executor.submit(request)).state is FollowUpState.ACCEPTED
    redelivered = await executor.submit(request)
    assert redelivered.state is FollowUpState.ACCEPTED  # the same answer
    cancelled = executor.cancel(_cancel("n-1"))
    assert (cancelled.state, cancelled.reason) == (FollowUpState.CANCELLED, "operator")
    assert executor._next() is None
    restarted = _executor(tmp_path, site, [])
    assert restarted.book.get("n-1").state is FollowUpState.CANCELLED
    assert restarted._next() is None


async def test_reprioritise_reorders_the_queue_and_unknown_ids_are_reported(tmp_path):
    site = night_site()
    executor = _executor(tmp_path, site, [])
    target = overhead_target(site)
    await executor.submit(followup_request(SITE, "a", target, count=1, exptime_s=5))
    await executor.submit(followup_request(SITE, "b", target, count=1, exptime_s=5))
    assert executor._next().request_id == "a"  # same priority: the earlier deadline
    change = FollowUpReprioritise(
        message_id=stable_message_id(FollowUpReprioritise.KIND, SITE, "b", "1"),
        site_id=SITE,
        request_id="b",
        priority=1,
    )
    assert executor.reprioritise(change).state is FollowUpState.ACCEPTED
    assert executor._next().request_id == "b"
    unknown = executor.cancel(_cancel("zzz"))
    assert (unknown.state, unknown.reason) == (FollowUpState.FAILED, "unknown request id")


async def test_after_a_restart_a_request_past_its_deadline_fails_and_one_under_way_resumes(
    tmp_path,
):
    site = night_site()
    target = overhead_target(site)
    executor = _executor(tmp_path, site, [])
    await executor.submit(followup_request(SITE, "old", target, count=3, exptime_s=5))
    await executor.submit(followup_request(SITE, "live", target, count=3, exptime_s=5))
    book = RecordBook(tmp_path / "records")
    for rid, deadline in (("old", utc_now() - timedelta(minutes=1)), ("live", None)):
        record = book.get(rid)
        record.state, record.exposures_done = FollowUpState.OBSERVING, 1
        if deadline is not None:
            record.request = record.request.model_copy(update={"deadline": deadline})
        book.save(record)
    sent: list[FleetMessage] = []
    restarted = _executor(tmp_path, site, sent)
    await restarted._resume()
    by_id = {m.request_id: m for m in sent}
    assert by_id["old"].state is FollowUpState.FAILED
    assert by_id["old"].reason == "deadline passed while the agent was down"
    assert (by_id["live"].state, by_id["live"].exposures_done) == (FollowUpState.OBSERVING, 1)
    assert restarted._next().request_id == "live"


async def test_the_hand_off_queue_takes_cancels_and_new_priorities(tmp_path):
    queue = FollowUpQueue(tmp_path / "followups")
    executor = HandOffExecutor(SITE, queue)
    target = SkyTarget(name="t", ra_deg=10.0, dec_deg=0.0)
    first = followup_request(SITE, "h-1", target, count=1, exptime_s=5)
    assert (await executor.submit(first)).state is FollowUpState.ACCEPTED
    again = followup_request(SITE, "h-1", target, count=1, exptime_s=5, variant="again")
    assert "duplicate request id refused" in ((await executor.submit(again)).reason or "")
    change = FollowUpReprioritise(
        message_id=stable_message_id(FollowUpReprioritise.KIND, SITE, "h-1", "1"),
        site_id=SITE,
        request_id="h-1",
        priority=1,
    )
    executor.reprioritise(change)
    assert queue.get("h-1").priority == 1
    assert executor.cancel(_cancel("h-1")).state is FollowUpState.CANCELLED
    assert queue.pending() == []
    assert executor.cancel(_cancel("h-1")).reason == "unknown request id"


def test_alpaca_devices_without_the_site_location_are_refused_at_start(tmp_path):
    with pytest.raises(ValidationError, match="alpaca devices need location"):
        SiteAgentSettings(work_dir=tmp_path, alpaca=NOBODY)


def test_a_device_that_never_answers_is_a_device_error_naming_it(tmp_path):
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        rig = TelescopeRig(AlpacaDevices(address=address))
        began = time.monotonic()
        with pytest.raises(DeviceError, match=r"^safety monitor: .*[Tt]imed? ?out"):
            rig.is_safe()
    assert time.monotonic() - began < 15.0
