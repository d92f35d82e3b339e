"""The centre of the fleet: aggregation, candidate fusion, follow-up scheduling, persistence and
the ops console. Imports `protos` (and `fleetbus`), never `site_agent` or `training`."""
