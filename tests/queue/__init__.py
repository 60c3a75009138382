"""Tests of nightbatch.queue."""
