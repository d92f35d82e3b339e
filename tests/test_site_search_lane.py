"""The site's transient search runs after the frame's score is out: on a real nats-server, a
frame's score comes first, then its candidates, then its `FrameSearched`; the site's own search
limits apply; a search cut off by a stop is done after the restart; the backlog on disk is
bounded, and every frame it pushes out still gets its record."""

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from fleetbus.client import connect
from imaging.fits_reader import read_frame
from imaging.scoring import score_frame
from imaging.transients.config import TransientSearchSettings
from imaging.transients.reference_store import ReferenceStore
from protos import (
    FleetMessage,
    FrameScore,
    FrameSearched,
    ModelRef,
    TransientCandidate,
    decode_subject_message,
)
from protos.subjects import SITE_ROOT
from site_agent.agent import SiteAgent
from site_agent.search_backlog import PendingSearch, SearchBacklog
from site_agent.settings import SiteAgentSettings
from site_agent.transient_stage import ReferenceKeeper, TransientSearcher
from tests.site_agents import site_settings, wait_until
from training.simulator import SimCamera, SimulatedFrame
from training.simulator.fitsio import write_frame
from training.simulator.pairs import SimulatedPair, simulate_pair


class AlwaysGood:
    """A quality model that grades every frame good, so the test decides what is searched."""

    ref = ModelRef(name="quality", version="always-good")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.tile(np.array([1.0, 0.0, 0.0], dtype=np.float32), (len(batch), 1))


@pytest.fixture(scope="module")
def field() -> SimulatedPair:
    return simulate_pair(
        SimCamera(width_px=512, height_px=512, pixel_scale_arcsec=0.8),
        n_transients=3,
        snr_range=(40.0, 60.0),
        rng=np.random.default_rng(1),
    )


class SiteTraffic:
    """Every message the agent publishes, in the order its site stream stored them."""

    def __init__(self) -> None:
        self.messages: list[FleetMessage] = []

    async def on_message(self, msg) -> None:
        self.messages.append(decode_subject_message(msg.subject, msg.data))

    def searched(self, file_name: str) -> FrameSearched | None:
        return next(
            (
                m
                for m in self.messages
                if isinstance(m, FrameSearched) and m.frame.file_name == file_name
            ),
            None,
        )


async def _run_agent(settings: SiteAgentSettings, traffic: SiteTraffic, until) -> None:
    """Run an agent (always-good model) and record its traffic until `until()` holds."""
    agent = SiteAgent(settings, predictor=AlwaysGood())
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.wait_for(agent.wait_ready(), 60)
    assert agent.nats_url is not None
    nc = await connect(agent.nats_url, name="test-traffic")
    # read from the stream's start: a search from the backlog may be published before this runs
    await nc.jetstream().subscribe(
        f"{SITE_ROOT}.{settings.site_id}.>", cb=traffic.on_message, ordered_consumer=True
    )
    try:
        assert await wait_until(until, timeout_s=120), "the agent did not get there in time"
    finally:
        await nc.close()
        stop.set()
        await asyncio.wait_for(task, 60)


async def _two_frames(
    settings: SiteAgentSettings,
    traffic: SiteTraffic,
    first: tuple[SimulatedFrame, str],
    second: tuple[SimulatedFrame, str],
    *,
    then_when: Callable[[], bool],
) -> None:
    """Run an agent: `first` lands in its folder, `second` once `then_when()` holds; until
    `second` has its `FrameSearched`."""

    async def night() -> None:
        write_frame(first[0], settings.watch_dir / first[1])
        await wait_until(then_when, timeout_s=60)
        write_frame(second[0], settings.watch_dir / second[1])

    writer = asyncio.create_task(night())
    await _run_agent(settings, traffic, lambda: traffic.searched(second[1]) is not None)
    await writer


async def _reference_then_new(settings: SiteAgentSettings, field: SimulatedPair) -> SiteTraffic:
    """Run an agent: the field's reference frame lands (`ref.fits`), then its new frame
    (`new.fits`) once the site has a reference; its traffic until `new.fits` is searched."""
    traffic = SiteTraffic()
    references = ReferenceStore(settings.reference_dir)
    await _two_frames(
        settings,
        traffic,
        (field.reference, "ref.fits"),
        (field.new, "new.fits"),
        then_when=lambda: bool(references.infos()),
    )
    return traffic


@pytest.mark.slow
async def test_candidates_and_search_outcome_follow_the_score(tmp_path, field):
    settings = site_settings(tmp_path, "north", None)
    traffic = await _reference_then_new(settings, field)

    first = traffic.searched("ref.fits")
    assert first is not None and not first.search.attempted
    assert "no reference" in (first.search.skipped_reason or "")

    about_new = [
        (i, m)
        for i, m in enumerate(traffic.messages)
        if (isinstance(m, FrameScore | FrameSearched) and m.frame.file_name == "new.fits")
        or (isinstance(m, TransientCandidate) and m.frame_file_name == "new.fits")
    ]
    kinds = [m.KIND for _, m in about_new]
    assert kinds[0] == "frame-score" and kinds[-1] == "frame-searched"
    assert set(kinds[1:-1]) == {"transient-candidate"}
    searched = about_new[-1][1]
    assert isinstance(searched, FrameSearched) and searched.search.attempted
    assert searched.score_message_id == about_new[0][1].message_id
    candidates = [m for _, m in about_new[1:-1]]
    assert searched.search.candidates == len(candidates)
    found = np.array([[c.x_px, c.y_px] for c in candidates])
    for transient in field.transients:
        assert np.hypot(*(found - [transient.x_px, transient.y_px]).T).min() < 2.0


@pytest.mark.slow
async def test_the_sites_own_search_limits_decide_what_it_publishes(tmp_path, field):
    # an operator allows one candidate a frame ([site.transients] max_published = 1)
    limits = TransientSearchSettings(max_published=1)
    settings = site_settings(tmp_path, "north", None, transients=limits)
    traffic = await _reference_then_new(settings, field)

    searched = traffic.searched("new.fits")
    assert searched is not None and searched.search.attempted
    (candidate,) = [
        m
        for m in traffic.messages
        if isinstance(m, TransientCandidate) and m.frame_file_name == "new.fits"
    ]
    assert searched.search.candidates == 1
    assert (
        min(np.hypot(candidate.x_px - t.x_px, candidate.y_px - t.y_px) for t in field.transients)
        < 2.0
    )


@pytest.mark.slow
async def test_a_search_left_in_the_backlog_is_done_after_a_restart(tmp_path, field):
    settings = site_settings(tmp_path, "north", None)
    # The agent scored this frame and stopped before searching it: its score is out, its
    # search is in the backlog on disk.
    path = write_frame(field.new, tmp_path / "archive" / "scored-before.fits")
    score = score_frame(read_frame(path), AlwaysGood(), site_id="north")
    with closing(SearchBacklog(settings.search_backlog_path, limit=4)) as backlog:
        backlog.add(PendingSearch(path=path, score=score))

    traffic = SiteTraffic()
    await _run_agent(settings, traffic, lambda: traffic.searched(path.name) is not None)

    searched = traffic.searched(path.name)
    assert searched is not None and searched.score_message_id == score.message_id
    assert "no reference" in (searched.search.skipped_reason or "")
    with closing(SearchBacklog(settings.search_backlog_path, limit=4)) as backlog:
        assert len(backlog) == 0


@pytest.mark.slow
async def test_a_search_that_fails_is_reported_and_the_next_frame_is_searched(
    tmp_path, field, monkeypatch
):
    settings = site_settings(tmp_path, "north", None)
    real_search = TransientSearcher.search

    def search(self, frame, label):
        if frame.identity.file_name == "poison.fits":
            raise MemoryError("no room for this frame's pixels")
        return real_search(self, frame, label)

    monkeypatch.setattr(TransientSearcher, "search", search)
    traffic = SiteTraffic()
    await _two_frames(
        settings,
        traffic,
        (field.new, "poison.fits"),
        (field.reference, "later.fits"),
        then_when=lambda: traffic.searched("poison.fits") is not None,
    )

    poisoned = traffic.searched("poison.fits")
    assert poisoned is not None and not poisoned.search.attempted
    assert "MemoryError: no room" in (poisoned.search.skipped_reason or "")
    later = traffic.searched("later.fits")  # against the reference the good poison.fits made
    assert later is not None and later.search.attempted


def _scores(tmp_path: Path, field: SimulatedPair, count: int) -> tuple[Path, list[FrameScore]]:
    path = write_frame(field.new, tmp_path / "f.fits")
    score = score_frame(read_frame(path), AlwaysGood(), site_id="north")
    ids = [f"frame-score:{i:032x}" for i in range(count)]
    return path, [score.model_copy(update={"message_id": id_}) for id_ in ids]


def test_the_backlog_is_bounded_and_survives_reopening(tmp_path: Path, field):
    path, scores = _scores(tmp_path, field, 4)
    db = tmp_path / "backlog.sqlite3"
    with closing(SearchBacklog(db, limit=3)) as backlog:
        marked = [backlog.add(PendingSearch(path=path, score=s)) for s in scores]
        assert marked == [0, 0, 0, 1]
        backlog.add(PendingSearch(path=path, score=scores[3]))  # again: no second entry
    with closing(SearchBacklog(db, limit=3)) as backlog:
        assert len(backlog) == 4  # the one pushed out is kept, marked, until reported
        oldest = backlog.oldest()
        assert oldest is not None and oldest.score.message_id == scores[0].message_id
        assert "backlog full" in (oldest.skipped_reason or "")
        backlog.done(oldest)
        assert len(backlog) == 3


def test_the_frame_being_searched_is_never_pushed_out_of_the_backlog(tmp_path: Path, field):
    path, scores = _scores(tmp_path, field, 3)
    with closing(SearchBacklog(tmp_path / "backlog.sqlite3", limit=1)) as backlog:
        backlog.add(PendingSearch(path=path, score=scores[0]))
        searching = scores[0].message_id
        for score in scores[1:]:
            backlog.add(PendingSearch(path=path, score=score), busy=searching)
        in_order = []
        while (oldest := backlog.oldest()) is not None:
            in_order.append(oldest)
            backlog.done(oldest)
    assert [p.score.message_id for p in in_order] == [s.message_id for s in scores]
    assert in_order[0].skipped_reason is None  # the one being searched keeps its search
    assert all("backlog full" in (p.skipped_reason or "") for p in in_order[1:])


@pytest.mark.slow
async def test_a_burst_beyond_the_backlog_leaves_a_record_for_every_frame(tmp_path, field):
    settings = site_settings(tmp_path, "north", None, search_backlog=1)
    references = ReferenceStore(settings.reference_dir)
    burst = [f"burst-{i}.fits" for i in range(4)]

    async def night() -> None:
        write_frame(field.reference, settings.watch_dir / "ref.fits")
        await wait_until(lambda: bool(references.infos()), timeout_s=60)
        for index, name in enumerate(burst):  # the same field, four exposures at once
            path = write_frame(field.new, tmp_path / name)
            fits.setval(path, "EXPNUM", value=index)
            path.rename(settings.watch_dir / name)

    traffic = SiteTraffic()
    writer = asyncio.create_task(night())
    await _run_agent(settings, traffic, lambda: all(traffic.searched(n) for n in burst))
    await writer

    records = {name: traffic.searched(name) for name in burst}
    first = records[burst[0]]
    assert first is not None and first.search.attempted  # searched, not pushed out meanwhile
    # four frames at once with room for one waiting: at least one is pushed out, and says so
    # (a frame that was searched may still come out unreported for a reason of the search's own,
    # e.g. residuals once the first burst frame has joined the field's reference meanwhile)
    reasons = [r.search.skipped_reason or "" for r in records.values() if r is not None]
    assert any("backlog full" in reason for reason in reasons), reasons


def test_a_frame_too_starless_for_a_reference_is_skipped_with_its_reason(tmp_path, caplog):
    # 256² of empty sky with a few hot pixels: no star to measure a PSF on. An expected case,
    # logged with its reason, not as a failure with a traceback.
    camera = SimCamera(width_px=256, height_px=256, pixel_scale_arcsec=0.8)
    empty = simulate_pair(camera, n_transients=0, snr_range=(5, 10), rng=np.random.default_rng(3))
    pixels = np.random.default_rng(4).normal(100.0, 5.0, (256, 256)).astype(np.float32)
    pixels[[20, 90, 200], [30, 150, 60]] = 5000.0
    path = write_frame(dataclasses.replace(empty.new, data=pixels), tmp_path / "starless.fits")
    searcher = TransientSearcher(
        "site-a", ReferenceStore(tmp_path / "refs"), model=None, settings=TransientSearchSettings()
    )
    with caplog.at_level(logging.INFO, logger="site_agent.transient_stage"):
        ReferenceKeeper(searcher)._offer_file(path)
    searcher.worker.stop()
    (record,) = [r for r in caplog.records if r.name == "site_agent.transient_stage"]
    assert record.levelno == logging.INFO
    assert "too few stars to measure its PSF" in record.getMessage()
    assert ReferenceStore(tmp_path / "refs").infos() == []
