"""Running probe snippets inside a target: one round trip, as root, output split by section."""

from __future__ import annotations

from collections.abc import Mapping

from scripts.checks.parsers.sections import Sections, sectioned_command, split_sections
from scripts.checks.targets.target import Target, TargetError

PROBE_TIMEOUT_S = 60.0

# Every process the probing shell can see: "self PID", then head's "==> /proc/PID/stat <=="
# and ".../cmdline" blocks. One head reads every file: a process per file costs seconds in a VM
# under software emulation.
PROCESS_TABLE = (
    'echo "self $$"; '
    "head -v -c 4096 /proc/[0-9]*/stat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"
)
BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
UPTIME = "cat /proc/uptime"
MODULES = "cat /proc/modules"
STATUS = "cat /proc/self/status"
# The namespaces the probing shell is in, one "NAME LINK" line each (the link names the
# namespace by inode: equal links on the same kernel are the same namespace).
NAMESPACES = (
    "for n in pid net ipc uts user cgroup; do "
    'printf "%s %s\\n" "$n" "$(readlink /proc/self/ns/$n)"; done'
)
MOUNTINFO = "cat /proc/self/mountinfo"
PROC_VERSION = "cat /proc/version"
# Which confining LSMs the kernel runs (securityfs' list when mounted, else the module flags).
LSM_SNIPPETS = {
    "lsm_list": "cat /sys/kernel/security/lsm",
    "apparmor": "cat /sys/module/apparmor/parameters/enabled",
    "selinux": "cat /sys/fs/selinux/enforce",
}
CONFINING_LSMS = ("apparmor", "selinux", "smack", "tomoyo")


class ProbeOutputError(TargetError):
    """A target answered, but not with what the probe needs (e.g. no sh, no /proc)."""


def run_sections(target: Target, snippets: Mapping[str, str]) -> Sections:
    result = target.run(sectioned_command(snippets), root=True, timeout_s=PROBE_TIMEOUT_S)
    sections = split_sections(result.stdout)
    missing = [name for name in snippets if name not in sections]
    if missing:
        detail = (result.stderr.strip() or result.stdout.strip())[-200:] or f"rc {result.rc}"
        raise ProbeOutputError(
            f"{target.url}: probe output lacks section(s) {missing} ({detail}); "
            "the target needs a POSIX sh and /proc"
        )
    return sections


def active_lsms(sections: Sections) -> tuple[str, ...]:
    """The confining LSMs a kernel runs, from the LSM_SNIPPETS sections."""
    listed = optional(sections, "lsm_list")
    if listed is not None:
        return tuple(name for name in listed.strip().split(",") if name in CONFINING_LSMS)
    found = []
    if (optional(sections, "apparmor") or "").strip() == "Y":
        found.append("apparmor")
    if optional(sections, "selinux") is not None:
        found.append("selinux")
    return tuple(found)


def optional(sections: Sections, name: str) -> str | None:
    """A section's text when its snippet succeeded, else None (missing file, no tool)."""
    section = sections[name]
    return section.text if section.ok else None
