"""Polling open batches and ingesting their results into the database and the object store."""
