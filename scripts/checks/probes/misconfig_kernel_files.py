"""Writable kernel escape files (CIS 5.5: what --privileged or systempaths=unconfined expose):
the cgroup v1 release_agent, /proc/sys/kernel/core_pattern, /proc/sys/kernel/modprobe and
/sys/kernel/uevent_helper each name a program the kernel runs as root on the host when an
event fires; writing one is a known container escape.

Read, without changing anything: each file visible in the target is opened for writing and
closed without a write (open() checks the mount's read-only flag and the file's permission,
which is where Docker's read-only /proc/sys and masked paths stop it). The kernel checks one
more thing at write time for release_agent: CAP_SYS_ADMIN in the initial user namespace, so
release_agent counts only when CapEff holds SYS_ADMIN and the uid map is the identity. In a VM
the files belong to the guest's kernel: guest-only.
"""

from __future__ import annotations

import shlex

from scripts.checks.parsers import proc
from scripts.checks.parsers.sections import Sections
from scripts.checks.probes import cis
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.finding import finding, not_measurable, scope
from scripts.checks.probes.shell import BOOT_ID, STATUS

METRIC = "kernel_escape_file_writable"
METRICS = {METRIC: Metric("", ISOLATION)}  # True = weak (findings.py)
FILES = ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/sys/kernel/uevent_helper")
OPEN_FOR_WRITE = r"""
import glob, os, sys
for path in sys.argv[1:] + sorted(glob.glob("/sys/fs/cgroup/*/release_agent")):
    if not os.path.exists(path):
        continue
    try:
        os.close(os.open(path, os.O_WRONLY))
        print("writable", path)
    except OSError as error:
        print("refused", path, error.strerror)
"""
SNIPPETS = {
    "open": f"python3 -c {shlex.quote(OPEN_FOR_WRITE)} {' '.join(FILES)}",
    "status": STATUS,
    "uid_map": "cat /proc/self/uid_map",
    "boot_id": BOOT_ID,
}


def open_results(text: str) -> tuple[list[str], list[str]]:
    writable: list[str] = []
    refused: list[str] = []
    for line in text.splitlines():
        state, _, rest = line.strip().partition(" ")
        if state == "writable" and rest:
            writable.append(rest.split()[0])
        elif state == "refused" and rest:
            refused.append(rest.split()[0])
    return writable, refused


def kernel_escape_files(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    where = scope(sections, baseline)
    if not sections["open"].ok:
        reason = "python3 missing in the target: files were not opened"
        return [not_measurable(METRIC, cis.PRIVILEGED, reason, where)]
    opened, refused = open_results(sections["open"].text)
    cap_eff = proc.cap_mask(proc.parse_status(sections["status"].text)["CapEff"])
    init_admin = bool(cap_eff >> proc.CAP_SYS_ADMIN & 1) and proc.is_identity_uid_map(
        sections["uid_map"].text
    )
    writable = [p for p in opened if not p.endswith("/release_agent") or init_admin]
    what = (
        f"root inside can write {', '.join(writable)}"
        if writable
        else "no kernel escape file writable"
    )
    extra = {"refused": ",".join(refused), "opened_for_write": ",".join(opened)}
    return [finding(METRIC, bool(writable), cis.PRIVILEGED, what, where, **extra)]


PROBE = ReadProbe("kernel_escape_files", SNIPPETS, kernel_escape_files)
