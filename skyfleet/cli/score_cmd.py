"""`skyfleet score`: the quality verdict on FITS files."""

from skyfleet.cli.not_built import not_built


def score() -> None:
    """Score FITS frames: label, confidence, probabilities and image metrics."""
    not_built("Frame scoring", 3)
