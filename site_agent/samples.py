"""Samples for retraining: a bounded, rate-limited share of the frames a site scored, kept in a
JetStream Object Store bucket on the site's own server for the centre to collect.

`SampleFrames` is a pipeline stage after publishing: for a scored frame, when a sample is due
(at most one every `min_interval_s`), it queues the frame's model input (the preprocessed
tensor `[1, 128, 128]`, `imaging.preprocess`), its metrics, the verdict and the model that gave
it. `SampleSender` puts queued samples into the site's bucket (`protos.streams.
site_sample_bucket`) on the site's own server: the bucket lives at the site, so samples taken
while the link is down are there when the centre next reads them (`training.fleet_samples`).

Nothing here may slow scoring: the stage only copies into a bounded queue (a full queue drops
the sample, counted); the sender runs on its own; an unreachable server or a refused put drops
that sample and is logged once until puts work again. The bucket holds at most `quota_bytes` of
samples: before a put, the oldest samples are deleted until the new one fits (the bucket's own
limit, a little above the quota, is a backstop that refuses a put rather than corrupt an
object by dropping its chunks).

A sample is two objects, `<frame sha256>.npy` and `<frame sha256>.json`; the JSON is the
format training reads (`training.fleet_samples.FleetSample`: the site's verdict as the label,
label source `site-verdict`). The site may not import training, so `SampleRecord` writes the
same fields; `tests/test_site_samples.py` reads what a site stored with training's reader.
"""

import asyncio
import io
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import numpy as np
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore
from pydantic import BaseModel, ConfigDict, Field

from imaging.preprocess import PREPROCESS_VERSION, preprocess_frame
from protos import FrameIdentity, FrameScore, ImageMetrics, ModelRef
from protos.base import SiteId, UtcDatetime, utc_now
from protos.streams import site_sample_bucket
from site_agent.learning_settings import SampleSettings
from site_agent.pipeline import FrameWork

log = logging.getLogger(__name__)

SAMPLE_QUEUE = 8
"""Samples waiting for the sender at most: a sample is ~66 kB; the sender puts one in a few
milliseconds on the site's own server, so eight only fill while the server is down."""
BUCKET_HEADROOM = 1.05
"""The bucket's own limit over the quota: the object store's chunk and meta headers (~300
bytes an object) on top of the payload that `SampleSender` counts."""
BUCKET_HEADROOM_BYTES = 1024**2
PUT_TIMEOUT_S = 5.0


class SampleRecord(BaseModel):
    """One sample's description: the fields of `training.fleet_samples.FleetSample`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    model: Literal["quality"] = "quality"
    site_id: SiteId
    frame: FrameIdentity
    tensor_file: str
    input_version: str = PREPROCESS_VERSION
    metrics: ImageMetrics
    verdict: str
    confidence: float = Field(ge=0.0, le=1.0)
    scored_by: ModelRef
    label: str
    label_source: Literal["site-verdict"] = "site-verdict"
    labelled_at: UtcDatetime

    @classmethod
    def of(cls, score: FrameScore) -> "SampleRecord":
        """The sample of a scored frame, labelled with the site's verdict."""
        return cls(
            site_id=score.site_id,
            frame=score.frame,
            tensor_file=f"{score.frame.sha256}.npy",
            metrics=score.metrics,
            verdict=score.label.value,
            confidence=score.confidence,
            scored_by=score.model,
            label=score.label.value,
            labelled_at=utc_now(),
        )


Sample = tuple[SampleRecord, np.ndarray]


class SampleFrames:
    """The pipeline stage that picks samples (rate-limited) and queues them for the sender."""

    def __init__(
        self,
        settings: SampleSettings,
        queue: "asyncio.Queue[Sample]",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._clock = clock
        self._last_s: float | None = None
        self.dropped = 0

    async def run(self, work: FrameWork) -> None:
        score, frame = work.message, work.frame
        if not self._settings.enabled or not isinstance(score, FrameScore) or frame is None:
            return
        now = self._clock()
        if self._last_s is not None and now - self._last_s < self._settings.min_interval_s:
            return
        if self._queue.full():
            self.dropped += 1
            return
        self._last_s = now
        tensor = await asyncio.to_thread(preprocess_frame, frame.data)
        self._queue.put_nowait((SampleRecord.of(score), tensor))


def sample_bytes(record: SampleRecord, tensor: np.ndarray) -> tuple[bytes, bytes]:
    """The two objects of a sample: the tensor as `.npy` and the record as JSON."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(tensor, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue(), record.model_dump_json(indent=2).encode()


class SampleSender:
    """Puts queued samples into the site's bucket, keeping it within its quota."""

    def __init__(self, site_id: str, settings: SampleSettings) -> None:
        self.site_id = site_id
        self.settings = settings
        self.queue: asyncio.Queue[Sample] = asyncio.Queue(maxsize=SAMPLE_QUEUE)
        self.stage = SampleFrames(settings, self.queue)
        self._held: OrderedDict[str, int] = OrderedDict()
        """Samples in the bucket, oldest first: key -> bytes (both objects)."""
        self._store: ObjectStore | None = None
        self.stored = 0
        self.failed = 0
        self._failing = False

    @property
    def held_bytes(self) -> int:
        return sum(self._held.values())

    async def run(self, js: JetStreamContext) -> None:
        """Send samples for ever; a failed put drops that sample and the next one tries again."""
        while True:
            record, tensor = await self.queue.get()
            try:
                await self.put(js, record, tensor)
            except (NatsError, TimeoutError) as exc:
                self._store = None  # found again (or created) at the next put
                self.failed += 1
                if not self._failing:
                    log.warning("sample not stored site=%s error=%r", self.site_id, exc)
                self._failing = True

    async def put(self, js: JetStreamContext, record: SampleRecord, tensor: np.ndarray) -> None:
        """Store one sample, first deleting the oldest ones it would not fit beside."""
        store = self._store or await self._open(js)
        key = record.frame.sha256
        tensor_data, record_data = sample_bytes(record, tensor)
        size = len(tensor_data) + len(record_data)
        self._held.pop(key, None)  # the same frame again replaces its sample
        while self._held and self.held_bytes + size > self.settings.quota_bytes:
            oldest, _ = self._held.popitem(last=False)
            await self._delete(store, oldest)
        await asyncio.wait_for(store.put(f"{key}.npy", tensor_data), PUT_TIMEOUT_S)
        await asyncio.wait_for(store.put(f"{key}.json", record_data), PUT_TIMEOUT_S)
        self._held[key] = size
        self.stored += 1
        if self._failing:
            log.info("samples stored again site=%s", self.site_id)
            self._failing = False

    async def _open(self, js: JetStreamContext) -> ObjectStore:
        """The site's bucket (created with its limit on first use), and what it holds."""
        cap = int(self.settings.quota_bytes * BUCKET_HEADROOM) + BUCKET_HEADROOM_BYTES
        config = ObjectStoreConfig(
            description=f"Samples of site {self.site_id} for retraining",
            max_bytes=cap,
            storage=StorageType.FILE,
        )
        store = await js.create_object_store(site_sample_bucket(self.site_id), config=config)
        self._held = await held_samples(store)
        self._store = store
        return store

    async def _delete(self, store: ObjectStore, key: str) -> None:
        for name in (f"{key}.json", f"{key}.npy"):  # the record first: no record, no sample
            try:
                await store.delete(name)
            except NotFoundError:
                continue


async def held_samples(store: ObjectStore) -> "OrderedDict[str, int]":
    """The samples a bucket holds, oldest first, with their sizes (both objects)."""
    try:
        infos = await store.list(ignore_deletes=True)
    except NotFoundError:  # an empty bucket
        return OrderedDict()
    sizes: dict[str, int] = {}
    ages: dict[str, str] = {}
    for info in infos:
        if info.deleted:
            continue
        key = info.name.rsplit(".", 1)[0]
        sizes[key] = sizes.get(key, 0) + (info.size or 0)
        ages[key] = min(ages.get(key, "~"), _sortable(info.mtime or ""))
    return OrderedDict((key, sizes[key]) for key in sorted(sizes, key=lambda k: ages[k]))


def _sortable(mtime: str) -> str:
    """An object's modification time (RFC 3339 in UTC from the server, 0 to 9 fractional
    digits) written so that text order is time order."""
    whole, _, fraction = mtime.rstrip("Z").partition(".")
    return f"{whole}.{fraction.ljust(9, '0')}"
