"""The misconfiguration probes (issue 11): the common container escapes, each tied to the CIS
Docker Benchmark v1.6.0 item that forbids it. All read-only; run with the other read probes."""

from __future__ import annotations

from types import ModuleType

from scripts.checks.probes import (
    misconfig_devices,
    misconfig_kernel_files,
    misconfig_limits,
    misconfig_lsm,
    misconfig_mounts,
    misconfig_namespaces,
    misconfig_seccomp,
    misconfig_socket,
    misconfig_user,
)
from scripts.checks.probes.base import ReadProbe

# Each module declares its METRICS and its PROBE (the probes' catalog collects the metrics).
MISCONFIG_MODULES: tuple[ModuleType, ...] = (
    misconfig_socket,
    misconfig_mounts,
    misconfig_namespaces,
    misconfig_devices,
    misconfig_lsm,
    misconfig_seccomp,
    misconfig_kernel_files,
    misconfig_limits,
    misconfig_user,
)
MISCONFIG_PROBES: tuple[ReadProbe, ...] = tuple(module.PROBE for module in MISCONFIG_MODULES)
