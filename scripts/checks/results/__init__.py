"""What a run produces: samples, their statistics, verdicts per claim, and the report."""
