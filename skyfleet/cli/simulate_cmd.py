"""`skyfleet simulate`: write simulated FITS frames."""

from skyfleet.cli.not_built import not_built


def simulate() -> None:
    """Write simulated telescope frames with known conditions and labels."""
    not_built("The sky simulator", 3)
