"""Overscan and trim: a raw CCD frame that names its overscan (BIASSEC) and exposed area
(TRIMSEC) is read with each row's bias taken off and the unexposed columns cut away, the WCS and
saturation level following; the real raw frame in the shared data is the check."""

import logging

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from imaging.fits_reader import read_frame
from tests.conftest import REAL_DATA

RAW_CCD = REAL_DATA / "raw-ccd" / "a8280271.fits"
SKY_ADU = 500.0


def raw_frame(path, biassec="[1:10,1:100]", trimsec="[21:120,1:100]"):
    """120 columns: a 10-column overscan, 10 prescan columns, then 100 exposed, with a bias
    that drifts from 1000 to 1100 ADU down the rows and one star at exposed (x, y) = (40, 60)."""
    rows = np.arange(100, dtype=np.float32)[:, None]
    data = np.zeros((100, 120), dtype=np.float32) + 1000.0 + rows
    data[:, 20:] += SKY_ADU
    data[59, 59] += 5000.0  # the star, exposed column 40 (1-based) is array column 59
    header = fits.Header()
    header["BIASSEC"] = biassec
    header["TRIMSEC"] = trimsec
    header["SATURATE"] = 60000.0
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, -30.0]
    wcs.wcs.crpix = [60.0, 60.0]  # the star's pixel in the raw frame
    wcs.wcs.cdelt = [-1.0 / 3600, 1.0 / 3600]
    header.update(wcs.to_header())
    fits.PrimaryHDU(data, header).writeto(path)
    return path


def test_each_rows_bias_is_taken_off_and_the_overscan_cut_away(tmp_path):
    frame = read_frame(raw_frame(tmp_path / "raw.fits"))

    assert frame.data.shape == (100, 100)
    assert np.allclose(np.delete(frame.data.ravel(), 59 * 100 + 39), SKY_ADU)
    assert frame.data[59, 39] == pytest.approx(SKY_ADU + 5000.0)
    assert frame.saturation_adu == pytest.approx(60000.0 - 1049.5, abs=1.0)
    assert frame.wcs is not None
    star_x, star_y = frame.wcs.all_world2pix([[150.0, -30.0]], 1)[0]
    assert (star_x, star_y) == pytest.approx((40.0, 60.0))
    assert "BIASSEC" not in frame.header and frame.header["OVSCSUB"] == pytest.approx(1049.5)


def test_a_section_outside_the_image_leaves_the_frame_as_it_is(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        frame = read_frame(raw_frame(tmp_path / "raw.fits", biassec="[1:10,1:500]"))

    assert frame.data.shape == (100, 120)
    assert "BIASSEC" in caplog.text and "outside" in caplog.text


def test_the_real_raw_frame_is_read_without_its_overscan():
    raw = fits.getdata(RAW_CCD).astype(np.float32)

    frame = read_frame(RAW_CCD)

    assert frame.data.shape == (520, 512)
    overscan = float(np.median(raw[:, 3:13]))
    assert frame.header["OVSCSUB"] == pytest.approx(overscan)
    exposed = raw[:, 16:528]
    assert float(np.median(frame.data)) == pytest.approx(
        float(np.median(exposed)) - overscan, abs=2
    )
