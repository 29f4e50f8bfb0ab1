"""The CIS Docker Benchmark items the misconfiguration probes correspond to.

Numbers and titles are those of CIS Docker Benchmark v1.6.0 as docker/docker-bench-security
implements it (its README: "based on the CIS Docker Benchmark v1.6.0"; tests/4_container_images.sh
and tests/5_container_runtime.sh at commit ff26d67, 2024-10-21). Older versions number the
runtime section differently (v1.2: 5.31 Docker socket, 5.21 seccomp), so cite the version too.
"""

from __future__ import annotations

from dataclasses import dataclass

CIS_VERSION = "CIS Docker Benchmark v1.6.0"


@dataclass(frozen=True)
class CisItem:
    number: str
    title: str


USER = CisItem("4.1", "Ensure that a user for the container has been created")
APPARMOR = CisItem("5.2", "Ensure that, if applicable, an AppArmor Profile is enabled")
SELINUX = CisItem("5.3", "Ensure that, if applicable, SELinux security options are set")
PRIVILEGED = CisItem("5.5", "Ensure that privileged containers are not used")
SENSITIVE_MOUNTS = CisItem(
    "5.6", "Ensure sensitive host system directories are not mounted on containers"
)
HOST_NETWORK = CisItem("5.10", "Ensure that the host's network namespace is not shared")
HOST_PID = CisItem("5.16", "Ensure that the host's process namespace is not shared")
HOST_IPC = CisItem("5.17", "Ensure that the host's IPC namespace is not shared")
HOST_DEVICES = CisItem("5.18", "Ensure that host devices are not directly exposed to containers")
HOST_UTS = CisItem("5.21", "Ensure that the host's UTS namespace is not shared")
SECCOMP = CisItem("5.22", "Ensure the default seccomp profile is not Disabled")
PIDS_LIMIT = CisItem("5.29", "Ensure that the PIDs cgroup limit is used")
HOST_USERNS = CisItem("5.31", "Ensure that the host's user namespaces are not shared")
DOCKER_SOCKET = CisItem(
    "5.32", "Ensure that the Docker socket is not mounted inside any containers"
)
