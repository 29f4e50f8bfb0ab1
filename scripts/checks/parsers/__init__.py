"""Pure functions from captured command output to values; tested on real captured text."""
