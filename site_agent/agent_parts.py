"""The site agent's parts, built from its settings: the quality predictor, the site's
description, the transient searcher and its lane, and the frame pipeline with the agent's own
stages. Building only: `site_agent.agent` starts the parts, runs them and stops them.
"""

from collections.abc import Awaitable, Callable
from pathlib import Path

from imaging.calibration_store import CalibrationStore
from imaging.field_reference import SiteReferences
from imaging.fits_reader import Frame, read_frame
from imaging.photometry import PhotometricCalibration
from imaging.quality_model import QualityModel
from imaging.scoring import QualityPredictor
from protos import FleetMessage, SiteConfig, stable_message_id
from site_agent.calibration_stage import CalibrateFrame, CollectCalibration
from site_agent.executor import FollowUpExecutor
from site_agent.followups import CloseFollowUp, ReportFollowUp
from site_agent.pipeline import FramePipeline, Stage, site_pipeline
from site_agent.publisher import SitePublisher
from site_agent.search_backlog import SearchBacklog
from site_agent.settings import SiteAgentSettings
from site_agent.state import ProcessedFrames
from site_agent.telemetry import AgentMetrics
from site_agent.transient_stage import (
    ReferenceKeeper,
    SearchLane,
    SubmitSearch,
    TransientSearcher,
)


def load_predictor(settings: SiteAgentSettings) -> QualityPredictor:
    """The verified quality model in process (TorchScript, or its ONNX export checked to score
    as the verified TorchScript model does), or served by Triton with the TorchScript model in
    process as the fallback: Triton is asked for the local model's version by its number, so
    the version named on a frame score is the one that scored it on either path."""
    local = QualityModel.load(settings.model_dir, settings.release_public_key)
    if settings.triton_url is None and settings.quality_runtime == "onnx":
        # onnxruntime is an optional extra (the `onnx` extra; NVIDIA's build on a Jetson)
        from imaging.onnx_model import OnnxQualityModel

        onnx = OnnxQualityModel.load(settings.model_dir, cache_dir=settings.work_dir / "onnx-cache")
        onnx.agrees_with(local)  # ties model.onnx to the verified (and signed) model.pt
        return onnx
    if settings.triton_url is None:
        return local
    # tritonclient is an optional extra: imported only when Triton is asked for
    from site_agent.triton_scorer import served_through_triton

    return served_through_triton(settings.triton_url, local)


def site_config(settings: SiteAgentSettings) -> SiteConfig | None:
    """The site's description for the fleet, when its location and camera are configured."""
    if settings.location is None or settings.camera is None:
        return None
    described = (settings.location, settings.camera, settings.horizon_limit_deg)
    return SiteConfig(
        message_id=stable_message_id(SiteConfig.KIND, settings.site_id, repr(described)),
        site_id=settings.site_id,
        name=settings.site_id,
        location=settings.location,
        horizon_limit_deg=settings.horizon_limit_deg,
        camera=settings.camera,
    )


def load_searcher(settings: SiteAgentSettings) -> TransientSearcher | None:
    """The site's transient searcher (references, real/bogus model, limits), if it searches."""
    if not settings.search_transients:
        return None
    return TransientSearcher.load(
        settings.site_id,
        settings.reference_dir,
        settings.realbogus_model_dir,
        settings.transients,
        release_public_key=settings.release_public_key,
        read=calibrated_reader(settings) if settings.calibrate_frames else read_frame,
    )


def calibrated_reader(settings: SiteAgentSettings) -> Callable[[Path], Frame]:
    """Read a frame and apply the site's master calibrations that suit it, as scoring does
    (`CalibrateFrame`): the search and the references then work on the same pixels."""
    store = calibration_store(settings)

    def read(path: Path) -> Frame:
        return store.calibrate(read_frame(path), saturation_adu=settings.saturation_adu).frame

    return read


def calibration_store(settings: SiteAgentSettings) -> CalibrationStore:
    """The site's calibration frames and masters."""
    return CalibrationStore(settings.calibration_dir, min_frames=settings.calibration_min_frames)


def search_parts(
    searcher: TransientSearcher | None,
    backlog: SearchBacklog,
    send: Callable[[FleetMessage], Awaitable[object]],
    on_published: Callable[[FleetMessage], None],
) -> tuple[ReferenceKeeper | None, SearchLane | None]:
    """The reference keeper and the search lane of a site that searches (none otherwise)."""
    if searcher is None:
        return None, None
    keeper = ReferenceKeeper(searcher)
    return keeper, SearchLane(searcher, backlog, send, on_published, keeper)


def frame_pipeline(
    settings: SiteAgentSettings,
    *,
    predictor: QualityPredictor,
    publisher: SitePublisher,
    state: ProcessedFrames,
    metrics: AgentMetrics,
    photometry: PhotometricCalibration | None,
    followups: FollowUpExecutor,
    lane: SearchLane | None,
    on_settled: Callable[[FleetMessage], None],
    sampler: Stage | None = None,
) -> FramePipeline:
    """The site's frame pipeline with the agent's own stages: calibration frames collected and
    sky frames calibrated before scoring, follow-up reports before publishing, the search lane
    after it (and the sampler for retraining), closing follow-ups once settled."""
    store = calibration_store(settings)
    calibration: list[Stage] = [
        CollectCalibration(settings.site_id, store, settings.saturation_adu)
    ]
    if settings.calibrate_frames:
        calibration.append(CalibrateFrame(settings.site_id, store, settings.saturation_adu))
    return site_pipeline(
        site_id=settings.site_id,
        predictor=predictor,
        publisher=publisher,
        state=state,
        metrics=metrics,
        quarantine_dir=settings.quarantine_dir,
        on_settled=on_settled,
        pixel_scale_arcsec=settings.pixel_scale_arcsec,
        saturation_adu=settings.saturation_adu,
        photometry=photometry,
        references=SiteReferences(settings.field_references_dir),
        before_scoring=calibration,
        before_publishing=[ReportFollowUp(settings.site_id, followups)],
        # the sampler reads the frame's pixels, which the search lane then takes over
        after_publishing=[*([sampler] if sampler else []), *([SubmitSearch(lane)] if lane else [])],
        after_settling=[CloseFollowUp(followups)],
    )
