"""Quality scoring through a Triton Inference Server, with in-process scoring when it is down.

`TritonPredictor` sends preprocessed frames (`[N, 1, 128, 128]` float32) to a Triton model over
gRPC and returns its per-class probabilities, the same interface as the in-process
`QualityModel.predict`. `FallbackPredictor` puts the two together for the site agent: it scores
through Triton; when Triton fails (server down, timeout, bad answer) it logs one WARNING per
outage, scores the same batch in process so no frame is lost, and tries Triton again every
`retry_interval_s`. `served_through_triton` is what a site scores with: one model version,
asked of Triton by its number (`model_version`, so Triton never picks another) with the same
version in process as the fallback, and that version's identity on every frame score. The site
side only needs `tritonclient`, never the training code.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from imaging.preprocess import INPUT_SHAPE
from imaging.scoring import QualityPredictor
from protos import ModelRef

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"

ScoringPath = Literal["triton", "in_process"]

# A channel of its own subchannels: gRPC otherwise shares connections between channels to the
# same address, so a new client would inherit a failed connection's reconnect backoff.
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", triton_grpc.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", triton_grpc.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.use_local_subchannel_pool", 1),
]


class Predictor(Protocol):
    """Anything that turns a batch of preprocessed frames into per-class probabilities."""

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


class TritonUnavailableError(RuntimeError):
    """Triton could not score a batch: not reachable, too slow, or a malformed answer."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Triton at {url} unavailable: {reason}")
        self.url = url
        self.reason = reason


def _checked_batch(batch: np.ndarray) -> np.ndarray:
    if batch.ndim != 4 or batch.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"expected a batch of shape [N, 1, 128, 128], got {list(batch.shape)}")
    return np.ascontiguousarray(batch, dtype=np.float32)


class TritonPredictor:
    """Scores batches with a model served by Triton, over gRPC."""

    def __init__(
        self,
        url: str,
        model_name: str = "quality",
        *,
        timeout_s: float = 5.0,
        model_version: str = "",
        input_name: str = INPUT_NAME,
        output_name: str = OUTPUT_NAME,
    ) -> None:
        """`model_version` "" lets the server pick; the tensor names differ on Triton's PyTorch
        backend (e.g. "input__0", "probabilities__0")."""
        self.url = url
        self.model_name = model_name
        self.model_version = model_version
        self.input_name = input_name
        self.output_name = output_name
        self.timeout_s = timeout_s
        self._client = self._new_client()
        self._reconnect = False

    def _new_client(self) -> triton_grpc.InferenceServerClient:
        return triton_grpc.InferenceServerClient(url=self.url, channel_args=_CHANNEL_ARGS)

    def _connected_client(self) -> triton_grpc.InferenceServerClient:
        """The client; a fresh channel after a failure, so a restarted server is seen at once
        (a failed gRPC channel otherwise waits out its reconnect backoff, up to minutes)."""
        if self._reconnect:
            self._client.close()
            self._client = self._new_client()
            self._reconnect = False
        return self._client

    def is_ready(self) -> bool:
        """Whether the server answers and has the model loaded."""
        try:
            return bool(
                self._connected_client().is_model_ready(
                    self.model_name, self.model_version, client_timeout=self.timeout_s
                )
            )
        except InferenceServerException:
            self._reconnect = True
            return False

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Per-class probabilities `[N, 3]` for a batch `[N, 1, 128, 128]`."""
        frames = _checked_batch(batch)
        if len(frames) == 0:
            return np.empty((0, 3), dtype=np.float32)
        request = triton_grpc.InferInput(self.input_name, list(frames.shape), "FP32")
        request.set_data_from_numpy(frames)
        try:
            result = self._connected_client().infer(
                self.model_name,
                [request],
                model_version=self.model_version,
                outputs=[triton_grpc.InferRequestedOutput(self.output_name)],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            self._reconnect = True
            raise TritonUnavailableError(self.url, str(exc.message())) from exc
        answered_by = result.get_response().model_version
        if self.model_version and answered_by != self.model_version:
            raise TritonUnavailableError(
                self.url, f"version {answered_by} answered for version {self.model_version}"
            )
        probabilities = result.as_numpy(self.output_name)
        if probabilities is None or probabilities.shape[0] != len(frames):
            shape = None if probabilities is None else list(probabilities.shape)
            raise TritonUnavailableError(self.url, f"answered {shape} for a batch of {len(frames)}")
        return probabilities

    def close(self) -> None:
        self._client.close()


class FallbackPredictor:
    """Triton first; in process while Triton is unavailable, trying Triton again periodically."""

    def __init__(
        self,
        primary: TritonPredictor,
        fallback: Predictor,
        *,
        retry_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at: float | None = None
        self.last_path: ScoringPath | None = None

    @property
    def triton_available(self) -> bool:
        """False from a failure until Triton answers again."""
        return self._retry_at is None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Per-class probabilities `[N, 3]`, from Triton when it answers, else in process."""
        if self._should_try_triton():
            try:
                probabilities = self.primary.predict(batch)
            except TritonUnavailableError as exc:
                self._mark_down(exc)
            else:
                self._mark_up()
                self.last_path = "triton"
                return probabilities
        probabilities = self.fallback.predict(batch)
        self.last_path = "in_process"
        return probabilities

    def _should_try_triton(self) -> bool:
        with self._lock:
            return self._retry_at is None or self._clock() >= self._retry_at

    def _mark_down(self, exc: TritonUnavailableError) -> None:
        with self._lock:
            first_failure = self._retry_at is None
            self._retry_at = self._clock() + self.retry_interval_s
        if first_failure:
            log.warning(
                "%s; scoring in process, retrying Triton every %.0f s", exc, self.retry_interval_s
            )

    def _mark_up(self) -> None:
        with self._lock:
            recovered = self._retry_at is not None
            self._retry_at = None
        if recovered:
            log.info("Triton at %s is back; scoring through Triton", self.primary.url)


@dataclass(frozen=True)
class ServedModel:
    """A predictor (e.g. Triton with in-process fallback) and the model it serves."""

    predictor: Predictor
    ref: ModelRef

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.predictor.predict(batch)


def served_through_triton(
    url: str, local: QualityPredictor, *, timeout_s: float = 5.0
) -> ServedModel:
    """Score with `local`'s version served by Triton at `url`, and with `local` itself while
    Triton is down: every frame is scored by that version, whichever path scored it."""
    triton = TritonPredictor(
        url, local.ref.name, model_version=local.ref.version, timeout_s=timeout_s
    )
    return ServedModel(FallbackPredictor(triton, local), local.ref)
