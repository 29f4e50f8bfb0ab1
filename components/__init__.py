"""Pulumi components of twinlab: one app spec, two deployments that take it."""
