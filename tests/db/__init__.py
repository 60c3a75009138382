"""Tests of nightbatch.db."""
