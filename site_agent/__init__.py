"""Everything that runs at a telescope: ingest, preprocessing, quality scoring, metrics,
transients and publishing. Imports `protos` (and `fleetbus`), never `coordinator` or `training`."""

__version__ = "0.1.0"
