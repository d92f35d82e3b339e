"""Overscan and trim of a raw CCD frame, as its header describes them (BIASSEC and TRIMSEC).

Many CCD cameras read out columns beyond the exposed area (the overscan): no light falls there,
so they hold the bias level of each row at the moment of that exposure, drifting with the
electronics' temperature. A raw frame that names its overscan (`BIASSEC`) and its exposed area
(`TRIMSEC`) is corrected the standard way, with ccdproc: the median of each row's overscan
subtracted from that row (`subtract_overscan`), then everything outside the exposed area cut off
(`trim_image`). Without that, the overscan strip and prescan columns count as sky in the
metrics, and the frame's background is the bias, not the sky.

The header follows the pixels: the WCS reference pixel moves with the trim, the saturation
level drops by the overscan's level, BIASSEC and TRIMSEC are removed (a frame is corrected only
once) and `OVSCSUB` records the level taken off. A section that does not fit the image, or a
malformed one, leaves the frame as it is, with a warning.
"""

import logging
import re
import warnings

import numpy as np
from astropy.io import fits

log = logging.getLogger(__name__)

_SECTION = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")


def _section(header: fits.Header, key: str, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """A FITS section ('[x1:x2,y1:y2]', 1-based, inclusive; x is the column) as numpy slices
    (rows, columns); None when absent, malformed or outside the image."""
    text = header.get(key)
    if not isinstance(text, str):
        return None
    found = _SECTION.match(text.strip())
    if found is None:
        log.warning("%s %r is not a FITS section [x1:x2,y1:y2]: ignored", key, text)
        return None
    x1, x2, y1, y2 = (int(group) for group in found.groups())
    if x1 > x2 or y1 > y2:
        log.warning("%s %r runs backwards (a flipped readout is not handled): ignored", key, text)
        return None
    rows, columns = shape
    if not (
        min(x1, x2) >= 1 and max(x1, x2) <= columns and min(y1, y2) >= 1 and max(y1, y2) <= rows
    ):
        log.warning("%s %r lies outside the %dx%d image: ignored", key, text, columns, rows)
        return None
    return slice(min(y1, y2) - 1, max(y1, y2)), slice(min(x1, x2) - 1, max(x1, x2))


def corrected_for_overscan(
    data: np.ndarray, header: fits.Header, saturation_adu: float | None
) -> tuple[np.ndarray, fits.Header, float | None]:
    """The exposed area of a raw frame with each row's overscan median subtracted, its header
    and saturation level to match; the frame unchanged when it names no usable BIASSEC and
    TRIMSEC."""
    shape = (data.shape[0], data.shape[1])
    bias_section = _section(header, "BIASSEC", shape)
    trim_section = _section(header, "TRIMSEC", shape)
    if bias_section is None or trim_section is None:
        return data, header, saturation_adu
    import ccdproc
    from astropy.nddata import CCDData

    rows, columns = bias_section
    along_rows = (rows.stop - rows.start) >= (columns.stop - columns.start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN pixels in the overscan
        ccd = CCDData(data, unit="adu")
        overscan = ccdproc.subtract_overscan(
            ccd,
            fits_section=str(header["BIASSEC"]).replace(" ", ""),
            overscan_axis=1 if along_rows else 0,
            median=True,
        )
        trimmed = ccdproc.trim_image(overscan, fits_section=str(header["TRIMSEC"]).replace(" ", ""))
    level = float(np.nanmedian(data[bias_section]))
    corrected = header.copy()
    for axis, section in (("1", trim_section[1]), ("2", trim_section[0])):
        if f"CRPIX{axis}" in corrected:
            corrected[f"CRPIX{axis}"] = float(corrected[f"CRPIX{axis}"]) - section.start
    del corrected["BIASSEC"], corrected["TRIMSEC"]
    corrected["OVSCSUB"] = (round(level, 3), "[adu] Median overscan level subtracted")
    if saturation_adu is not None:
        saturation_adu -= level
        corrected["SATURATE"] = (saturation_adu, "[adu] Saturation after overscan subtraction")
    pixels = np.asarray(trimmed.data, dtype=np.float32)
    return pixels, corrected, saturation_adu
