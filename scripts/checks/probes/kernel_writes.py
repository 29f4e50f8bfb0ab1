"""Probes that change kernel state (I2, I3), harmlessly and undone: can root inside a target load
a kernel module or write a global sysctl, and does the change reach the host's kernel?

- Module: `modprobe dummy numdummies=0` (creates no interface), checked in the target's and the
  host's /proc/modules while loaded, then `modprobe -r dummy` (only if this probe loaded it).
  Without modprobe or the module file, init_module(2) with an empty image asks the kernel for
  permission only, loading nothing: EPERM means refused, ENOEXEC/EINVAL means permitted, ENOSYS
  means the kernel has no module support. A permitted load from a target on the host's kernel
  (same boot id) is reported as reaching the host, marked as inferred.
- Sysctl: kernel.printk_ratelimit_burst is global (not namespaced), so an allowed write lands in
  whichever kernel the target runs on. It is raised by one, the host's value read while the
  change is in place, then restored in the target and, if it changed there, on the host.
run_isolation probes targets one after another, so no two probes race on the host's sysctl.
"""

from __future__ import annotations

import shlex

from scripts.checks.parsers import proc
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import ISOLATION, Metric, Reading, to_sample
from scripts.checks.probes.shell import BOOT_ID, MODULES, optional, run_sections
from scripts.checks.results.samples import Sample, Value
from scripts.checks.targets.target import CommandResult, Target

METRICS = {
    "can_load_kernel_module": Metric("", ISOLATION),
    "module_load_reached_host": Metric("", ISOLATION),
    "can_write_sysctl": Metric("", ISOLATION),
    "sysctl_write_reached_host": Metric("", ISOLATION),
}

MODULE = "dummy"
SYSCTL_NAME = "kernel.printk_ratelimit_burst"
SYSCTL_PATH = "/proc/sys/kernel/printk_ratelimit_burst"
# init_module(NULL, 0, "") by syscall number: the kernel checks the caller's right to load
# modules before it looks at the (empty, hence invalid) image.
INIT_MODULE_TEST = """
import ctypes, errno, os
number = {"x86_64": 175, "aarch64": 105}.get(os.uname().machine)
if number is None:
    raise SystemExit("unsupported architecture " + os.uname().machine)
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.syscall(number, None, ctypes.c_ulong(0), b"")
print(errno.errorcode.get(ctypes.get_errno(), "E?") if rc != 0 else "LOADED")
"""
PERMITTED = {"ENOEXEC", "EINVAL", "EFAULT", "EBADMSG", "LOADED"}


def first_line(result: CommandResult) -> str:
    text = (result.stderr or result.stdout).strip()
    return text.splitlines()[0][:160] if text else f"rc {result.rc}"


def init_module_verdict(answer: str) -> tuple[bool, str, bool]:
    """(can_load, detail, inconclusive) from the errno name INIT_MODULE_TEST printed."""
    if answer in PERMITTED:
        return True, f"init_module permitted (empty image rejected with {answer})", False
    if answer == "EPERM":
        return False, "init_module refused with EPERM", False
    if answer == "ENOSYS":
        return False, "the kernel has no module support (ENOSYS)", False
    return False, f"init_module test gave {answer!r}", True


def module_reached_host(before: frozenset[str] | None, after: frozenset[str] | None) -> bool:
    return after is not None and MODULE in after and (before is None or MODULE not in before)


def read_modules(target: Target) -> frozenset[str] | None:
    text = optional(run_sections(target, {"modules": MODULES}), "modules")
    return None if text is None else proc.module_names(text)


def modprobe_load(target: Target, baseline: HostBaseline) -> list[Reading] | None:
    """Load and unload the module for real; None when modprobe cannot find it."""
    loaded = target.run(f"modprobe {MODULE} numdummies=0", root=True)
    unloaded: CommandResult | None = None
    try:
        inside_after = read_modules(target)
        host_after = read_modules(baseline.host)
    finally:
        if loaded.ok:
            unloaded = target.run(f"modprobe -r {MODULE}", root=True)
    if not loaded.ok and "not found" in first_line(loaded):
        return None
    can_load = loaded.ok and inside_after is not None and MODULE in inside_after
    metadata: dict[str, Value] = {
        "method": f"modprobe {MODULE}",
        "detail": "loaded" if can_load else first_line(loaded),
        "undone": unloaded is None or unloaded.ok,
    }
    reached = module_reached_host(baseline.module_names, host_after)
    return [
        Reading("can_load_kernel_module", can_load, metadata),
        Reading("module_load_reached_host", reached, {"method": f"modprobe {MODULE}"}),
    ]


def permission_test(target: Target, shares_host_kernel: bool) -> list[Reading]:
    answer = target.run(f"python3 -c {shlex.quote(INIT_MODULE_TEST)}", root=True)
    can_load, detail, inconclusive = init_module_verdict(
        answer.stdout.strip() or first_line(answer)
    )
    metadata: dict[str, Value] = {"method": "init_module permission test", "detail": detail}
    if inconclusive:
        metadata["inconclusive"] = True
    # Nothing was loaded; a permitted load would land in the kernel the target runs on.
    reached = can_load and shares_host_kernel
    basis = "inferred: load permitted and the kernel is the host's" if reached else "nothing loaded"
    return [
        Reading("can_load_kernel_module", can_load, metadata),
        Reading(
            "module_load_reached_host",
            reached,
            {"method": "init_module permission test", "basis": basis},
        ),
    ]


def module_load(target: Target, baseline: HostBaseline) -> list[Sample]:
    state = run_sections(
        target,
        {
            "modprobe": "command -v modprobe",
            "modules": MODULES,
            "python": "command -v python3",
            "boot_id": BOOT_ID,
        },
    )
    modules = optional(state, "modules")
    already_loaded = modules is not None and MODULE in proc.module_names(modules)
    readings = None
    if state["modprobe"].ok and modules is not None and not already_loaded:
        readings = modprobe_load(target, baseline)
    if readings is None and state["python"].ok:
        readings = permission_test(target, state["boot_id"].value == baseline.boot_id)
    if readings is None:
        reason = "neither modprobe nor python3 in the target"
        unknown: dict[str, Value] = {"method": "none", "detail": reason, "inconclusive": True}
        readings = [
            Reading("can_load_kernel_module", False, unknown),
            Reading("module_load_reached_host", False, unknown),
        ]
    return [to_sample(reading, target, "module_load") for reading in readings]


def read_sysctl(target: Target) -> int | None:
    result = target.run(f"cat {SYSCTL_PATH}", root=True)
    return int(result.stdout.strip()) if result.ok else None


def write_sysctl(target: Target, value: int) -> CommandResult:
    return target.run(f"echo {value} > {SYSCTL_PATH}", root=True)


def sysctl_write(target: Target, baseline: HostBaseline) -> list[Sample]:
    host = baseline.host
    inside_before, host_before = read_sysctl(target), read_sysctl(host)
    if inside_before is None or host_before is None:
        unknown: dict[str, Value] = {"sysctl": SYSCTL_NAME, "inconclusive": True}
        readings = [
            Reading("can_write_sysctl", False, unknown),
            Reading("sysctl_write_reached_host", False, unknown),
        ]
        return [to_sample(reading, target, "sysctl_write") for reading in readings]
    changed = inside_before + 1
    written = write_sysctl(target, changed)
    try:
        inside_after, host_after = read_sysctl(target), read_sysctl(host)
    finally:
        if written.ok:
            write_sysctl(target, inside_before)
        if read_sysctl(host) != host_before:
            write_sysctl(host, host_before)
    metadata: dict[str, Value] = {
        "sysctl": SYSCTL_NAME,
        "detail": "written" if written.ok else first_line(written),
        "undone": read_sysctl(target) == inside_before and read_sysctl(host) == host_before,
    }
    readings = [
        Reading("can_write_sysctl", written.ok and inside_after == changed, metadata),
        Reading(
            "sysctl_write_reached_host",
            host_after == changed and host_after != host_before,
            {"sysctl": SYSCTL_NAME},
        ),
    ]
    return [to_sample(reading, target, "sysctl_write") for reading in readings]


STATE_CHANGING_PROBES = (module_load, sysctl_write)
