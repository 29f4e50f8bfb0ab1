"""Pulumi entry point (Pulumi.yaml `main: stacks/`); the program lives in components.stack."""

from components.stack import declare

declare()
