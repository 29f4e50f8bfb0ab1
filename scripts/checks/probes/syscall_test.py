"""Dangerous syscalls called with arguments the kernel rejects before doing anything.

Each call below fails on the kernel's own argument check (EFAULT, EINVAL, EBADF, ESRCH,
EOPNOTSUPP) before any capability check on a 6.x kernel, so nothing is mounted, loaded, traced or
changed. A seccomp filter answers before the kernel looks at the arguments; Docker's filter
answers EPERM. So EPERM here means "blocked by the filter", as amicontained reads it. The same
script runs on the host as calibration: a syscall that the host's root also gets EPERM or ENOSYS
for is not counted (that kernel refuses it itself, or lacks it). A syscall whose kernel code
checks a capability before its arguments would make a capability-less caller's EPERM look like a
filter: such calls are not in the list. pivot_root, move_mount, fsopen and swapon were, and a
capability-less container without seccomp got EPERM from them (the control-seccomp-unconfined
capture); a unit test keeps every listed call free of that on this kernel.

x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl); other architectures print "arch".
"""

from __future__ import annotations

import shlex

# name: (number, arguments); pointers None, flags chosen invalid. Every entry was checked on this
# machine's kernel (6.18), as root and as a capability-less root, to fail with the errno noted.
SCRIPT = r"""
import ctypes, errno, os
if os.uname().machine != "x86_64":
    print("arch " + os.uname().machine)
    raise SystemExit(0)
U, UL = ctypes.c_uint, ctypes.c_ulong
CALLS = {
    "mount": (165, None, None, None, UL(0), None),            # EFAULT: NULL target
    "umount2": (166, None, 0x100),                            # EINVAL: unknown flag
    "unshare": (272, 0x1000),                                 # EINVAL: CLONE_PIDFD
    "setns": (308, -1, 0),                                    # EBADF
    "open_tree": (428, -1, None, U(0x80000000)),              # EINVAL
    "mount_setattr": (442, -1, None, U(0x80000000), None, 0), # EINVAL
    "chroot": (161, None),                                    # EFAULT
    "bpf": (321, -1, None, 0),                                # EINVAL: unknown command
    "perf_event_open": (298, None, 0, -1, -1, UL(0xffffffff)),# EINVAL: flags
    "userfaultfd": (323, 0x3),                                # EINVAL: flags
    "keyctl": (250, 0x7fff),                                  # EOPNOTSUPP
    "add_key": (248, None, None, None, 0, 0),                 # EFAULT
    "request_key": (249, None, None, None, 0),                # EFAULT
    "quotactl": (179, 0xff, None, 0, None),                   # EINVAL: quota type
    "clock_settime": (227, 100, None),                        # EINVAL: clock id
    "clock_adjtime": (305, 100, None),                        # EFAULT
    "name_to_handle_at": (303, -1, None, None, None, -1),     # EINVAL: flags
    "ptrace": (101, -1, 0, None, None),                       # ESRCH: pid 0
    "kcmp": (312, 0, 0, -1, 0, 0),                            # ESRCH
    "process_vm_readv": (310, 0, None, 0, None, 0, 1),        # EINVAL: flags
}
libc = ctypes.CDLL(None, use_errno=True)
for name, (number, *args) in CALLS.items():
    ctypes.set_errno(0)
    rc = libc.syscall(number, *args)
    print(name, errno.errorcode.get(ctypes.get_errno(), "E?") if rc == -1 else "OK")
"""
SNIPPET = f"python3 -c {shlex.quote(SCRIPT)}"
FILTER_ERRNO = "EPERM"
UNCOUNTABLE_ON_HOST = frozenset({"EPERM", "ENOSYS", "OK"})


def parse_answers(text: str) -> dict[str, str]:
    """syscall name -> errno name ("OK" if it succeeded), from SCRIPT's output."""
    answers = {}
    for line in text.splitlines():
        name, _, answer = line.strip().partition(" ")
        if name and answer and name != "arch":
            answers[name] = answer
    return answers


def countable(host_answer: str | None) -> bool:
    """A syscall whose EPERM inside can only come from a filter, given the host's answer (None:
    no calibration, e.g. the host has no python3; the list was chosen to make that rare)."""
    return host_answer is None or host_answer not in UNCOUNTABLE_ON_HOST
