"""The constants of a Gaussian that the pixel measurements share, named once.

Seeing, PSF matching, detection and photometry describe a star by its FWHM and noise by a robust
scatter; both convert to a Gaussian's sigma with these factors.
"""

FWHM_PER_SIGMA = 2.3548
"""A Gaussian's full width at half maximum in units of its sigma: 2 sqrt(2 ln 2) = 2.35482, to
the five digits every measurement here has always used."""

MAD_TO_SIGMA = 1.4826
"""Sigma of Gaussian noise per unit of its median absolute deviation (1 / the normal
distribution's 0.75 quantile): a scatter that stars and cosmic rays do not inflate."""
