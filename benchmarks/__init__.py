"""nightbatch's speed and memory benchmarks: ``python -m benchmarks`` (``make bench``), see docs/benchmarks.md.

Each benchmark measures nightbatch against a naive baseline in the same run, and peak memory, each case
in a fresh interpreter. They are not tests: nothing here asserts a speed, only that the work was done.
"""
