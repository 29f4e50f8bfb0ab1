"""The kit's start-up (R1) and memory (R2) figures against independent measurements of the same
instances, within 20 % (issue 9's "done when").

Memory: the kit's meters (a container's cgroup found through /proc/PID/cgroup; a VM's machine
cgroup found the same way from the pid file libvirt keeps, and its QEMU PSS) against `docker
stats`, the container's cgroup files found from its `docker inspect` Id, the VM's machine scope
found by its name in the cgroup tree, `virsh dommemstat` (QEMU's resident set as libvirt reads
it), and /proc/PID/smaps_rollup of the QEMU process found by its command line.
Start-up: the kit's R1 path (measure_start_times on a clone) against the same clone's own
records, kept before the kit removes it: a container from Docker's Created time to the app's
access-log line of its first 200 (`docker logs --timestamps`); a VM from libvirt's "starting
up" line in the domain log to the guest's journal entry of that first 200, the guest clock
set against the host's over SSH.

Each comparison has a negative control that goes through the same check with a real but wrong
figure (the kit's meter pointed at another process; the other kind's start time) and must be
caught. Every number is printed (pytest -s) and written to results/cross-check.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from components import outputs
from components.guest_ssh import GuestCommandError, GuestSsh
from scripts.checks.parsers.domain_xml import parse_domain
from scripts.checks.parsers.proc_resources import (
    MIB,
    cgroup_v1_memory,
    cgroup_v2_memory,
    parse_smaps_rollup,
)
from scripts.checks.resources import footprint
from scripts.checks.resources.clones import Clone, Cloner, remove_clones
from scripts.checks.resources.meters import ContainerMeter, DomainMeter, Instance, meter_for
from scripts.checks.resources.start_time import measure_start_times
from scripts.checks.results.run_tags import run_tags
from scripts.checks.results.samples import VariantLabel
from scripts.checks.targets.deployed import write_private_keys
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.libvirt_domains import Virsh

pytestmark = pytest.mark.integration

TOLERANCE = 0.20
LIBVIRT_LOG_DIR = Path("/var/log/libvirt/qemu")
RESULTS = Path(__file__).resolve().parents[2] / "results" / "cross-check.json"
SSH_WAIT_S = 90.0
FIRST_200 = re.compile(r'"GET /healthz[^"]*" 200 ')
COMPARISONS: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Comparison:
    what: str
    kit: float
    independent: float
    how: str

    @property
    def gap(self) -> float:
        """|kit - independent| as a share of the independent figure."""
        return abs(self.kit - self.independent) / self.independent

    @property
    def agrees(self) -> bool:
        return self.gap <= TOLERANCE

    def record(self, control: bool = False) -> Comparison:
        row = {
            "what": self.what,
            "kit": round(self.kit, 3),
            "independent": round(self.independent, 3),
            "gap_percent": round(100 * self.gap, 1),
            "independent_method": self.how,
            "negative_control": control,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        COMPARISONS.append(row)
        print(json.dumps(row))
        return self


@pytest.fixture(scope="module", autouse=True)
def written() -> Iterator[None]:
    yield
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(COMPARISONS, indent=2) + "\n")


@pytest.fixture(scope="module")
def meters(deployed_stack: dict[str, Any]) -> dict[str, ContainerMeter | DomainMeter]:
    engine, virsh = DockerEngine(), Virsh()
    found: dict[str, ContainerMeter | DomainMeter] = {}
    for name in ("container", "vm"):
        item = deployed_stack[outputs.VARIANTS][name]
        label = VariantLabel(name, item[outputs.KIND])
        meter = meter_for(
            Instance(label, item[outputs.INSTANCE_NAME], item[outputs.TARGET]), engine, virsh
        )
        assert isinstance(meter, ContainerMeter | DomainMeter)
        found[name] = meter
    return found


# --- memory (R2) -----------------------------------------------------------------------------


def docker_stats_mib(name: str) -> float:
    """`docker stats`' memory usage of a container, in MiB (the CLI's own cache-less figure)."""
    text = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    used = text.split("/")[0].strip()
    number, unit = re.fullmatch(r"([\d.]+)\s*([KMG]i?B)", used).groups()  # type: ignore[union-attr]
    scale = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "kB": 1 / 1024, "MB": 1.0, "GB": 1024.0}
    return float(number) * scale[unit]


def cgroup_files_mib(container_id: str) -> float:
    """Usage minus inactive file, read straight from the container's cgroup directory, found from
    its Docker Id (the cgroupfs driver's /docker/ID), not from /proc/PID/cgroup as the kit."""
    v1 = Path("/sys/fs/cgroup/memory/docker") / container_id
    if v1.is_dir():
        memory = cgroup_v1_memory(
            (v1 / "memory.usage_in_bytes").read_text(), (v1 / "memory.stat").read_text()
        )
    else:
        matches = list(Path("/sys/fs/cgroup").glob(f"**/*{container_id}*/memory.current"))
        assert matches, f"no cgroup directory named after container {container_id}"
        directory = matches[0].parent
        memory = cgroup_v2_memory(
            (directory / "memory.current").read_text(), (directory / "memory.stat").read_text()
        )
    return memory.charged_bytes / MIB


def machine_cgroup_files_mib(domain: str) -> float:
    """Usage minus inactive file of the VM's libvirt machine scope, found by the domain's name
    in the cgroup tree (not through QEMU's /proc/PID/cgroup as the kit)."""
    v1 = list(Path("/sys/fs/cgroup/memory").glob(f"machine*/*{domain}*/memory.usage_in_bytes"))
    if v1:
        directory = v1[0].parent
        memory = cgroup_v1_memory(
            (directory / "memory.usage_in_bytes").read_text(),
            (directory / "memory.stat").read_text(),
        )
        return memory.charged_bytes / MIB
    v2 = [p for p in Path("/sys/fs/cgroup").glob(f"**/*{domain}*/memory.current")]
    assert v2, f"no machine cgroup named after domain {domain}"
    directory = min(v2, key=lambda p: len(p.parts)).parent  # the scope, not a threaded child
    memory = cgroup_v2_memory(
        (directory / "memory.current").read_text(), (directory / "memory.stat").read_text()
    )
    return memory.charged_bytes / MIB


def qemu_pid_by_command_line(domain: str) -> int:
    """The QEMU process found by its command line (-name guest=NAME,...), not libvirt's pid file."""
    found = subprocess.run(
        ["pgrep", "-f", f"guest={domain},"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.split()
    assert len(found) == 1, f"QEMU of {domain}: {found}"
    return int(found[0])


def dommemstat_rss_mib(domain: str) -> float:
    text = Virsh().run("dommemstat", domain)
    stats = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
    return int(stats["rss"]) / 1024


def test_container_memory_agrees_with_docker_stats_and_its_cgroup_files(
    meters: dict[str, ContainerMeter | DomainMeter],
) -> None:
    meter = meters["container"]
    assert isinstance(meter, ContainerMeter)
    container_id = DockerEngine().inspect_container(meter.instance.name)["Id"]
    kit = meter.memory().charged_mib
    stats = Comparison(
        "R2 container MiB", kit, docker_stats_mib(meter.instance.name), "docker stats"
    )
    files = Comparison(
        "R2 container MiB", kit, cgroup_files_mib(container_id), "cgroup files by Id"
    )
    assert stats.record().agrees, stats
    assert files.record().agrees, files
    # Negative control: the kit's container meter on another cgroup (this test's own process,
    # far from the container) must be caught by the same check.
    wrong = footprint.container_memory(os.getpid()).charged_mib
    control = Comparison(
        "R2 container MiB, meter on a wrong cgroup", wrong, files.independent, files.how
    )
    assert not control.record(control=True).agrees, control


def test_vm_memory_agrees_with_dommemstat_and_smaps_rollup(
    meters: dict[str, ContainerMeter | DomainMeter],
) -> None:
    meter = meters["vm"]
    assert isinstance(meter, DomainMeter)
    domain = meter.instance.name
    pid = qemu_pid_by_command_line(domain)
    reading = meter.memory()
    pss = float(reading.metadata["pss_mib"])
    cgroup = Comparison(
        "R2 vm MiB (machine cgroup)",
        reading.charged_mib,
        machine_cgroup_files_mib(domain),
        "cgroup files of the machine scope named after the domain",
    )
    assert cgroup.record().agrees, cgroup
    rollup = parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())["Pss"] / 1024
    direct = Comparison("R2 vm MiB (PSS)", pss, rollup, "smaps_rollup, pid by cmdline")
    # RSS counts shared library pages whole, PSS shares them out: close for a QEMU whose memory
    # is nearly all its own (guest RAM, TCG cache).
    rss = Comparison("R2 vm MiB (PSS)", pss, dommemstat_rss_mib(domain), "virsh dommemstat rss")
    assert direct.record().agrees, direct
    assert rss.record().agrees, rss
    parts = Comparison(
        "R2 vm MiB: parts vs PSS",
        sum(reading.parts_mib.values()),
        pss,
        "sum of the breakdown",
    )
    assert parts.record().agrees, parts
    # Negative control: the kit's VM meter given a wrong PID (the container's process).
    container = meters["container"]
    assert isinstance(container, ContainerMeter)
    wrong = footprint.qemu_memory(container.facts.pid).charged_mib
    control = Comparison("R2 vm MiB, meter on a wrong PID", wrong, rss.independent, rss.how)
    assert not control.record(control=True).agrees, control


# --- start-up (R1) ---------------------------------------------------------------------------


def wall_s(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time with up to nanoseconds (Docker's)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    return seconds + (float("0." + fraction[:9]) if fraction else 0.0)


def first_200_line(lines: list[str], where: str) -> str:
    for line in lines:
        if FIRST_200.search(line):
            return line
    raise AssertionError(f"no access-log line of a 200 on /healthz in {where}")


def container_record_s(name: str) -> float:
    """Docker's Created time to the app's own log line of its first 200."""
    inspect = DockerEngine().inspect_container(name)
    created = wall_s(inspect["Created"])
    logs = subprocess.run(
        ["docker", "logs", "--timestamps", name], capture_output=True, text=True, timeout=30
    )
    lines = (logs.stdout + logs.stderr).splitlines()
    line = first_200_line(lines, f"docker logs {name}")
    # Where the time goes, for the report: Docker's start, and how many requests the app saw.
    started = wall_s(inspect["State"]["StartedAt"]) - created
    served = sum(1 for text in lines if FIRST_200.search(text))
    print(json.dumps({"clone": name, "started_after_created_s": started, "healthz_200s": served}))
    return wall_s(line.split()[0]) - created


def libvirt_start_s(domain: str) -> float:
    """When libvirt started the domain's QEMU: the last 'starting up' line of its log."""
    log = (LIBVIRT_LOG_DIR / f"{domain}.log").read_text(errors="replace")
    starts = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\+0000: starting up", log, re.M)
    assert starts, f"no 'starting up' line in {LIBVIRT_LOG_DIR / domain}.log"
    return wall_s(starts[-1].replace(" ", "T"))


def vm_record_s(domain: str, key: Path, user: str) -> float:
    """libvirt's start of QEMU to the guest app's journal entry of its first 200, the guest's
    clock set against the host's over SSH (the midpoint of a `date` round trip)."""
    started = libvirt_start_s(domain)
    ssh_port = parse_domain(Virsh().run("dumpxml", domain)).host_port_for(22)
    assert ssh_port is not None, f"{domain} forwards no port to the guest's SSH"
    with tempfile.TemporaryDirectory() as scratch:
        guest = GuestSsh(ssh_port, key, Path(scratch) / "known_hosts", user, "accept-new")
        wait_for_ssh(guest)
        before = time.time()
        guest_now = float(guest.run("date +%s.%N", timeout_s=60))
        offset_s = guest_now - (before + time.time()) / 2
        journal = guest.run(
            "sudo journalctl -u twinlab-webapp.service -o short-unix --no-pager", timeout_s=60
        )
    line = first_200_line(journal.splitlines(), f"{domain}'s journal")
    return float(line.split()[0]) - offset_s - started


def wait_for_ssh(guest: GuestSsh, timeout_s: float = SSH_WAIT_S) -> None:
    """The guest starts sshd after its app: at the first 200 it may not listen yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            guest.run("true", timeout_s=30)
            return
        except GuestCommandError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def witnessed(
    cloner: Cloner, monkeypatch: pytest.MonkeyPatch, record: Callable[[str], float]
) -> list[float]:
    """The cloner with its remove() first reading each clone's own record, in start order (a
    clone's name is used again once it is removed, so the order pairs them, not the name)."""
    records: list[float] = []
    remove = cloner.remove

    def observe_then_remove(clone: Clone) -> None:
        try:
            records.append(record(clone.name))
        finally:
            remove(clone)

    monkeypatch.setattr(cloner, "remove", observe_then_remove)
    return records


@pytest.fixture(scope="module")
def start_comparisons(
    meters: dict[str, ContainerMeter | DomainMeter], deployed_stack: dict[str, Any]
) -> Iterator[dict[str, list[Comparison]]]:
    """Two starts of each kind through the kit's R1 path, each with its clone's own record."""
    stack = str(deployed_stack["stack"])
    keys = write_private_keys(stack, deployed_stack)
    vm_user = (
        str(deployed_stack[outputs.VARIANTS]["vm"][outputs.TARGET]).split("//")[1].split("@")[0]
    )
    recorders: dict[str, Callable[[str], float]] = {
        "container": container_record_s,
        "vm": lambda name: vm_record_s(name, keys["vm"], vm_user),
    }
    found: dict[str, list[Comparison]] = {}
    with pytest.MonkeyPatch.context() as patch:
        try:
            for name, meter in meters.items():
                cloner = meter.cloner(stack)
                records = witnessed(cloner, patch, recorders[name])
                tags = run_tags(deployed_stack[outputs.VIRT_MODE])
                samples = [
                    sample
                    for sample in measure_start_times(
                        cloner, meter.instance.target, tags, repeats=2
                    )
                    if sample.metric == "time_to_first_response_s"  # not the stage samples
                ]
                how = (
                    "Docker Created to app log"
                    if name == "container"
                    else "libvirt log to guest journal"
                )
                assert len(records) == len(samples)
                found[name] = [
                    Comparison(f"R1 {name} s", float(sample.value), record, how)
                    for sample, record in zip(samples, records, strict=True)
                ]
                for sample in samples:
                    print(json.dumps({"kit_s": sample.value, **sample.metadata}, default=str))
        finally:
            remove_clones(stack)
    yield found


def test_vm_start_times_agree_with_each_clones_own_record(
    start_comparisons: dict[str, list[Comparison]],
) -> None:
    for comparison in start_comparisons["vm"]:
        assert comparison.record().agrees, comparison


def test_container_start_times_agree_with_each_clones_own_record(
    start_comparisons: dict[str, list[Comparison]],
) -> None:
    for comparison in start_comparisons["container"]:
        assert comparison.record().agrees, comparison


def test_a_wrong_start_time_is_caught(start_comparisons: dict[str, list[Comparison]]) -> None:
    """Negative control: the container's figure held against a VM clone's own record."""
    vm = start_comparisons["vm"][0]
    wrong = start_comparisons["container"][0].kit
    control = Comparison("R1 vm s, the container's figure", wrong, vm.independent, vm.how)
    assert not control.record(control=True).agrees, control
