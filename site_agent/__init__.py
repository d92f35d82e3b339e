"""The service at a telescope: watching the camera's folder, running each frame through the
pixel science of `imaging` as pipeline stages, publishing over its own nats-server, the search
backlog, commands and follow-ups. Imports `protos`, `fleetbus` and `imaging`, never
`coordinator` or `training`."""

__version__ = "0.1.0"
