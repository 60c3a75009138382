"""Prefect flows: thin wiring of nightbatch's core steps into tasks and flows. No business logic here."""
