"""The chaos suite: fault scenarios with real processes, each from a clean state, counted by an
independent counter (`make chaos`; its short form runs in `make test`).

A scenario's fleet is a hub nats-server that lets in only the fleet's identities, a site agent
process with its own leaf nats-server linked to the hub through a TCP proxy that can be cut,
the coordinator process on SQLite or PostgreSQL, and a camera writing frames into the site's
folder throughout. Modules:

- `knobs`: the timings (fault length, camera cadence, bursts);
- `camera`: the frames and the camera that writes them;
- `proxy`: the leaf link that a scenario severs and restores;
- `fleet`: one scenario's fleet, started from nothing and stopped after it;
- `strike`, `faults_bus`, `faults_sites`, `scenarios`: the faults and the scenarios;
- `counter`: the independent count (the camera's files, the hub's `FLEET` stream, the database);
- `suite`: running scenarios and printing the table.
"""
