"""Privileged device access (CIS 5.18 host devices exposed; all of them with 5.5 privileged):
block devices, /dev/mem, /dev/kmem, /dev/port or /dev/kmsg that root inside can open.

Read: every block device node under /dev and the listed character devices, each opened
read-only and non-blocking, then closed (nothing read or written: opening asks the device
cgroup and the capability checks, which is the question). The device cgroup v1 list is kept as
evidence ("a *:* rwm" is every device). In a VM the devices are the guest's own virtual
hardware: guest-only.
"""

from __future__ import annotations

import shlex

from scripts.checks.parsers.sections import Sections
from scripts.checks.probes import cis
from scripts.checks.probes.base import ReadProbe
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading
from scripts.checks.probes.finding import finding, not_measurable, scope
from scripts.checks.probes.shell import BOOT_ID

METRIC = "privileged_device_access"
METRICS = {METRIC: Metric("", ISOLATION)}  # True = weak (findings.py)
SENSITIVE_CHAR_DEVICES = ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg")
OPEN = r"""
import os, stat, sys
paths = list(sys.argv[1:])
for top, dirs, files in os.walk("/dev"):
    dirs[:] = [d for d in dirs if d not in ("pts", "shm", "mqueue")]
    for name in files:
        path = os.path.join(top, name)
        try:
            if stat.S_ISBLK(os.lstat(path).st_mode):
                paths.append(path)
        except OSError:
            pass
for path in paths:
    if not os.path.exists(path):
        continue
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        print("open", path)
    except OSError as error:
        print("denied", path, error.strerror)
"""
SNIPPETS = {
    "open": f"python3 -c {shlex.quote(OPEN)} {' '.join(SENSITIVE_CHAR_DEVICES)}",
    "devices_list": "cat /sys/fs/cgroup/devices/devices.list",
    "boot_id": BOOT_ID,
}


def opened(text: str) -> tuple[list[str], list[str]]:
    """(devices opened, devices refused)."""
    done: list[str] = []
    refused: list[str] = []
    for line in text.splitlines():
        state, _, rest = line.strip().partition(" ")
        if state == "open" and rest:
            done.append(rest.split()[0])
        elif state == "denied" and rest:
            refused.append(rest.split()[0])
    return done, refused


def device_access(sections: Sections, baseline: HostBaseline) -> list[Reading]:
    where = scope(sections, baseline)
    if not sections["open"].ok:
        reason = "python3 missing in the target: devices were not opened"
        return [not_measurable(METRIC, cis.HOST_DEVICES, reason, where)]
    done, refused = opened(sections["open"].text)
    devices_list = sections["devices_list"].value if sections["devices_list"].ok else ""
    what = f"root inside can open {', '.join(done)}" if done else "no listed device opens"
    extra = {"refused": ",".join(refused), "device_cgroup": devices_list.replace("\n", "; ")}
    return [finding(METRIC, bool(done), cis.HOST_DEVICES, what, where, **extra)]


PROBE = ReadProbe("device_access", SNIPPETS, device_access)
