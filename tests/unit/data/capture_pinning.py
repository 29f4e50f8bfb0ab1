"""Capture where a QEMU process's threads, a container and its docker-proxy may run, for the
pinning parser tests.

    .venv/bin/python -m tests.unit.data.capture_pinning QEMU_PID CONTAINER HOST_PORT

writes tests/unit/data/pinning/ as a small /proc and cgroup tree (only the files the readers
use): proc/PID/task/TID/{comm,cgroup} with taskset/TID.txt (`taskset -p TID`, the mask form)
for every thread of QEMU and of the docker-proxy publishing HOST_PORT; proc/CPID/cgroup and
container.inspect.json (`docker inspect`) for the container's init; proc/PPID/cmdline of that
docker-proxy; and under cgroup/ the cpuset files those cgroups name. Nothing else of the
machine is copied.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.checks.load.pinning import CGROUP_ROOT, PROC, cpuset_file, docker_proxy_pids

DATA = Path(__file__).resolve().parent / "pinning"


def copy(source: Path, root: Path, relative: Path) -> Path:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    return target


def copy_cpuset(cgroup_text: str) -> None:
    source = cpuset_file(cgroup_text, CGROUP_ROOT)
    copy(source, DATA / "cgroup", source.relative_to(CGROUP_ROOT))


def capture_threads(pid: int) -> None:
    """comm, cgroup and `taskset -p` of every thread of `pid`, and the cpusets they name."""
    for task in sorted((PROC / str(pid) / "task").iterdir(), key=lambda path: int(path.name)):
        relative = Path(str(pid), "task", task.name)
        copy(task / "comm", DATA / "proc", relative / "comm")
        cgroup = copy(task / "cgroup", DATA / "proc", relative / "cgroup")
        copy_cpuset(cgroup.read_text(encoding="utf-8"))
        taskset = subprocess.run(
            ["taskset", "-p", task.name], capture_output=True, text=True, check=True
        )
        (DATA / "taskset").mkdir(parents=True, exist_ok=True)
        (DATA / "taskset" / f"{task.name}.txt").write_text(taskset.stdout, encoding="utf-8")


def capture(qemu_pid: int, container: str, host_port: int) -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    capture_threads(qemu_pid)
    inspect = subprocess.run(
        ["docker", "inspect", "--type", "container", container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (DATA / "container.inspect.json").write_text(inspect, encoding="utf-8")
    container_pid = int(json.loads(inspect)[0]["State"]["Pid"])
    relative = Path(str(container_pid), "cgroup")
    cgroup = copy(PROC / str(container_pid) / "cgroup", DATA / "proc", relative)
    copy_cpuset(cgroup.read_text(encoding="utf-8"))
    for pid in docker_proxy_pids(host_port):
        copy(PROC / str(pid) / "cmdline", DATA / "proc", Path(str(pid), "cmdline"))
        capture_threads(pid)
    print(f"wrote {DATA}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    capture(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
