"""The transient stages of the site's frame path: search each scored frame against its field's
reference, and grow the references from the site's good frames.

`SearchTransients` runs after scoring: it puts the search outcome on the `FrameScore` (searched
or not, how many candidates, why not) and the candidates beside it, so that they are published
with the score. `OfferReference` runs after the frame is settled and hands a good frame to the
`ReferenceKeeper`, which in the background starts the field's reference or replaces a shallower
member (building a reference from a 4096² frame takes seconds and a few hundred MB: never on
the frame path). Searching comes first, so a frame is never searched against itself.
"""

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from protos import FrameScore, QualityLabel
from site_agent.fits_reader import Frame, FrameError, read_frame
from site_agent.pipeline import FrameWork
from site_agent.transients.config import TransientSearchSettings
from site_agent.transients.realbogus import RealBogusModel
from site_agent.transients.references import ReferenceStore
from site_agent.transients.search import SearchOutcome, search_transients

log = logging.getLogger(__name__)


@dataclass
class TransientSearcher:
    """What a site searches its frames with: its references, real/bogus model and limits.

    `pixels` is held while a frame is searched or a reference built, so that the two large
    pixel jobs never run at once (memory stays that of one of them)."""

    site_id: str
    references: ReferenceStore
    model: RealBogusModel
    settings: TransientSearchSettings
    pixels: threading.Lock = field(default_factory=threading.Lock)

    def search(self, frame: Frame, label: QualityLabel) -> SearchOutcome:
        """Search one frame against its field's reference."""
        with self.pixels:
            return search_transients(
                frame,
                self.references,
                site_id=self.site_id,
                model=self.model,
                settings=self.settings,
                label=label,
            )

    @classmethod
    def load(cls, site_id: str, reference_dir: Path, model_dir: Path) -> Self:
        """The site's reference store and its verified real/bogus model."""
        model = RealBogusModel.load(model_dir)
        return cls(site_id, ReferenceStore(reference_dir), model, TransientSearchSettings())


@dataclass
class SearchTransients:
    """Search a scored good or medium frame; the outcome goes on its `FrameScore`."""

    searcher: TransientSearcher

    async def run(self, work: FrameWork) -> None:
        score, frame = work.message, work.frame
        if not isinstance(score, FrameScore) or frame is None:
            return
        outcome = await asyncio.to_thread(self.searcher.search, frame, score.label)
        work.message = score.model_copy(update={"transients": outcome.search})
        work.related.extend(outcome.candidates)


class ReferenceKeeper:
    """Offers good frames to their field's reference in the background, one at a time, off the
    frame path: a frame settled while another is being offered waits in a one-place slot,
    replacing an older one (the newest good frame is the likeliest to be useful). The frame is
    read again from its file, so no pixels wait in memory."""

    def __init__(self, searcher: TransientSearcher) -> None:
        self.searcher = searcher
        self._pending: Path | None = None
        self._wake = asyncio.Event()

    def offer(self, path: Path) -> None:
        """Queue a good frame's file for its field's reference."""
        if self._pending is not None:
            log.debug("reference offer replaced file=%s by=%s", self._pending.name, path.name)
        self._pending = path
        self._wake.set()

    async def run(self) -> None:
        """Offer queued frames until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            path, self._pending = self._pending, None
            if path is not None:
                await asyncio.to_thread(self._offer_file, path)

    def _offer_file(self, path: Path) -> None:
        try:
            with self.searcher.pixels:
                info = self.searcher.references.offer(read_frame(path))
        except FrameError as exc:
            log.info("reference offer skipped file=%s reason=%s", path.name, exc)
            return
        except Exception:  # housekeeping: the frame is already published and settled
            log.exception("reference update failed file=%s", path.name)
            return
        if info is not None:
            log.info(
                "reference updated site=%s field=%s members=%d",
                self.searcher.site_id,
                info.field_id,
                len(info.members),
            )


@dataclass
class OfferReference:
    """After settling: a good frame's file goes to the reference keeper."""

    keeper: ReferenceKeeper

    async def run(self, work: FrameWork) -> None:
        work.frame = None
        if isinstance(work.message, FrameScore) and work.message.label is QualityLabel.GOOD:
            self.keeper.offer(work.path)
