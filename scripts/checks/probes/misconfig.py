"""The misconfiguration probes (issue 11): the common container escapes, each tied to the CIS
Docker Benchmark v1.6.0 item that forbids it. All read-only; run with the other read probes."""

from __future__ import annotations

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

MISCONFIG_PROBES = (
    misconfig_socket.PROBE,
    misconfig_mounts.PROBE,
    misconfig_namespaces.PROBE,
    misconfig_devices.PROBE,
    misconfig_lsm.PROBE,
    misconfig_seccomp.PROBE,
    misconfig_kernel_files.PROBE,
    misconfig_limits.PROBE,
    misconfig_user.PROBE,
)
