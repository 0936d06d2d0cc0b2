"""The job service: the one place that owns the rules of a job's life."""
