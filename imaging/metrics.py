"""Physical image metrics of a frame, measured with sep (Source Extractor as a library).

`measure_image_metrics` returns the `ImageMetrics` that go on the wire: sky background level and
noise, median stellar FWHM and ellipticity, source count, saturated fraction and the satellite
trails crossing the frame (`imaging.trails`). It is a pure function of the pixels
(transparency and sky brightness need the site's calibration and a star catalogue:
`imaging.photometry`).

To stay within the site's time budget (a 4096x4096 frame scored in well under 0.5 s on two
cores, model included), a large frame is measured on a representative subset:
- background level and RMS: `sep.Background` on a strided sample of about one megapixel, which
  keeps the per-pixel noise (unlike binning) and covers the whole frame;
- sources: the frame is cut into a grid of tiles of at most 512x512 pixels, and a quarter of
  them are candidates, chosen in a pattern where no two touch (not even at a corner) and every
  row of tiles is represented (frames of up to four tiles are measured whole). Candidates are
  measured at native resolution, in an order that spreads them over the frame, until at least
  an eighth of the frame and `ENOUGH_STARS` good stars are measured: a crowded frame stops at
  1/8, a sparse one goes on to 1/4. Each tile gets its own background (`sep.Background`, 64 px
  boxes) and `sep.extract` (1.5 sigma, 5 pixels, the SExtractor defaults). The source count is
  scaled from the measured area to the whole frame, with a Poisson error of sqrt(N / f) for N
  sources and a measured fraction f;
- saturated fraction: counted exactly over every pixel (one comparison pass);
- satellite trails: on the frame block-averaged to at most 192 px a side (frames of 384 px and
  more).

Stars for the PSF are unflagged (isolated, not truncated) detections with a peak of at least
`STAR_MIN_PEAK_SIGMA` sigma and below `LINEARITY_FRACTION` of saturation, the
`SHAPE_STARS_PER_TILE` brightest of each tile; each is cut out with its neighbours masked
(sep's segmentation map) and `imaging.psf` fits them: seeing FWHM, ellipticity, trailing and
focus with their errors (`measure_frame`; `ImageMetrics` carries the FWHM and the
ellipticity). The FWHM is the atmosphere's, the pixel's own width fitted out: a Moffat profile
integrated over each pixel, continuous in the star's width (a count of the pixels above half
the peak took a few discrete values on undersampled stars).
"""

import logging
import math
from dataclasses import dataclass

import numpy as np
import sep

from imaging.psf import PsfMeasurement, StarStamps, combined, cut_stamps, measure_psf, stamp_radius
from imaging.trails import count_trails
from protos import ImageMetrics

log = logging.getLogger(__name__)

TILE_MAX_PX = 512
WHOLE_FRAME_MAX_TILES = 4
TILE_SAMPLING_PERIOD = 4
MIN_MEASURED_FRACTION = 1 / 8
ENOUGH_STARS = 100
SHAPE_STARS_PER_TILE = 25
BACKGROUND_SAMPLE_PX = 1 << 20
BACKGROUND_BOX_PX = 64
DETECT_THRESH_SIGMA = 1.5
DETECT_MIN_AREA_PX = 5
STAR_MIN_PEAK_SIGMA = 10.0
LINEARITY_FRACTION = 0.8


@dataclass(frozen=True)
class TileSources:
    """What one tile yielded: all detections, and the stamps of its good stars."""

    area_px: int
    detections: int
    stars: StarStamps


@dataclass(frozen=True)
class FrameMeasurements:
    """What the pixels alone say about a frame: the wire's `ImageMetrics`, and its PSF in
    pixels with the errors the verdict grades with (None without enough stars)."""

    metrics: ImageMetrics
    psf: PsfMeasurement | None


def measure_image_metrics(
    data: np.ndarray,
    *,
    pixel_scale_arcsec: float | None,
    saturation_adu: float | None,
) -> ImageMetrics:
    """Background, PSF, source count and saturation of one frame (`measure_frame`'s metrics)."""
    return measure_frame(
        data, pixel_scale_arcsec=pixel_scale_arcsec, saturation_adu=saturation_adu
    ).metrics


def measure_frame(
    data: np.ndarray,
    *,
    pixel_scale_arcsec: float | None,
    saturation_adu: float | None,
) -> FrameMeasurements:
    """Background, PSF, source count, saturation and trails of one frame.

    Without a pixel scale the FWHM is unknown (None); without a saturation
    level no pixel counts as saturated.
    """
    background_adu, background_rms_adu = global_background(data)
    tiles: list[TileSources] = []
    for rows, columns in measured_tiles(data):
        tiles.append(measure_tile(data[rows, columns], saturation_adu))
        if _measured_enough(tiles, data.size):
            break
    measured_px = sum(tile.area_px for tile in tiles)
    detections = sum(tile.detections for tile in tiles)
    psf = measure_psf(combined([tile.stars for tile in tiles]))
    source_count = round(detections * data.size / measured_px) if measured_px else 0
    metrics = ImageMetrics(
        background_adu=background_adu,
        background_rms_adu=background_rms_adu,
        fwhm_arcsec=psf.fwhm_px * pixel_scale_arcsec if psf and pixel_scale_arcsec else None,
        fwhm_error_arcsec=psf.fwhm_error_px * pixel_scale_arcsec
        if psf and pixel_scale_arcsec
        else None,
        ellipticity=psf.ellipticity if psf else None,
        source_count=source_count,
        saturated_fraction=saturated_fraction(data, saturation_adu),
        satellite_trails=count_trails(data, saturation_adu or math.inf),
    )
    return FrameMeasurements(metrics=metrics, psf=psf)


def _measured_enough(tiles: list[TileSources], frame_px: int) -> bool:
    measured_px = sum(tile.area_px for tile in tiles)
    stars = sum(len(tile.stars.stamps) for tile in tiles)
    return measured_px >= MIN_MEASURED_FRACTION * frame_px and stars >= ENOUGH_STARS


def global_background(data: np.ndarray) -> tuple[float, float]:
    """The frame's sky level and noise (ADU) from a strided sample of about a megapixel."""
    stride = max(1, math.ceil(math.sqrt(data.size / BACKGROUND_SAMPLE_PX)))
    sample, mask = _sep_ready(data[::stride, ::stride])
    box_px = max(8, BACKGROUND_BOX_PX // stride)
    background = sep.Background(sample, mask=mask, bw=box_px, bh=box_px)
    return float(background.globalback), float(background.globalrms)


def measured_tiles(data: np.ndarray) -> list[tuple[slice, slice]]:
    """The tiles whose sources may be measured, in order: all of a small frame; a quarter of a
    large one, ordered so that its first half is itself spread over the frame."""
    height, width = data.shape
    row_edges = _even_edges(height)
    column_edges = _even_edges(width)
    grid = [
        (row, column)
        for row in range(len(row_edges) - 1)
        for column in range(len(column_edges) - 1)
    ]
    if len(grid) > WHOLE_FRAME_MAX_TILES:
        # Every 4th tile along the long axis, shifted by 2 per step across it: no two touch.
        long_axis_is_columns = len(column_edges) >= len(row_edges)
        grid = [
            (row, column)
            for row, column in grid
            if ((column + 2 * row) if long_axis_is_columns else (row + 2 * column))
            % TILE_SAMPLING_PERIOD
            == 0
        ]
        grid = grid[::2] + grid[1::2]
    return [
        (
            slice(row_edges[row], row_edges[row + 1]),
            slice(column_edges[column], column_edges[column + 1]),
        )
        for row, column in grid
    ]


def _even_edges(length: int) -> list[int]:
    count = math.ceil(length / TILE_MAX_PX)
    return [round(i * length / count) for i in range(count + 1)]


def measure_tile(tile: np.ndarray, saturation_adu: float | None) -> TileSources:
    """Detections in one tile and the stamps of its good stars (`imaging.psf`)."""
    pixels, mask = _sep_ready(tile)
    background = sep.Background(pixels, mask=mask, bw=BACKGROUND_BOX_PX, bh=BACKGROUND_BOX_PX)
    background.subfrom(pixels)
    rms = background.globalrms
    try:
        objects, segmentation = sep.extract(
            pixels,
            DETECT_THRESH_SIGMA,
            err=rms,
            mask=mask,
            minarea=DETECT_MIN_AREA_PX,
            segmentation_map=True,
        )
    except Exception as exc:  # sep reports its limits (pixel stack, deblending) as Exception
        log.warning("event=tile_skipped reason=%r", str(exc))
        return TileSources(0, 0, StarStamps.empty(stamp_radius(np.empty(0))))
    ids = np.flatnonzero(_is_good_star(objects, rms, background.globalback, saturation_adu))
    ids = ids[np.argsort(-objects["peak"][ids], kind="stable")[:SHAPE_STARS_PER_TILE]]
    stars = objects[ids]
    usable = np.ones(pixels.shape, dtype=bool) if mask is None else ~mask
    radius = stamp_radius(stars["a"])
    stamps = cut_stamps(pixels, usable, segmentation, stars, ids + 1, rms, radius)
    return TileSources(tile.size, len(objects), stamps)


def _is_good_star(
    objects: np.ndarray, rms: float, background_adu: float, saturation_adu: float | None
) -> np.ndarray:
    """Isolated, untruncated, bright and unsaturated detections."""
    good = (objects["flag"] == 0) & (objects["peak"] >= STAR_MIN_PEAK_SIGMA * rms)
    good &= objects["b"] > 0
    if saturation_adu is not None:
        good &= objects["peak"] + background_adu < LINEARITY_FRACTION * saturation_adu
    return good


def _sep_ready(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A C-contiguous native float32 copy for sep, NaN/inf zeroed and masked."""
    copy = np.array(pixels, dtype=np.float32, order="C")
    finite = np.isfinite(copy)
    if finite.all():
        return copy, None
    copy[~finite] = 0.0
    return copy, ~finite


def saturated_fraction(data: np.ndarray, saturation_adu: float | None) -> float:
    """The fraction of pixels at or above saturation (0 when the level is unknown)."""
    if saturation_adu is None:
        return 0.0
    return float(np.count_nonzero(data >= saturation_adu)) / data.size
