"""The one frame->tensor preprocessing, shared by training and by every site.

`preprocess_frame` turns a 2-D frame of any size, dtype and aspect ratio into the quality model's
input: a float32 array `[1, 128, 128]` laid out as a 2x2 mosaic of 64x64 panels, so the network
sees both scales that frame quality lives on:

    +-----------------+-----------------+
    | 0: whole frame, | 1: native-pixel |
    | block-averaged  | crop near the   |
    | to 64x64        | frame centre    |
    +-----------------+-----------------+
    | 2: native crop  | 3: native crop  |
    | upper-left      | lower-right     |
    | quarter         | quarter         |
    +-----------------+-----------------+

- Panel 0 shows large-scale structure: clouds, gradients, satellite trails, star density. The
  frame is cut into square blocks of `ceil(max(H, W) / 64)` pixels whose means are taken (area
  averaging by reshaping into blocks, one pass over the data; edge blocks average what they hold),
  and the result is centred on a 64x64 panel padded with the background, so the aspect ratio is
  kept. Blocks holding NaN or inf average their finite pixels only.
- Panels 1-3 show the point-spread function at full resolution: seeing, trailing, defocus
  donuts, which any reduction of a large frame destroys. Each is a 64x64 crop of the original
  pixels centred on the brightest source in a search window around a fixed fractional position
  of the frame (the window is eroded first, a 3x3 minimum filter, so hot pixels and cosmic-ray
  hits, however bright, lose to stars). The windows do not overlap, so the three crops show
  three different stars.
- One robust stretch for all panels: the background median and sigma (MAD) come from a strided
  sample of the frame, then x' = asinh((x - median) / (3 sigma)) / asinh(1000), clipped to
  [-1, 1]. Background noise looks the same in every frame and bright stars do not dominate.

The output is deterministic and finite. A 4096x4096 float32 frame takes about 10-20 ms.
"""

import math

import numpy as np

from imaging.gaussian import MAD_TO_SIGMA

PREPROCESS_VERSION = "mosaic-asinh-1"
INPUT_SHAPE = (1, 128, 128)
PANEL_PX = 64
MIN_SIDE_PX = 4

# Fractional (row, column) centres of the native-resolution crops, panels 1-3.
CROP_ANCHORS = ((0.5, 0.5), (0.25, 0.25), (0.75, 0.75))
# Half-size of the search window for the crop's star, as a fraction of the frame's short side.
SEARCH_HALF_FRACTION = 0.125
SEARCH_HALF_MAX_PX = 128

STATS_SAMPLE_PX = 16_384
STRETCH_SIGMAS = 3.0
STRETCH_SOFTENING = 1000.0


def preprocess_frame(data: np.ndarray) -> np.ndarray:
    """The model input `[1, 128, 128]` float32 for one 2-D frame (see the module docstring)."""
    if data.ndim != 2 or min(data.shape) < MIN_SIDE_PX:
        raise ValueError(
            f"expected a 2-D frame of at least {MIN_SIDE_PX}x{MIN_SIDE_PX} px, "
            f"got shape {data.shape}"
        )
    background, sigma = background_and_sigma(data)
    panels = [
        overview_panel(data, background),
        *(star_crop(data, anchor, background) for anchor in CROP_ANCHORS),
    ]
    mosaic = np.block([[panels[0], panels[1]], [panels[2], panels[3]]])
    return asinh_stretch(mosaic, background, sigma)[np.newaxis].astype(np.float32)


def background_and_sigma(data: np.ndarray) -> tuple[float, float]:
    """Median and MAD sigma of a strided sample of about `STATS_SAMPLE_PX` finite pixels."""
    stride = max(1, math.isqrt(data.size // STATS_SAMPLE_PX))
    sample = np.asarray(data[::stride, ::stride], dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    median = float(np.median(sample))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(sample - median)))
    if sigma <= 0.0:
        # Quantised or mostly flat frames: fall back to the standard deviation, then to 1.
        sigma = float(np.std(sample)) or 1.0
    return median, sigma


def block_mean(data: np.ndarray, block_px: int) -> np.ndarray:
    """Means of `block_px` x `block_px` blocks (edge blocks partial); non-finite pixels ignored."""
    height, width = data.shape
    counts = np.outer(_run_lengths(height, block_px), _run_lengths(width, block_px))
    sums = _block_sum(data, block_px)
    if np.isfinite(sums).all():
        return sums / counts
    finite = np.isfinite(data)
    sums = _block_sum(np.where(finite, data, 0.0), block_px)
    finite_counts = _block_sum(finite, block_px)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite_counts > 0, sums / finite_counts, np.nan)


def _run_lengths(length: int, run: int) -> np.ndarray:
    return np.diff(np.append(np.arange(0, length, run), length))


def _block_sum(data: np.ndarray, block_px: int) -> np.ndarray:
    # float32 down each block's rows (the one pass over the frame), float64 across its columns.
    row_sums = _sum_runs(data, block_px, axis=0, dtype=np.float32)
    return _sum_runs(row_sums, block_px, axis=1, dtype=np.float64)


def _sum_runs(array: np.ndarray, run: int, axis: int, dtype: type) -> np.ndarray:
    """Sums of consecutive runs of `run` elements along `axis`; the last run may be shorter."""
    moved = np.moveaxis(array, axis, 0)
    full = moved.shape[0] // run * run
    parts = [moved[:full].reshape(full // run, run, *moved.shape[1:]).sum(axis=1, dtype=dtype)]
    if full < moved.shape[0]:
        parts.append(moved[full:].sum(axis=0, dtype=dtype, keepdims=True))
    return np.moveaxis(np.concatenate(parts), 0, axis)


def overview_panel(data: np.ndarray, background: float) -> np.ndarray:
    """The whole frame block-averaged into a 64x64 panel, centred, padded with `background`."""
    block_px = math.ceil(max(data.shape) / PANEL_PX)
    reduced = block_mean(data, block_px)
    return _centred_in_panel(reduced, background)


def star_crop(data: np.ndarray, anchor: tuple[float, float], background: float) -> np.ndarray:
    """A native-resolution 64x64 crop centred on the brightest source near `anchor`."""
    height, width = data.shape
    half = max(2, min(SEARCH_HALF_MAX_PX, int(SEARCH_HALF_FRACTION * min(height, width))))
    centre_row = int(anchor[0] * (height - 1))
    centre_column = int(anchor[1] * (width - 1))
    top, left = max(0, centre_row - half), max(0, centre_column - half)
    window = np.array(data[top : centre_row + half, left : centre_column + half], np.float32)
    window[~np.isfinite(window)] = background
    eroded = eroded_3x3(window)
    peak_row, peak_column = np.unravel_index(np.argmax(eroded), eroded.shape)
    # eroded[i, j] is the minimum around window[i + 1, j + 1].
    row0 = min(max(0, top + 1 + int(peak_row) - PANEL_PX // 2), max(0, height - PANEL_PX))
    column0 = min(max(0, left + 1 + int(peak_column) - PANEL_PX // 2), max(0, width - PANEL_PX))
    crop = data[row0 : row0 + PANEL_PX, column0 : column0 + PANEL_PX]
    return _centred_in_panel(np.asarray(crop, dtype=np.float64), background)


def eroded_3x3(image: np.ndarray) -> np.ndarray:
    """Grey erosion by a 3x3 square (the minimum of each pixel's neighbourhood), for the interior
    pixels only: the result is 2 px smaller on each axis. Separable, so four `np.minimum`."""
    rows = np.minimum(np.minimum(image[:-2], image[1:-1]), image[2:])
    return np.minimum(np.minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _centred_in_panel(image: np.ndarray, background: float) -> np.ndarray:
    """`image` (at most 64x64) centred on a 64x64 panel; the margin and NaNs are background."""
    panel = np.full((PANEL_PX, PANEL_PX), background, dtype=np.float64)
    height, width = image.shape
    top, left = (PANEL_PX - height) // 2, (PANEL_PX - width) // 2
    panel[top : top + height, left : left + width] = image
    return np.where(np.isfinite(panel), panel, background)


def asinh_stretch(image: np.ndarray, background: float, sigma: float) -> np.ndarray:
    """asinh((x - background) / (3 sigma)) scaled so 1000x that level maps to 1; in [-1, 1]."""
    scaled = np.arcsinh((image - background) / (STRETCH_SIGMAS * sigma))
    return np.clip(scaled / math.asinh(STRETCH_SOFTENING), -1.0, 1.0)
