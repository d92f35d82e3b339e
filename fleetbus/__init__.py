"""Bus plumbing every service shares: the embedded nats-server, connecting, publishing with
stable ids, stream creation from `protos`, and the base of every service's settings.

Imports `protos`, nats-py and the standard library; `site_agent` and `coordinator` may import it.
"""
