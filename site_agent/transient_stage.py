"""The transient stages of the site's frame path: search each scored frame against its field's
reference, and grow the references from the site's good frames.

`SearchTransients` runs after scoring: it puts the search outcome on the `FrameScore` (searched
or not, how many candidates, why not) and the candidates beside it, so that they are published
with the score. `OfferReference` runs after the frame is settled, off the publishing path: a
good frame starts its field's reference or replaces a shallower member. Searching comes first,
so a frame is never searched against itself.
"""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from protos import FrameScore, QualityLabel
from site_agent.fits_reader import Frame
from site_agent.pipeline import FrameWork
from site_agent.transients.config import TransientSearchSettings
from site_agent.transients.realbogus import RealBogusModel
from site_agent.transients.references import ReferenceStore
from site_agent.transients.search import search_transients

log = logging.getLogger(__name__)


@dataclass
class TransientSearcher:
    """What a site searches its frames with: its references, real/bogus model and limits."""

    site_id: str
    references: ReferenceStore
    model: RealBogusModel
    settings: TransientSearchSettings

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
        searcher = self.searcher
        outcome = await asyncio.to_thread(
            search_transients,
            frame,
            searcher.references,
            site_id=searcher.site_id,
            model=searcher.model,
            settings=searcher.settings,
            label=score.label,
        )
        work.message = score.model_copy(update={"transients": outcome.search})
        work.related.extend(outcome.candidates)


@dataclass
class OfferReference:
    """After settling: a good frame goes to its field's reference (never fails the frame)."""

    searcher: TransientSearcher

    async def run(self, work: FrameWork) -> None:
        score, frame = work.message, work.frame
        if isinstance(score, FrameScore) and frame is not None and score.label is QualityLabel.GOOD:
            await asyncio.to_thread(self._offer, frame)
        work.frame = None

    def _offer(self, frame: Frame) -> None:
        try:
            info = self.searcher.references.offer(frame)
        except Exception:  # housekeeping: the frame is already published and settled
            log.exception("reference update failed file=%s", frame.identity.file_name)
            return
        if info is not None:
            log.info(
                "reference updated site=%s field=%s members=%d",
                self.searcher.site_id,
                info.field_id,
                len(info.members),
            )
