"""One valid example of every message kind, for tests that move messages around."""

import base64
import struct
import zlib
from datetime import UTC, datetime, timedelta

from protos import (
    CameraConfig,
    ClassProbabilities,
    EncodedArray,
    ExposurePlan,
    FleetMessage,
    FollowUpCancel,
    FollowUpReprioritise,
    FollowUpRequest,
    FollowUpState,
    FollowUpStatus,
    FrameIdentity,
    FrameRejected,
    FrameScore,
    FrameSearched,
    ImageMetrics,
    LinkState,
    ModelRef,
    ModelRelease,
    QualityLabel,
    QualityReason,
    RejectReason,
    SiteConfig,
    SiteHeartbeat,
    SiteLocation,
    SkyPosition,
    SkyTarget,
    TransientCandidate,
    TransientCutouts,
    TransientSearch,
    stable_message_id,
)

SHA = "ab" * 32
WHEN = datetime(2026, 11, 24, 3, 15, tzinfo=UTC)


def stamp(value: float = 1.0, side: int = 21) -> EncodedArray:
    raw = struct.pack(f"<{side * side}f", *([value] * (side * side)))
    return EncodedArray.from_raw((side, side), raw)


def frame_score(site_id: str = "la-silla", sha256: str = SHA) -> FrameScore:
    return FrameScore(
        message_id=stable_message_id(FrameScore.KIND, site_id, sha256),
        site_id=site_id,
        frame=FrameIdentity(
            file_name="night-0001.fits",
            sha256=sha256,
            date_obs=WHEN,
            exptime_s=60.0,
            filter="r",
            pointing=SkyPosition(ra_deg=150.1, dec_deg=-30.2),
            width_px=1024,
            height_px=1024,
        ),
        label=QualityLabel.MEDIUM,
        confidence=0.7,
        probabilities=ClassProbabilities(good=0.2, medium=0.7, bad=0.1),
        model=ModelRef(name="quality", version="1", sha256=SHA),
        metrics=ImageMetrics(
            background_adu=1200.0,
            background_rms_adu=14.0,
            fwhm_arcsec=3.1,
            ellipticity=0.08,
            source_count=412,
            saturated_fraction=0.0002,
            transparency=0.9,
        ),
        reasons=[
            QualityReason(
                reason="seeing",
                value=3.1,
                threshold=2.5,
                unit="arcsec",
                message="seeing 3.1 arcsec exceeds the 2.5 arcsec limit for good frames",
            )
        ],
    )


def every_message(site_id: str = "la-silla") -> list[FleetMessage]:
    """One message of each kind for `site_id`."""
    return [
        frame_score(site_id),
        FrameRejected(
            message_id=stable_message_id(FrameRejected.KIND, site_id, "broken.fits"),
            site_id=site_id,
            file_name="broken.fits",
            reason=RejectReason.TRUNCATED,
            message="broken.fits: header promises 2097152 data bytes, file holds 1000",
        ),
        TransientCandidate(
            message_id=stable_message_id(TransientCandidate.KIND, site_id, SHA, "1"),
            site_id=site_id,
            frame_sha256=SHA,
            frame_file_name="night-0001.fits",
            observed_at=WHEN,
            ra_deg=150.11,
            dec_deg=-30.19,
            x_px=511.2,
            y_px=300.7,
            flux_adu=5000.0,
            flux_err_adu=250.0,
            snr=20.0,
            real_bogus=0.93,
            cutouts=TransientCutouts(new=stamp(2.0), reference=stamp(1.0), difference=stamp(1.0)),
        ),
        FrameSearched(
            message_id=stable_message_id(FrameSearched.KIND, site_id, SHA),
            site_id=site_id,
            frame=frame_score(site_id).frame,
            score_message_id=frame_score(site_id).message_id,
            search=TransientSearch(attempted=True, candidates=1),
            search_ms=4100.0,
        ),
        SiteHeartbeat(
            message_id=stable_message_id(SiteHeartbeat.KIND, site_id, "42"),
            site_id=site_id,
            agent_version="0.1.0",
            model_version="1",
            queue_depths={"ingest": 0},
            disk_free_bytes=10**10,
            link_state=LinkState.UP,
        ),
        SiteConfig(
            message_id=stable_message_id(SiteConfig.KIND, site_id),
            site_id=site_id,
            name="La Silla 0.6m",
            location=SiteLocation(lat_deg=-29.2567, lon_deg=-70.73, height_m=2400.0),
            camera=CameraConfig(
                pixel_scale_arcsec=0.6,
                gain_e_per_adu=1.5,
                read_noise_e=6.0,
                saturation_adu=60000.0,
                width_px=1024,
                height_px=1024,
            ),
        ),
        FollowUpRequest(
            message_id=stable_message_id(FollowUpRequest.KIND, site_id, "req-1"),
            site_id=site_id,
            request_id="req-1",
            target=SkyTarget(name="SF26aaa", ra_deg=150.11, dec_deg=-30.19),
            plan=ExposurePlan(filter="r", exptime_s=120.0, count=3),
            deadline=WHEN + timedelta(hours=6),
            priority=2,
        ),
        FollowUpStatus(
            message_id=stable_message_id(FollowUpStatus.KIND, site_id, "req-1", "done"),
            site_id=site_id,
            request_id="req-1",
            state=FollowUpState.DONE,
            frames=["f1.fits", "f2.fits", "f3.fits"],
            exposures_done=3,
            exposures_total=3,
        ),
        FollowUpCancel(
            message_id=stable_message_id(FollowUpCancel.KIND, site_id, "req-1"),
            site_id=site_id,
            request_id="req-1",
            reason="re-planned to another site",
        ),
        FollowUpReprioritise(
            message_id=stable_message_id(FollowUpReprioritise.KIND, site_id, "req-1", "1"),
            site_id=site_id,
            request_id="req-1",
            priority=1,
        ),
        ModelRelease(
            message_id=stable_message_id(ModelRelease.KIND, site_id, "quality", "2"),
            site_id=site_id,
            model_name="quality",
            version="2",
            sha256=SHA,
            repository_uri="file:///models",
            metrics={"accuracy": 0.98},
        ),
    ]


def corrupt_base64() -> str:
    return base64.b64encode(zlib.compress(b"\x00" * 10)).decode()
