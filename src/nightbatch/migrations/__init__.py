"""Alembic migrations for nightbatch's database, applied by :mod:`nightbatch.db.migrate`."""
