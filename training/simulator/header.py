"""The FITS header of a simulated frame: what a robotic telescope's camera writes, plus the truth.

Observatory keywords follow common practice (DATE-OBS in UTC, EXPTIME, FILTER, TELESCOP,
INSTRUME, OBSERVAT, SITELAT/SITELONG, GAIN, RDNOISE, SATURATE, AIRMASS, OBJECT, RA/DEC of the
pointing), the WCS is a standard TAN solution, and the simulated truth goes in `SIM*` keywords
so a frame read on its own still says what it is.
"""

import astropy.units as u
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from training.simulator.pointing import local_sidereal_time_deg
from training.simulator.truth import FrameTruth


def field_name(ra_deg: float, dec_deg: float) -> str:
    """An IAU-style name of the pointing, like `J100029+023000`."""
    ra = Angle(ra_deg, u.deg).to_string(unit=u.hour, sep="", precision=0, pad=True)
    dec = Angle(dec_deg, u.deg).to_string(sep="", precision=0, pad=True, alwayssign=True)
    return f"J{ra}{dec}"


def frame_header(truth: FrameTruth, wcs: WCS, object_name: str | None = None) -> fits.Header:
    """The header of a frame: observatory keywords, its WCS and the `SIM*` truth."""
    camera, conditions, start = truth.camera, truth.conditions, Time(truth.date_obs)
    lst = Angle(local_sidereal_time_deg(truth.date_obs, truth.site.lon_deg), u.deg)
    header = fits.Header()
    cards: list[tuple[str, object, str]] = [
        ("IMAGETYP", "LIGHT", "Type of exposure"),
        ("OBJECT", object_name or field_name(truth.ra_deg, truth.dec_deg), "Target"),
        ("DATE-OBS", start.utc.isot, "[UTC] Start of exposure"),
        ("TIMESYS", "UTC", "Time scale of DATE-OBS"),
        ("MJD-OBS", round(float(start.utc.mjd), 8), "[d] Modified Julian Date of start"),
        ("EXPTIME", camera.exptime_s, "[s] Exposure time"),
        ("FILTER", camera.filter_name, "Filter"),
        ("TELESCOP", camera.telescope, "Telescope"),
        ("INSTRUME", camera.instrument, "Camera"),
        ("OBSERVAT", truth.site_name, "Observatory site"),
        ("SITELAT", truth.site.lat_deg, "[deg] Site latitude"),
        ("SITELONG", truth.site.lon_deg, "[deg] Site east longitude"),
        ("SITEELEV", truth.site.height_m, "[m] Site elevation"),
        (
            "RA",
            Angle(truth.ra_deg, u.deg).to_string(u.hour, sep=":", precision=2, pad=True),
            "Telescope pointing RA (ICRS)",
        ),
        (
            "DEC",
            Angle(truth.dec_deg, u.deg).to_string(sep=":", precision=1, pad=True, alwayssign=True),
            "Pointing Dec (ICRS)",
        ),
        ("LST", lst.to_string(u.hour, sep=":", precision=0, pad=True), "Local sidereal time"),
        ("ALTITUDE", round(truth.altitude_deg, 3), "[deg] Altitude of the pointing"),
        ("AIRMASS", round(truth.airmass, 4), "Air mass at start"),
        ("GAIN", camera.gain_e_per_adu, "[e-/ADU] Detector gain"),
        ("RDNOISE", camera.read_noise_e, "[e-] Read noise"),
        ("SATURATE", camera.saturation_adu, "[ADU] Saturation level"),
        ("PIXSCALE", camera.pixel_scale_arcsec, "[arcsec/px] Pixel scale"),
        ("XBINNING", 1, "Binning in x"),
        ("YBINNING", 1, "Binning in y"),
        ("BUNIT", "adu", "Pixel values are raw ADU"),
    ]
    truth_cards: list[tuple[str, object, str]] = [
        ("SIMULATD", True, "Frame simulated by skyfleet"),
        ("SIMLABEL", truth.label.value, "True quality label"),
        ("SIMSEEIN", round(conditions.seeing_fwhm_arcsec, 4), "[arcsec] True seeing FWHM"),
        ("SIMBETA", round(conditions.moffat_beta, 3), "Moffat beta of the PSF"),
        ("SIMTRANS", round(conditions.transparency, 4), "True mean transparency"),
        ("SIMTRAIL", round(conditions.trailing_arcsec, 4), "[arcsec] Tracking trail length"),
        ("SIMTRLPA", round(conditions.trail_angle_deg, 2), "[deg] Trail angle from +x to +y"),
        ("SIMFOCUS", round(conditions.defocus_arcsec, 4), "[arcsec] Defocus donut diameter"),
        ("SIMSKYMG", round(conditions.sky_mag_arcsec2, 3), "[mag/arcsec2] Sky brightness"),
        ("SIMSKYE", round(truth.sky_e_per_px, 2), "[e-] Sky per pixel at centre"),
        ("SIMSATTR", conditions.satellite_trails, "Satellite trails"),
        ("SIMSATFR", round(truth.saturated_fraction, 6), "Fraction of saturated pixels"),
        ("SIMNSTAR", truth.stars_in_frame, "Catalogue stars in the frame"),
        ("SIMNCR", truth.cosmic_rays, "Pixels hit by cosmic rays"),
        ("SIMNTRAN", len(truth.transients), "Injected transients"),
        ("SIMZP", camera.zero_point_mag, "[mag] Zero point, 1 e-/s at airmass 1"),
        ("SIMBIAS", camera.bias_adu, "[ADU] Bias level"),
    ]
    for key, value, comment in cards:
        header[key] = (value, comment)
    header.extend(wcs.to_header(), update=True)
    for key, value, comment in truth_cards:
        header[key] = (value, comment)
    return header
