"""Persistence of the coordinator: tables, engine, migrations, batch writes and read queries."""
