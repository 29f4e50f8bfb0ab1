"""Pulumi entry point (Pulumi.yaml `main: stacks/`); the program lives in components.stack."""

import warnings

# pulumi-docker 4.0.0 imports pkg_resources; its deprecation warning is noise in every run.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from components.stack import declare  # noqa: E402

declare()
