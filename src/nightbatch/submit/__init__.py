"""Packing built requests into batches and submitting each exactly once."""
