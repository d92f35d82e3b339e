"""`skyfleet status`: the fleet summary in the terminal."""

from skyfleet.cli.not_built import not_built


def status() -> None:
    """Print the fleet summary: sites, quality, candidates, follow-ups."""
    not_built("The fleet status view", 6)
