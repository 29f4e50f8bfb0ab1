"""Errors of the resource checks (R1-R4): one line naming the instance and the fix."""

from __future__ import annotations

from components.errors import DaemonUnavailableError, TwinlabError

__all__ = [
    "BudgetError",
    "CloneError",
    "DaemonUnavailableError",
    "InstanceNotFoundError",
    "InstanceNotRunningError",
    "ReadinessTimeoutError",
    "ResourceCheckError",
]


class ResourceCheckError(TwinlabError):
    """Base of the resource checks' errors."""


class InstanceNotFoundError(ResourceCheckError):
    """The deployed container or domain does not exist."""


class InstanceNotRunningError(ResourceCheckError):
    """The deployed container or domain exists but is stopped."""


class CloneError(ResourceCheckError):
    """A clone could not be created or started."""


class ReadinessTimeoutError(ResourceCheckError):
    """A clone gave no HTTP 200 within its timeout."""


class BudgetError(ResourceCheckError):
    """The density budget does not fit the per-instance limit or the host's free memory."""
