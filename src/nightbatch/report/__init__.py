"""Cost per task, cache hit rate and savings, computed from the usage the API returned."""
