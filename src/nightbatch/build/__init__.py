"""Turning claimed tasks into Message Batches requests: trim context, render, cache the stable prefix."""
