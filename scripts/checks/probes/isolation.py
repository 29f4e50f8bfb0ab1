"""Read-only isolation probes (I1, I2, I3): what root inside a target sees of the host kernel,
and what the kernel lets it do. Each compares with the HostBaseline where "host" matters.

"Host kernel state" means state of the kernel the host runs: a VM's own kernel log or module
list is not host state, so kernel_log_readable is true only when the readable log is the host
kernel's (same boot id), and kernel_modules_visible only when the module list equals the host's.
"""

from __future__ import annotations

from scripts.checks.parsers import proc
from scripts.checks.parsers.sections import Sections
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.misconfig import MISCONFIG_PROBES
from scripts.checks.probes.shell import BOOT_ID, MODULES, PROCESS_TABLE, STATUS, UPTIME, optional
from scripts.checks.results.samples import Value

METRICS = {
    "host_processes_visible": Metric("", ISOLATION),
    "host_kernel_state_visible": Metric("", ISOLATION),
    "kernel_modules_visible": Metric("", ISOLATION),
    "kernel_log_readable": Metric("", ISOLATION),
    "cap_eff": Metric("", ISOLATION),
    "cap_eff_count": Metric("capabilities", ISOLATION),
    "cap_full": Metric("", ISOLATION),
    "seccomp_mode": Metric("", ISOLATION),
    "no_new_privs": Metric("", ISOLATION),
    "userns_identity": Metric("", ISOLATION),
    "device_node_count": Metric("nodes", ISOLATION),
    "cgroup_memory_limit_mib": Metric("MiB", ISOLATION),
    "cgroup_cpu_limit": Metric("cpus", ISOLATION),
}

UPTIME_TOLERANCE_S = 2.0
# /dev entries that every Linux mount namespace gets anyway and that expose no hardware.
DEV_NODES = (
    r"find /dev \( -path /dev/pts -o -path /dev/shm -o -path /dev/mqueue \) -prune "
    r"-o \( -type c -o -type b \) -print"
)
DEVICE_EXAMPLES = 12


def host_processes(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    _, entries = proc.parse_process_table(sections["processes"].text)
    visible = any(entry.cmdline.startswith(baseline.marker_argv0 + " ") for entry in entries)
    metadata: dict[str, Value] = {
        "marker": baseline.marker_argv0,
        "visible_process_count": len(entries),
    }
    return [Reading("host_processes_visible", visible, metadata)]


def kernel_state_seen(
    boot_id: str, uptime: float, host_boot_id: str, host_uptime_now: float
) -> tuple[bool, dict[str, Value]]:
    delta = abs(uptime - host_uptime_now)
    same_boot = boot_id == host_boot_id
    metadata: dict[str, Value] = {"boot_id_equal": same_boot, "uptime_delta_s": round(delta, 3)}
    return same_boot or delta <= UPTIME_TOLERANCE_S, metadata


def host_kernel_state(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    visible, metadata = kernel_state_seen(
        sections["boot_id"].value,
        proc.uptime_s(sections["uptime"].text),
        baseline.boot_id,
        baseline.uptime_now_s(),
    )
    return [Reading("host_kernel_state_visible", visible, metadata)]


def kernel_modules(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    text = optional(sections, "modules")
    inside = None if text is None else proc.module_names(text)
    metadata: dict[str, Value] = {
        "readable": inside is not None,
        "module_count": -1 if inside is None else len(inside),
    }
    if baseline.module_names is None:
        # A host kernel without module support has no list to recognise: say so, not "hidden".
        metadata["inconclusive"] = True
        metadata["reason"] = "the host kernel has no module support (/proc/modules absent)"
        return [Reading("kernel_modules_visible", False, metadata)]
    return [Reading("kernel_modules_visible", inside == baseline.module_names, metadata)]


def kernel_log(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    dmesg, kmsg = sections["dmesg"], sections["kmsg"]
    readable = (dmesg.ok and bool(dmesg.value)) or (kmsg.ok and bool(kmsg.value))
    own_kernel = sections["boot_id"].value != baseline.boot_id
    source = "none" if not readable else ("own kernel" if own_kernel else "host kernel")
    dmesg_error = "" if dmesg.ok or not dmesg.value else dmesg.value.splitlines()[0][:160]
    metadata: dict[str, Value] = {
        "log_source": source,
        "dmesg_ok": dmesg.ok,
        "kmsg_ok": kmsg.ok,
        "dmesg_error": dmesg_error,
    }
    return [Reading("kernel_log_readable", source == "host kernel", metadata)]


def capabilities(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    status = proc.parse_status(sections["status"].text)
    cap_eff = proc.cap_mask(status["CapEff"])
    missing = proc.cap_names(baseline.cap_eff & ~proc.cap_powers(cap_eff))
    metadata: dict[str, Value] = {"host_cap_eff": f"{baseline.cap_eff:016x}"}
    return [
        Reading("cap_eff", f"{cap_eff:016x}"),
        Reading(
            "cap_eff_count", proc.cap_count(cap_eff), {"caps": ",".join(proc.cap_names(cap_eff))}
        ),
        Reading(
            "cap_full",
            proc.holds_all_caps(cap_eff, baseline.cap_eff),
            {**metadata, "missing_vs_host": ",".join(missing)},
        ),
    ]


def seccomp(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    status = proc.parse_status(sections["status"].text)
    if "Seccomp" not in status:  # gVisor's /proc: the Sentry's view, no seccomp line
        reason = "the target's /proc/self/status has no Seccomp line (an application kernel)"
        return [Reading("seccomp_mode", "inconclusive", {"inconclusive": True, "reason": reason})]
    filters = int(status.get("Seccomp_filters", "0"))
    return [Reading("seccomp_mode", int(status["Seccomp"]), {"seccomp_filters": filters})]


def no_new_privs(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    status = proc.parse_status(sections["status"].text)
    if "NoNewPrivs" not in status:  # gVisor's /proc has no such line
        reason = "the target's /proc/self/status has no NoNewPrivs line (an application kernel)"
        return [Reading("no_new_privs", "inconclusive", {"inconclusive": True, "reason": reason})]
    return [Reading("no_new_privs", status["NoNewPrivs"] == "1")]


def user_namespace(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    uid_map = sections["uid_map"].text
    mapping = " / ".join(" ".join(line.split()) for line in uid_map.splitlines() if line.strip())
    return [Reading("userns_identity", proc.is_identity_uid_map(uid_map), {"uid_map": mapping})]


def device_nodes(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    nodes = sorted(sections["devices"].text.split())
    examples = ",".join(node.removeprefix("/dev/") for node in nodes[:DEVICE_EXAMPLES])
    return [Reading("device_node_count", len(nodes), {"examples": examples})]


def cgroup_memory(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    total_mib = proc.meminfo_total_mib(sections["meminfo"].text)
    limits = [
        (proc.limit_bytes(optional(sections, "v2_max")), "cgroup v2 memory.max"),
        (proc.limit_bytes(optional(sections, "v1_limit")), "cgroup v1 memory.limit_in_bytes"),
    ]
    value, source = total_mib, "MemTotal"
    for limit, name in limits:
        if limit is not None and limit / proc.MIB < value:
            value, source = limit / proc.MIB, name
    metadata: dict[str, Value] = {"source": source, "mem_total_mib": round(total_mib, 1)}
    return [Reading("cgroup_memory_limit_mib", round(value, 1), metadata)]


def cgroup_cpu(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    online = float(sections["nproc"].value)
    quota = proc.cpu_quota_cpus(
        optional(sections, "v2_max"),
        optional(sections, "v1_quota"),
        optional(sections, "v1_period"),
    )
    value, source = online, "online CPUs (nproc)"
    if quota is not None and quota < online:
        value, source = quota, "CFS quota"
    return [Reading("cgroup_cpu_limit", value, {"source": source, "online_cpus": online})]


STATUS_ONLY = {"status": STATUS}
READ_ONLY_PROBES = (
    ReadProbe("host_processes", {"processes": PROCESS_TABLE}, host_processes),
    ReadProbe("host_kernel_state", {"boot_id": BOOT_ID, "uptime": UPTIME}, host_kernel_state),
    ReadProbe("kernel_modules", {"modules": MODULES}, kernel_modules),
    ReadProbe(
        "kernel_log",
        {
            "dmesg": 'out=$(dmesg 2>&1); rc=$?; printf "%s\\n" "$out" | head -n 1; exit $rc',
            "kmsg": "timeout 2 head -n 1 /dev/kmsg",
            "boot_id": BOOT_ID,
        },
        kernel_log,
    ),
    ReadProbe("capabilities", STATUS_ONLY, capabilities),
    ReadProbe("seccomp", STATUS_ONLY, seccomp),
    ReadProbe("no_new_privs", STATUS_ONLY, no_new_privs),
    ReadProbe("user_namespace", {"uid_map": "cat /proc/self/uid_map"}, user_namespace),
    ReadProbe("device_nodes", {"devices": DEV_NODES}, device_nodes),
    ReadProbe(
        "cgroup_memory",
        {
            "v2_max": "cat /sys/fs/cgroup/memory.max",
            "v1_limit": "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
            "meminfo": "cat /proc/meminfo",
        },
        cgroup_memory,
    ),
    ReadProbe(
        "cgroup_cpu",
        {
            "v2_max": "cat /sys/fs/cgroup/cpu.max",
            "v1_quota": "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "v1_period": "cat /sys/fs/cgroup/cpu/cpu.cfs_period_us",
            "nproc": "nproc",
        },
        cgroup_cpu,
    ),
    *MISCONFIG_PROBES,
)
