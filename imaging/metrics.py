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
`STAR_MIN_PEAK_SIGMA` sigma and below `LINEARITY_FRACTION` of saturation. Each star's FWHM is
measured at half its maximum (the area above half the peak), its ellipticity 1 - b/a from the
second moments of its pixels above a tenth of the peak (see `_star_shape`); both are medians over
the stars (the `SHAPE_STARS_PER_TILE` brightest of each tile), so the odd galaxy or blend does
not matter. The FWHM includes the pixel's own width, as on any detector: stars of 2-3 px FWHM
read 5-10% wider than the light that fell on them.
"""

import logging
import math
from dataclasses import dataclass

import numpy as np
import sep

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
STAR_MIN_PEAK_SIGMA = 30.0
LINEARITY_FRACTION = 0.8
STAR_MIN_FWHM_PX = 1.0
STAR_MIN_COUNT = 3
SHAPE_ISOPHOTE_OF_PEAK = 0.1
STAMP_RADIUS_PER_A = 4.0
STAMP_MAX_RADIUS_PX = 25


@dataclass(frozen=True)
class TileSources:
    """What one tile yielded: all detections, and the PSF measurements of its good stars."""

    area_px: int
    detections: int
    fwhm_px: np.ndarray
    ellipticity: np.ndarray


def measure_image_metrics(
    data: np.ndarray,
    *,
    pixel_scale_arcsec: float | None,
    saturation_adu: float | None,
) -> ImageMetrics:
    """Background, PSF, source count and saturation of one frame.

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
    fwhm_px = np.concatenate([tile.fwhm_px for tile in tiles])
    ellipticity = np.concatenate([tile.ellipticity for tile in tiles])
    has_psf = fwhm_px.size >= STAR_MIN_COUNT
    source_count = round(detections * data.size / measured_px) if measured_px else 0
    return ImageMetrics(
        background_adu=background_adu,
        background_rms_adu=background_rms_adu,
        fwhm_arcsec=float(np.median(fwhm_px)) * pixel_scale_arcsec
        if has_psf and pixel_scale_arcsec
        else None,
        ellipticity=float(np.clip(np.median(ellipticity), 0.0, 1.0)) if has_psf else None,
        source_count=source_count,
        saturated_fraction=saturated_fraction(data, saturation_adu),
        satellite_trails=count_trails(data, saturation_adu or math.inf),
    )


def _measured_enough(tiles: list[TileSources], frame_px: int) -> bool:
    measured_px = sum(tile.area_px for tile in tiles)
    stars = sum(tile.fwhm_px.size for tile in tiles)
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
    """Detections in one tile and the FWHM (px) and ellipticity of its good stars."""
    pixels, mask = _sep_ready(tile)
    background = sep.Background(pixels, mask=mask, bw=BACKGROUND_BOX_PX, bh=BACKGROUND_BOX_PX)
    background.subfrom(pixels)
    rms = background.globalrms
    try:
        objects = sep.extract(
            pixels, DETECT_THRESH_SIGMA, err=rms, mask=mask, minarea=DETECT_MIN_AREA_PX
        )
    except Exception as exc:  # sep reports its limits (pixel stack, deblending) as Exception
        log.warning("event=tile_skipped reason=%r", str(exc))
        return TileSources(0, 0, np.empty(0), np.empty(0))
    stars = objects[_is_good_star(objects, rms, background.globalback, saturation_adu)]
    stars = stars[np.argsort(-stars["peak"], kind="stable")[:SHAPE_STARS_PER_TILE]]
    shapes = np.array([_star_shape(pixels, star) for star in stars]).reshape(-1, 2)
    fwhm_px, ellipticity = shapes[:, 0], shapes[:, 1]
    keep = np.isfinite(fwhm_px) & np.isfinite(ellipticity) & (fwhm_px >= STAR_MIN_FWHM_PX)
    return TileSources(tile.size, len(objects), fwhm_px[keep], ellipticity[keep])


def _star_shape(pixels: np.ndarray, star: np.void) -> tuple[float, float]:
    """FWHM (px) and ellipticity 1 - b/a of one star from a stamp around it; NaN if unusable.

    FWHM is the diameter of the circle with the area of the pixels above half the peak, the
    peak refined by a log-parabola through the brightest pixel and its neighbours. Unlike twice
    the half-light radius it ignores the wings, which make that read 15-35% wide for the Moffat
    profiles of real seeing. Ellipticity comes from the second moments of the pixels above a
    tenth of the peak: the isophotes of an elliptical profile are similar ellipses, so this keeps
    the true axis ratio, where sep's footprint on the smoothed image is rounder than the star
    (it reads 0.25 for a true 0.4 at 2.5 px FWHM).
    """
    radius = int(np.clip(math.ceil(STAMP_RADIUS_PER_A * star["a"]), 3, STAMP_MAX_RADIUS_PX))
    row, column = round(float(star["y"])), round(float(star["x"]))
    height, width = pixels.shape
    if not (radius <= row < height - radius and radius <= column < width - radius):
        return math.nan, math.nan
    stamp = pixels[row - radius : row + radius + 1, column - radius : column + radius + 1]
    peak = _refined_peak(stamp)
    if not peak > 0:
        return math.nan, math.nan
    fwhm_px = 2.0 * math.sqrt(np.count_nonzero(stamp >= peak / 2) / math.pi)
    return fwhm_px, _isophote_ellipticity(stamp, SHAPE_ISOPHOTE_OF_PEAK * peak)


def _refined_peak(stamp: np.ndarray) -> float:
    """The profile's peak from a log-parabola through the brightest pixel and its neighbours
    along each axis (undersampled stars fall between pixels); NaN at the stamp's edge."""
    row, column = np.unravel_index(np.argmax(stamp), stamp.shape)
    brightest = float(stamp[row, column])
    if not (0 < row < stamp.shape[0] - 1 and 0 < column < stamp.shape[1] - 1 and brightest > 0):
        return math.nan
    log_brightest = math.log(brightest)
    log_peak = log_brightest
    for before, after in (
        (stamp[row, column - 1], stamp[row, column + 1]),
        (stamp[row - 1, column], stamp[row + 1, column]),
    ):
        if before > 0 and after > 0:
            log_before, log_after = math.log(before), math.log(after)
            curvature = log_before - 2 * log_brightest + log_after
            if curvature < 0:
                log_peak -= (log_before - log_after) ** 2 / (8 * curvature)
    return math.exp(log_peak)


def _isophote_ellipticity(stamp: np.ndarray, level: float) -> float:
    """1 - b/a from the second moments of the stamp's pixels at or above `level`."""
    weights = np.where(stamp >= level, stamp, 0.0)
    offsets = np.arange(stamp.shape[0], dtype=np.float64)
    total = weights.sum()
    mean_y = (weights.sum(axis=1) @ offsets) / total
    mean_x = (weights.sum(axis=0) @ offsets) / total
    dy, dx = offsets[:, np.newaxis] - mean_y, offsets[np.newaxis, :] - mean_x
    xx = float((weights * dx * dx).sum() / total)
    yy = float((weights * dy * dy).sum() / total)
    xy = float((weights * dx * dy).sum() / total)
    half_trace = (xx + yy) / 2
    spread = math.hypot((xx - yy) / 2, xy)
    if half_trace - spread <= 0:
        return math.nan
    return 1.0 - math.sqrt((half_trace - spread) / (half_trace + spread))


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
