"""Follow-up scheduling: the sky seen from a site, small observing constraints, a scorer, the
planner that picks a site and time, and the dispatcher that sends and tracks requests."""
