"""Kernel and OS probes (A1, A2, U1): which kernel runs a target and how much OS it carries."""

from __future__ import annotations

from scripts.checks.parsers import proc
from scripts.checks.parsers.sections import Sections
from scripts.checks.parsers.virt import (
    VirtEvidence,
    container_kind,
    detect_virtualization,
    kernel_kind,
    vm_kind,
)
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import Metric, Reading
from scripts.checks.probes.shell import BOOT_ID, PROC_VERSION, PROCESS_TABLE, optional
from scripts.checks.results.samples import Value

# Kernel and OS facts (A1, A2, U1).
METRICS = {
    "kernel_release": Metric("", ("A1", "U1")),
    "boot_id": Metric("", ("A1",)),
    "same_kernel_as_host": Metric("", ("A1", "U1")),
    "same_boot_id_as_host": Metric("", ("A1", "I1", "I2")),
    "kernel_kind": Metric("", ("A1", "U1")),  # host, guest or application (gVisor)
    "virtualization": Metric("", ("A1",)),
    "pid1_command": Metric("", ("A2",)),
    "process_count": Metric("processes", ("A2",)),
    "init_system": Metric("", ("A2",)),
    "os_service_count": Metric("services", ("A2",)),
    "kernel_image_present": Metric("", ("A2",)),
    "package_count": Metric("packages", ("A2",)),
}

# Units of the app itself are not OS services; user@UID is the probe's own SSH login.
APP_UNIT_PREFIX = "twinlab"
PROBE_SESSION_UNIT_PREFIX = "user@"
# PID 1 names (comm) that are an init or service supervisor; anything else (the app) is "none".
KNOWN_INITS = {
    "systemd": "systemd",
    "init": "sysvinit",
    "runit": "runit",
    "openrc-init": "openrc",
    "s6-svscan": "s6",
    "tini": "tini",
    "docker-init": "tini",
    "dumb-init": "dumb-init",
}
KTHREADD = 2  # parent of every kernel thread, in the initial PID namespace only
LIST_LIMIT = 400  # characters of a list kept in metadata
# Where an application kernel (gVisor) gives itself away; read by two probes.
KERNEL_SIGN_SNIPPETS = {
    "kernel_log_head": "dmesg 2>/dev/null | head -n 1",
    "proc_version": PROC_VERSION,
}


def joined(items: list[str]) -> str:
    text = ", ".join(items)
    return text if len(text) <= LIST_LIMIT else text[: LIST_LIMIT - 3] + "..."


def kernel_sign(sections: Sections, name: str) -> str:
    """A kernel-sign section's text, "" if it failed; captures older than the snippet lack it."""
    section = sections.get(name)
    return section.value if section is not None and section.ok else ""


def kernel_signs(sections: Sections) -> VirtEvidence:
    return VirtEvidence(
        kernel_log_head=kernel_sign(sections, "kernel_log_head"),
        proc_version=kernel_sign(sections, "proc_version"),
    )


def kernel_identity(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    release, boot = sections["release"].value, sections["boot_id"]
    boot_id = boot.value if boot.ok else ""  # gVisor (2022) has no boot_id file
    host = {"host_kernel_release": baseline.kernel_release, "host_boot_id": baseline.boot_id}
    kind, reason = kernel_kind(kernel_signs(sections), boot_id, baseline.boot_id)
    return [
        Reading("kernel_release", release),
        Reading("boot_id", boot_id, {"readable": boot.ok}),
        Reading("same_kernel_as_host", release == baseline.kernel_release, host),
        Reading("same_boot_id_as_host", boot_id == baseline.boot_id, host),
        Reading("kernel_kind", kind, {"reason": reason}),
    ]


def virt_evidence(sections: Sections) -> VirtEvidence:
    flags_line = sections["cpu_flags"].text.partition(":")[2]
    env = sections["container_env"].value.partition("=")[2] if sections["container_env"].ok else ""
    signs = kernel_signs(sections)
    return VirtEvidence(
        pid1_cgroup=optional(sections, "cgroup") or "",
        container_env=env,
        dockerenv=sections["dockerenv"].ok,
        containerenv=sections["containerenv"].ok,
        cpu_flags=frozenset(flags_line.split()),
        dmi_vendor=(optional(sections, "dmi_vendor") or "").strip(),
        dmi_product=(optional(sections, "dmi_product") or "").strip(),
        clocksources=frozenset((optional(sections, "clocksources") or "").split()),
        hypervisor_type=(optional(sections, "hypervisor_type") or "").strip(),
        kernel_log_head=signs.kernel_log_head,
        proc_version=signs.proc_version,
    )


def virtualization(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    evidence = virt_evidence(sections)
    kind, reason = detect_virtualization(evidence)
    container, vm = container_kind(evidence), vm_kind(evidence)
    detect_virt = sections["systemd_detect_virt"]
    metadata = {
        "reason": reason,
        "container_kind": container[0] if container else "none",
        "vm_kind": vm[0] if vm else "none",
        # systemd-detect-virt exits 1 when it finds nothing but still prints "none".
        "systemd_detect_virt": detect_virt.value if detect_virt.rc in (0, 1) else "unavailable",
    }
    return [Reading("virtualization", kind, metadata)]


def processes(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    self_pid, entries = proc.parse_process_table(sections["processes"].text)
    others = proc.without_probe(entries, self_pid)
    pid1 = next((entry for entry in entries if entry.pid == 1), None)
    commands = sorted({entry.comm for entry in others})
    kernel_threads = sum(1 for entry in others if KTHREADD in (entry.pid, entry.ppid))
    metadata: dict[str, Value] = {"kernel_threads": kernel_threads, "commands": joined(commands)}
    return [
        Reading("pid1_command", pid1.command if pid1 else ""),
        Reading("process_count", len(others), metadata),
    ]


def init_system_name(pid1_comm: str, systemd_running: bool) -> str:
    if pid1_comm == "systemd" or (systemd_running and pid1_comm == "init"):
        return "systemd"
    return KNOWN_INITS.get(pid1_comm, "none")


def init_and_services(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    init = init_system_name(sections["pid1_comm"].value, sections["systemd_running"].ok)
    if init != "systemd":
        method = f"no service manager to ask (init: {init})"
        return [
            Reading("init_system", init),
            Reading("os_service_count", 0, {"method": method}),
        ]
    units = proc.running_service_units(sections["services"].text)
    os_units = [
        unit for unit in units if not unit.startswith((APP_UNIT_PREFIX, PROBE_SESSION_UNIT_PREFIX))
    ]
    metadata = {"method": "systemctl running services", "services": joined(os_units)}
    return [Reading("init_system", init), Reading("os_service_count", len(os_units), metadata)]


def kernel_image(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    paths = sections["kernel_files"].text.split()
    return [Reading("kernel_image_present", bool(paths), {"paths": joined(paths)})]


def packages(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    if sections["dpkg"].ok:
        count, manager = proc.installed_dpkg_count(sections["dpkg"].text), "dpkg"
    elif sections["rpm"].ok:
        count, manager = len(sections["rpm"].text.split()), "rpm"
    elif sections["apk"].ok:
        count, manager = len(sections["apk"].text.split()), "apk"
    else:
        count, manager = 0, "none"
    return [Reading("package_count", count, {"package_manager": manager})]


KERNEL_IDENTITY = ReadProbe(
    "kernel_identity",
    {"release": "uname -r", "boot_id": BOOT_ID, **KERNEL_SIGN_SNIPPETS},
    kernel_identity,
)
VIRTUALIZATION = ReadProbe(
    "virtualization",
    {
        "cgroup": "cat /proc/1/cgroup",
        "container_env": r"tr '\0' '\n' < /proc/1/environ | grep -m1 '^container='",
        "dockerenv": "test -e /.dockerenv",
        "containerenv": "test -e /run/.containerenv",
        "cpu_flags": "grep -m1 '^flags' /proc/cpuinfo",
        "dmi_vendor": "cat /sys/class/dmi/id/sys_vendor",
        "dmi_product": "cat /sys/class/dmi/id/product_name",
        "clocksources": "cat /sys/devices/system/clocksource/clocksource0/available_clocksource",
        "hypervisor_type": "cat /sys/hypervisor/type",
        "systemd_detect_virt": "systemd-detect-virt",
        **KERNEL_SIGN_SNIPPETS,
    },
    virtualization,
)
PROCESSES = ReadProbe("processes", {"processes": PROCESS_TABLE}, processes)
INIT_AND_SERVICES = ReadProbe(
    "init_and_services",
    {
        "pid1_comm": "cat /proc/1/comm",
        "systemd_running": "test -d /run/systemd/system",
        "services": "systemctl list-units --type=service --state=running --plain --no-legend "
        "--no-pager",
    },
    init_and_services,
)
KERNEL_IMAGE = ReadProbe(
    "kernel_image",
    {"kernel_files": 'for f in /boot/vmlinuz* /lib/modules/*; do [ -e "$f" ] && echo "$f"; done'},
    kernel_image,
)
PACKAGES = ReadProbe(
    "packages",
    {
        "dpkg": r"dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n'",
        "rpm": "rpm -qa",
        "apk": "apk info",
    },
    packages,
)

OS_PROBES = (KERNEL_IDENTITY, VIRTUALIZATION, PROCESSES, INIT_AND_SERVICES, KERNEL_IMAGE, PACKAGES)
