"""The probe metrics (names, units, claim IDs of scripts/checks/claims/) and how a reading
becomes a Sample.

Probes return Readings (metric, value, metadata); unit and claims come from this one table, so
no probe can disagree with the metric contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.target import Target

ISOLATION = ("I1", "I2", "I3")

METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    # Kernel and OS (A1, A2, U1)
    "kernel_release": ("", ("A1", "U1")),
    "boot_id": ("", ("A1",)),
    "same_kernel_as_host": ("", ("A1", "U1")),
    "same_boot_id_as_host": ("", ("A1", "I1", "I2")),
    "kernel_kind": ("", ("A1", "U1")),  # host, guest or application (gVisor)
    "virtualization": ("", ("A1",)),
    "pid1_command": ("", ("A2",)),
    "process_count": ("processes", ("A2",)),
    "init_system": ("", ("A2",)),
    "os_service_count": ("services", ("A2",)),
    "kernel_image_present": ("", ("A2",)),
    "package_count": ("packages", ("A2",)),
    # Isolation (I1, I2, I3)
    "host_processes_visible": ("", ISOLATION),
    "host_kernel_state_visible": ("", ISOLATION),
    "kernel_modules_visible": ("", ISOLATION),
    "kernel_log_readable": ("", ISOLATION),
    "cap_eff": ("", ISOLATION),
    "cap_eff_count": ("capabilities", ISOLATION),
    "cap_full": ("", ISOLATION),
    "seccomp_mode": ("", ISOLATION),
    "no_new_privs": ("", ISOLATION),
    "userns_identity": ("", ISOLATION),
    "device_node_count": ("nodes", ISOLATION),
    "can_load_kernel_module": ("", ISOLATION),
    "module_load_reached_host": ("", ISOLATION),
    "can_write_sysctl": ("", ISOLATION),
    "sysctl_write_reached_host": ("", ISOLATION),
    "cgroup_memory_limit_mib": ("MiB", ISOLATION),
    "cgroup_cpu_limit": ("cpus", ISOLATION),
    # Misconfiguration findings (issue 11): True = weak, False = not, "inconclusive" = this host
    # cannot show it; metadata names the CIS item and the scope (findings.py).
    "runtime_socket_reachable": ("", ISOLATION),
    "sensitive_host_path_mounted": ("", ISOLATION),
    "host_pid_namespace_shared": ("", ISOLATION),
    "host_net_namespace_shared": ("", ISOLATION),
    "host_ipc_namespace_shared": ("", ISOLATION),
    "host_uts_namespace_shared": ("", ISOLATION),
    "privileged_device_access": ("", ISOLATION),
    "lsm_unconfined": ("", ISOLATION),
    "seccomp_unconfined": ("", ISOLATION),
    "dangerous_syscalls_blocked": ("syscalls", ISOLATION),
    "kernel_escape_file_writable": ("", ISOLATION),
    "pids_unlimited": ("", ISOLATION),
    "root_without_userns": ("", ISOLATION),
    # Host-kernel attack surface (issue 11 item 4): distinct host kernel functions reached.
    "host_kernel_functions_reached": ("functions", ISOLATION),
}


@dataclass(frozen=True)
class Reading:
    metric: str
    value: Value
    metadata: Mapping[str, Value] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown probe metric {self.metric!r}; add it to METRICS")


def to_sample(reading: Reading, target: Target, probe: str) -> Sample:
    unit, claims = METRICS[reading.metric]
    metadata: dict[str, Value] = {"probe": probe, **target.label.metadata(), **reading.metadata}
    return Sample(
        reading.metric,
        reading.value,
        unit,
        target.url,
        target.variant,
        claims,
        metadata,
        kind=target.kind,
    )
