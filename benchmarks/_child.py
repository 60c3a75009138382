"""``python -m benchmarks._child '<json spec>'``: one measured case in a fresh interpreter (see ``_harness``)."""

import sys

from benchmarks._harness import child_main

if __name__ == "__main__":
    child_main(sys.argv[1])
