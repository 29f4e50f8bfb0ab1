"""R4 under a kernel-enforced budget, the pure parts: where the budget cgroup goes (v1, v2,
libvirt partitions), the domain XML, OOM kills from the kernel log, and the stop rule replayed
on synthetic sequences of events. No daemons: cgroup trees are fakes under tmp_path."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from scripts.checks.parsers.domain_xml import QEMU_NS, clone_domain_xml, parse_domain
from scripts.checks.resources import budget_cgroup, density_budget
from scripts.checks.resources.budget_cgroup import (
    BudgetCgroup,
    OomKill,
    detect_layout,
    libvirt_partition_dir,
    parse_kmsg_record,
    parse_oom_kill,
    read_counters,
)
from scripts.checks.resources.density_budget import (
    DensityResult,
    InstanceRecord,
    RunLimits,
    Tally,
    validate,
)
from scripts.checks.resources.density_placement import BudgetedDockerEngine, budgeted_domain_xml
from scripts.checks.resources.density_watch import attribute_kills
from scripts.checks.resources.errors import BudgetError, CloneError
from scripts.checks.results.run_tags import RunTags

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "resources"
MIB = 1024 * 1024
LIMITS = RunLimits(max_instances=5, wall_clock_s=300.0, ready_deadline_s=30.0, hold_s=30.0)


# --- where the budget goes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partition", "directory"),
    [
        ("/machine/twinlab-dev-budget-1", "machine/twinlab-dev-budget-1.partition"),
        ("/machine/a/b", "machine/a.partition/b.partition"),
        ("/twinlab", "twinlab.partition"),
        ("/machine/already.partition", "machine/already.partition"),
        ("/system/x", "system/x.partition"),
        ("/other/machine", "other.partition/machine.partition"),  # only a leading machine stays
    ],
)
def test_libvirt_partition_dir_follows_libvirts_suffix_rule(partition: str, directory: str) -> None:
    assert libvirt_partition_dir(partition) == directory


@pytest.mark.parametrize("partition", ["machine/x", "/", "/machine//x"])
def test_libvirt_partition_dir_refuses_bad_paths(partition: str) -> None:
    with pytest.raises(BudgetError, match="partition"):
        libvirt_partition_dir(partition)


def test_budget_dir_per_kind() -> None:
    name = budget_cgroup.budget_name("dev", "42")
    assert name == "twinlab-dev-budget-42"
    assert budget_cgroup.budget_dir("container", name) == "twinlab-dev-budget-42"
    assert budget_cgroup.budget_dir("vm", name) == "machine/twinlab-dev-budget-42.partition"
    assert budget_cgroup.docker_cgroup_parent(name) == "/twinlab-dev-budget-42"


@pytest.mark.parametrize("stack", ["dev.1", "a/b", "_x y"])
def test_budget_name_refuses_what_libvirt_would_rewrite(stack: str) -> None:
    with pytest.raises(BudgetError, match="letters, digits"):
        budget_cgroup.budget_name(stack, "1")


def fake_v1(root: Path) -> Path:
    """A hybrid host like these: v1 controllers, one of them a co-mount, a v2 tree."""
    for name in ("memory", "cpuset", "cpu,cpuacct", "freezer"):
        (root / name).mkdir(parents=True)
        (root / name / "cgroup.procs").write_text("")
    (root / "cpu").symlink_to(root / "cpu,cpuacct")
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "memory" / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    (root / "unified").mkdir()
    (root / "unified" / "cgroup.procs").write_text("")
    (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    return root


def fake_v2(root: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.procs").write_text("")
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_detect_layout_v1_hybrid(tmp_path: Path) -> None:
    layout = detect_layout(fake_v1(tmp_path))
    assert layout.version == "v1"
    assert layout.memory_root == tmp_path / "memory"
    names = [p.name for p in layout.hierarchies]
    assert names == ["cpu,cpuacct", "cpuset", "freezer", "memory", "unified"]  # no symlink


def test_detect_layout_v2(tmp_path: Path) -> None:
    layout = detect_layout(fake_v2(tmp_path))
    assert (layout.version, layout.memory_root, layout.hierarchies) == ("v2", tmp_path, (tmp_path,))


def test_detect_layout_without_memory_controller(tmp_path: Path) -> None:
    with pytest.raises(BudgetError, match="no cgroup memory controller"):
        detect_layout(fake_v2(tmp_path, "cpu io pids"))


def test_v1_vm_budget_made_in_every_tree_with_cpuset_and_limits(tmp_path: Path) -> None:
    layout = detect_layout(fake_v1(tmp_path))
    budget = BudgetCgroup(layout, "machine/twinlab-t-budget-1.partition", 1200 * MIB)
    budget.create("vm")
    for tree in layout.hierarchies:
        assert (tree / "machine" / "twinlab-t-budget-1.partition").is_dir(), tree
    partition = tmp_path / "cpuset" / "machine" / "twinlab-t-budget-1.partition"
    assert (partition / "cpuset.cpus").read_text() == "0-1"  # copied down from the root
    assert (partition / "cpuset.mems").read_text() == "0"
    memory = tmp_path / "memory" / "machine" / "twinlab-t-budget-1.partition"
    assert budget.memory_dir == memory
    assert (memory / "memory.limit_in_bytes").read_text() == str(1200 * MIB)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(1200 * MIB)


def test_v1_container_budget_only_in_the_memory_tree(tmp_path: Path) -> None:
    layout = detect_layout(fake_v1(tmp_path))
    BudgetCgroup(layout, "twinlab-t-budget-1", 256 * MIB).create("container")
    assert (tmp_path / "memory" / "twinlab-t-budget-1" / "memory.limit_in_bytes").exists()
    assert not (tmp_path / "cpuset" / "twinlab-t-budget-1").exists()  # Docker makes those


def test_budget_that_exists_is_refused(tmp_path: Path) -> None:
    layout = detect_layout(fake_v1(tmp_path))
    (tmp_path / "memory" / "twinlab-t-budget-1").mkdir()
    with pytest.raises(BudgetError, match="exists already"):
        BudgetCgroup(layout, "twinlab-t-budget-1", 256 * MIB).create("container")


def test_v2_budget_enables_memory_in_every_ancestor(tmp_path: Path) -> None:
    root = fake_v2(tmp_path)
    fake_v2(root / "machine")  # libvirt's own /machine, as the kernel would show it
    layout = detect_layout(root)
    budget = BudgetCgroup(layout, "machine/twinlab-t-budget-1.partition", 1200 * MIB)
    budget.create("vm")
    wanted = "+cpuset +cpu +io +memory +pids"
    assert (root / "cgroup.subtree_control").read_text() == wanted
    assert (root / "machine" / "cgroup.subtree_control").read_text() == wanted
    assert (budget.memory_dir / "memory.max").read_text() == str(1200 * MIB)


def test_v2_parent_without_memory_for_children_is_refused(tmp_path: Path) -> None:
    root = fake_v2(tmp_path)
    fake_v2(root / "machine", "cpu pids")
    budget = BudgetCgroup(detect_layout(root), "machine/twinlab-t-budget-1.partition", MIB)
    with pytest.raises(BudgetError, match="does not offer the memory controller"):
        budget.create("vm")


def test_leftover_budgets_found_as_parent_and_as_partition(tmp_path: Path) -> None:
    layout = detect_layout(fake_v1(tmp_path))
    (tmp_path / "memory" / "twinlab-dev-budget-7").mkdir()
    (tmp_path / "cpuset" / "machine" / "twinlab-dev-budget-8.partition").mkdir(parents=True)
    (tmp_path / "memory" / "twinlab-other-budget-1").mkdir()
    found = budget_cgroup.leftover_budgets("dev", layout.root)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "cpuset/machine/twinlab-dev-budget-8.partition",
        "memory/twinlab-dev-budget-7",
    ]
    assert len(budget_cgroup.leftover_budgets(None, layout.root)) == 3


def test_read_counters_v1_and_v2(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "memory.usage_in_bytes").write_text(f"{300 * MIB}\n")
    (v1 / "memory.max_usage_in_bytes").write_text(f"{310 * MIB}\n")
    (v1 / "memory.failcnt").write_text("145\n")
    (v1 / "memory.memsw.failcnt").write_text("5\n")
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    counters = read_counters(v1, "v1")
    assert (counters.usage_mib, counters.limit_hits, counters.oom_kills) == (300.0, 150, 2)
    assert counters.peak_bytes == 310 * MIB
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.current").write_text(f"{64 * MIB}\n")
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 0\n")
    counters = read_counters(v2, "v2")
    assert (counters.usage_mib, counters.peak_bytes, counters.limit_hits) == (64.0, None, 9)
    assert counters.oom_kills == 1


# --- OOM kills in the kernel log ----------------------------------------------------------------


def test_oom_kill_parsed_from_captured_kmsg() -> None:
    records = (DATA / "oom-kill.kmsg").read_text().splitlines()
    kills = [k for r in records if (k := parse_oom_kill(parse_kmsg_record(r)))]
    assert kills == [
        OomKill(
            oom_memcg="/machine/twinlab-densityprobe.partition",
            task_memcg="/machine/twinlab-densityprobe.partition/"
            "qemu-4-twinlab-densityprobe-dummy.libvirt-qemu",
            task="qemu-system-x86",
            pid=15216,
        )
    ]


def test_kmsg_record_without_header_and_other_messages() -> None:
    assert parse_kmsg_record("no header here") == ""
    assert parse_kmsg_record("6,1,2,-;hello\n SUBSYSTEM=x") == "hello"
    assert parse_oom_kill("Memory cgroup out of memory: Killed process 1 (x)") is None


def test_budget_contains_only_its_own_subtree(tmp_path: Path) -> None:
    layout = detect_layout(fake_v1(tmp_path))
    budget = BudgetCgroup(layout, "machine/twinlab-t-budget-1.partition", MIB)
    assert budget.contains("/machine/twinlab-t-budget-1.partition")
    assert budget.contains("/machine/twinlab-t-budget-1.partition/qemu-1-x.libvirt-qemu")
    assert not budget.contains("/machine/twinlab-t-budget-12.partition")
    assert not budget.contains("/machine/qemu-1-x.libvirt-qemu")


def test_kills_attributed_to_the_instance_whose_cgroup_held_the_task() -> None:
    kill = OomKill("/b", "/b/abc123/child", "python3", 7)
    cgroups = {"clone-1": "/b/abc123", "clone-2": "/b/abc1", "clone-3": "/b/def"}
    assert attribute_kills([kill], cgroups) == {"clone-1": kill}


# --- the domain and the container in the budget ---------------------------------------------------


def test_partition_added_to_a_clone_of_the_deployed_domain() -> None:
    source = (DATA / "rtest-vm.inactive.xml").read_text()
    facts = parse_domain(source)
    ports = {forward.guest_port: 40000 + i for i, forward in enumerate(facts.forwards)}
    disks = {disk.target_dev: f"/pool/clone-{disk.target_dev}.qcow2" for disk in facts.disks}
    clone = clone_domain_xml(source, "twinlab-rtest-clone-1", disks, ports)
    xml = budgeted_domain_xml(clone, "/machine/twinlab-rtest-budget-1")
    root = ET.fromstring(xml)
    assert [p.text for p in root.findall("resource/partition")] == [
        "/machine/twinlab-rtest-budget-1"
    ]
    assert root.findall(f"{{{QEMU_NS}}}commandline"), "QEMU forwards must survive"
    assert parse_domain(xml).memory_mib == facts.memory_mib
    again = budgeted_domain_xml(xml, "/machine/other")  # replaces, never two <resource>
    assert [p.text for p in ET.fromstring(again).iter("partition")] == ["/machine/other"]


def test_budgeted_engine_sets_the_cgroup_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = BudgetedDockerEngine("/twinlab-t-budget-1", "unix:///nonexistent.sock")
    sent: list[Any] = []

    def call(method: str, path: str, body: Any = None, query: Any = None) -> tuple[int, Any]:
        sent.append(body)
        return 201, {"Id": "abc"}

    monkeypatch.setattr(engine, "call", call)
    body = {"Image": "sha256:1", "HostConfig": {"Memory": 512 * MIB, "CpusetCpus": "1"}}
    assert engine.create_container("twinlab-t-clone-1", body) == "abc"
    assert sent[0]["HostConfig"] == {
        "Memory": 512 * MIB,
        "CpusetCpus": "1",
        "CgroupParent": "/twinlab-t-budget-1",
        "RestartPolicy": {"Name": "no"},
    }
    assert "CgroupParent" not in body["HostConfig"]  # the caller's body is left alone


# --- the stop rule, replayed --------------------------------------------------------------------


def start(tally: Tally, at_s: float) -> InstanceRecord:
    assert tally.may_start(at_s)
    return tally.begin(f"clone-{len(tally.records) + 1}", at_s)


def test_stops_at_the_first_instance_without_a_200() -> None:
    tally = Tally(LIMITS)
    for at in (0.0, 2.0, 4.0):
        tally.answered(start(tally, at), 1.5)
    fourth = start(tally, 6.0)
    assert fourth.answering_before == 3
    tally.no_answer(fourth, "none within 30 s")
    assert not tally.may_start(40.0)
    assert tally.stop_reason == "instance 4 (clone-4) gave no HTTP 200: none within 30 s"
    assert tally.evict_last() is fourth and fourth.evicted
    tally.hold_begins()
    assert tally.healthy_count() == 3


def test_an_earlier_instance_oom_killed_stops_the_run_and_is_not_counted() -> None:
    tally = Tally(LIMITS)
    for at in (0.0, 2.0, 4.0):
        tally.answered(start(tally, at), 1.0)
    tally.lost("clone-1", "was OOM-killed (kernel killed python3 pid 9)", 5.5)
    assert not tally.may_start(6.0)
    assert tally.stop_reason.startswith("instance 1 (clone-1) was OOM-killed")
    assert "after instance 3 was started" in tally.stop_reason
    assert tally.healthy_count() == 2
    evicted = tally.evict_last()  # the third tipped the budget: it did not fit
    assert evicted is not None and evicted.name == "clone-3"
    assert [r.name for r in tally.answering()] == ["clone-2"]


def test_a_budget_too_small_for_one_instance_gives_zero_and_the_reason() -> None:
    tally = Tally(LIMITS)
    first = start(tally, 0.0)
    tally.start_failed(first, "qemu unexpectedly closed the monitor (kernel OOM-killed qemu)")
    assert not tally.may_start(1.0)
    assert tally.healthy_count() == 0
    assert "did not start" in tally.stop_reason and "OOM-killed" in tally.stop_reason
    assert tally.evict_last() is None  # nothing of it runs


def test_max_instance_count_stops_with_a_reason_that_says_the_budget_held_more() -> None:
    tally = Tally(RunLimits(2, 300.0, 30.0, 30.0))
    for at in (0.0, 1.0):
        tally.answered(start(tally, at), 1.0)
    assert not tally.may_start(2.0)
    assert "max instance count 2 reached" in tally.stop_reason
    assert tally.evict_last() is None  # a bound stopped it: every instance fitted
    assert tally.healthy_count() == 2


def test_wall_clock_bound_leaves_room_for_a_deadline_and_the_hold() -> None:
    tally = Tally(RunLimits(10, 100.0, 30.0, 30.0))
    tally.answered(start(tally, 0.0), 1.0)
    assert tally.may_start(40.0)  # 40 + 30 + 30 == 100: still within
    assert not tally.may_start(40.1)
    assert tally.stop_reason.startswith("wall-clock bound 100 s")
    assert tally.evict_last() is None


def test_losses_in_the_hold_count_but_do_not_replace_the_stop_reason() -> None:
    tally = Tally(LIMITS)
    tally.answered(start(tally, 0.0), 1.0)
    tally.answered(start(tally, 2.0), 1.0)
    third = start(tally, 4.0)
    tally.no_answer(third, "stopped before answering: container exited with code 137")
    reason = tally.stop_reason
    tally.hold_begins()
    tally.lost("clone-2", "stopped answering (no HTTP 200 for 16 s)", 30.0)
    tally.lost("clone-3", "lost its main process", 31.0)  # never answered: no change
    assert tally.stop_reason == reason
    assert [r.name for r in tally.answering()] == ["clone-1"]
    third_record = tally.by_name("clone-3")
    assert third_record is not None and third_record.lost_reason == ""


def test_first_reason_wins_and_a_loss_is_recorded_once() -> None:
    tally = Tally(LIMITS)
    tally.answered(start(tally, 0.0), 1.0)
    tally.answered(start(tally, 1.0), 1.0)
    tally.lost("clone-2", "was OOM-killed (1 kill(s) in its cgroup)", 2.0)
    tally.lost("clone-2", "stopped answering", 20.0)
    tally.lost("clone-1", "stopped answering", 21.0)
    record = tally.by_name("clone-2")
    assert record is not None and record.lost_reason.startswith("was OOM-killed")
    assert record.lost_at_s == 2.0
    assert tally.stop_reason.startswith("instance 2 (clone-2) was OOM-killed")
    assert tally.healthy_count() == 0


# --- input and samples --------------------------------------------------------------------------


def test_validate_lists_every_problem_before_anything_starts() -> None:
    with pytest.raises(BudgetError) as error:
        validate("pod", 0, RunLimits(0, 10.0, 30.0, -1.0), available_mib=20000)
    message = str(error.value)
    for part in ("kind 'pod'", "budget 0 MiB", "max instances 0", "hold -1 s", "wall-clock"):
        assert part in message


def test_validate_refuses_a_budget_the_host_cannot_give() -> None:
    with pytest.raises(BudgetError, match="host's available 2000 MiB"):
        validate("vm", 1536, LIMITS, available_mib=2000)
    validate("vm", 1536, LIMITS, available_mib=4000)


def test_samples_give_the_count_and_the_curve() -> None:
    tally = Tally(LIMITS)
    for at, ready, budget_mib in ((0.0, 1.2, 40.0), (2.0, 1.4, 80.0)):
        record = start(tally, at)
        tally.answered(record, ready)
        record.charged_mib, record.budget_charged_mib = 40.0, budget_mib
    tally.no_answer(start(tally, 4.0), "none within 30 s")
    tally.hold_begins()
    tally.lost("clone-2", "stopped answering (no HTTP 200 for 16 s)", 40.0)
    result = DensityResult(
        kind="container",
        source_name="twinlab-t-app",
        budget_mib=256.0,
        limit_mib=64.0,
        limits=LIMITS,
        cgroup_version="v1",
        budget_cgroup="/sys/fs/cgroup/memory/twinlab-t-budget-1",
        placement="docker cgroup parent /twinlab-t-budget-1",
        instances=tuple(tally.records),
        stop_reason=tally.stop_reason,
        budget_peak_mib=255.0,
        budget_limit_hits=3,
        kernel_oom_kills=(),
        kernel_log="read",
        wall_s=80.0,
        load_avg_start=0.5,
        load_avg_end=1.5,
    )
    samples = result.samples("docker://twinlab-t-app", RunTags("tcg", "6.1", "run-1"))
    count = samples[0]
    assert (count.metric, count.value, count.claims) == ("instances_healthy_in_budget", 1, ("R4",))
    assert count.metadata["attempted"] == 3 and count.metadata["answered"] == 2
    assert "clone-3" in str(count.metadata["stop_reason"])
    curve = [s for s in samples if s.metric == "density_budget_charged_mib"]
    assert [s.value for s in curve] == [40.0, 80.0]
    starts = [s for s in samples if s.metric == "density_time_to_first_200_s"]
    assert [(s.value, s.metadata["healthy_at_end"]) for s in starts] == [(1.2, True), (1.4, False)]


def test_per_instance_limit_override_for_both_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    xml = budgeted_domain_xml((DATA / "rtest-vm.inactive.xml").read_text(), "/machine/x", 384)
    root = ET.fromstring(xml)
    assert parse_domain(xml).memory_mib == 384
    for element in root.findall("currentMemory"):
        assert (element.get("unit"), element.text) == ("KiB", str(384 * 1024))
    engine = BudgetedDockerEngine("/p", "unix:///nonexistent.sock", memory_mib=96)
    sent: list[Any] = []

    def call(method: str, path: str, body: Any = None, query: Any = None) -> tuple[int, Any]:
        sent.append(body)
        return 201, {"Id": "a"}

    monkeypatch.setattr(engine, "call", call)
    engine.create_container("c", {"HostConfig": {"Memory": 512 * MIB, "MemorySwap": 512 * MIB}})
    assert sent[0]["HostConfig"]["Memory"] == sent[0]["HostConfig"]["MemorySwap"] == 96 * MIB


def test_validate_refuses_a_tiny_per_instance_limit() -> None:
    with pytest.raises(BudgetError, match="per-instance limit 4 MiB"):
        validate("container", 256, LIMITS, 20000, instance_limit_mib=4)


def test_kernel_log_reads_only_what_came_after_it_was_opened(tmp_path: Path) -> None:
    log_file = tmp_path / "kmsg"
    log_file.write_text("6,1,1,-;oom-kill:oom_memcg=/old,task_memcg=/old/a,task=x,pid=1\n")
    log = budget_cgroup.KernelLog(log_file)
    assert log.available and log.oom_kills() == []
    with log_file.open("a") as out:
        out.write((DATA / "oom-kill.kmsg").read_text())
    assert [k.pid for k in log.oom_kills()] == [15216]
    log.close()
    missing = budget_cgroup.KernelLog(tmp_path / "nonexistent")
    assert not missing.available and "No such file" in missing.problem
    assert missing.oom_kills() == []


def test_a_kernel_oom_kill_anywhere_in_the_budget_stops_the_run() -> None:
    tally = Tally(LIMITS)
    tally.answered(start(tally, 0.0), 1.0)
    pending = start(tally, 2.0)
    tally.oom_kill(pending.name, "python3 pid 12")  # a worker of the booting one
    assert tally.stop_reason == "the kernel OOM-killed python3 pid 12 in instance 2 (clone-2)"
    assert tally.healthy_count() == 1  # the pending one never answered; the first is intact
    tally.answered(pending, 3.0)
    assert not tally.may_start(4.0)
    assert tally.evict_last() is pending  # it tipped the budget


def test_a_whole_instance_killed_made_room_so_the_last_one_stays() -> None:
    """A 600 MiB budget, VMs of ~380 MiB: the second start makes the kernel kill the first
    QEMU (the biggest task); the second then boots alone. One fits, and it is the second."""
    tally = Tally(LIMITS)
    tally.answered(start(tally, 0.0), 30.0)
    second = start(tally, 31.0)
    tally.oom_kill("clone-1", "qemu-system-x86 pid 40")
    tally.lost("clone-1", "was OOM-killed (kernel killed qemu-system-x86 pid 40)", 50.0, True)
    tally.answered(second, 40.0)
    assert tally.evict_last() is None
    tally.hold_begins()
    assert [r.name for r in tally.answering()] == ["clone-2"]


def test_a_worker_killed_in_an_answering_instance_loses_it_but_makes_no_room() -> None:
    tally = Tally(LIMITS)
    tally.answered(start(tally, 0.0), 1.0)
    tally.answered(start(tally, 1.0), 1.0)
    tally.oom_kill("clone-1", "python3 pid 7")
    tally.lost("clone-1", "was OOM-killed (kernel killed python3 pid 7)", 2.0, whole=False)
    tally.oom_kill(None, "runc:[2:INIT] pid 8")
    record = tally.by_name("clone-1")
    assert record is not None and record.lost_reason.endswith("(kernel killed python3 pid 7)")
    assert tally.stop_reason == "the kernel OOM-killed python3 pid 7 in instance 1 (clone-1)"
    assert tally.evict_last() is tally.by_name("clone-2")
    tally.hold_begins()
    assert tally.healthy_count() == 0


def test_budget_dirs_found_by_name_prefix_for_the_leftovers_sweep(tmp_path: Path) -> None:
    layout = detect_layout(fake_v1(tmp_path))
    (tmp_path / "memory" / "twinlab-ci-ab12-budget-7").mkdir()
    (tmp_path / "freezer" / "machine" / "twinlab-ci-ab12-budget-7.partition").mkdir(parents=True)
    (tmp_path / "memory" / "twinlab-ci-ab12-app").mkdir()  # not a budget
    found = budget_cgroup.budget_dirs_named("twinlab-ci-", layout.root)
    assert sorted(p.name for p in found) == [
        "twinlab-ci-ab12-budget-7",
        "twinlab-ci-ab12-budget-7.partition",
    ]


class FakeStream:
    """The channel of `dmesg --follow-new` on a remote host: chunks as they come, then maybe an
    exit."""

    def __init__(self, chunks: list[str], exit_status: int | None = None, stderr: str = "") -> None:
        self.chunks, self.exit_status, self.stderr = chunks, exit_status, stderr
        self.closed = False

    def recv_ready(self) -> bool:
        return bool(self.chunks)

    def recv(self, _size: int) -> bytes:
        return self.chunks.pop(0).encode()

    def recv_stderr(self, _size: int) -> bytes:
        return self.stderr.encode()

    def exit_status_ready(self) -> bool:
        return self.exit_status is not None and not self.chunks

    def close(self) -> None:
        self.closed = True


class FakeRemoteHost:
    is_local = False

    def __init__(self, stream: FakeStream) -> None:
        self.stream, self.ran = stream, list[tuple[str, ...]]()

    def open_stream(self, argv: tuple[str, ...]) -> FakeStream:
        self.ran.append(tuple(argv))
        return self.stream


def test_a_remote_hosts_kernel_log_is_followed_over_its_ssh_line_by_line() -> None:
    records = (DATA / "oom-kill.kmsg").read_text().splitlines()
    kill = next(m for m in map(parse_kmsg_record, records) if m.startswith("oom-kill:"))
    stream = FakeStream([])
    host = FakeRemoteHost(stream)
    log = budget_cgroup.open_kernel_log(host)  # type: ignore[arg-type]
    assert host.ran == [budget_cgroup.FOLLOW_KERNEL_LOG] and log.available
    stream.chunks.append("some other record\n" + kill[:20])
    assert log.oom_kills() == []  # half a line waits for its end
    stream.chunks.append(kill[20:] + "\n")
    assert [k.pid for k in log.oom_kills()] == [15216]
    log.close()
    assert stream.closed and not log.available


def test_a_remote_kernel_log_that_cannot_be_read_says_why() -> None:
    refused = FakeStream([], 1, "dmesg: read kernel buffer failed: Operation not permitted")
    log = budget_cgroup.open_kernel_log(FakeRemoteHost(refused))  # type: ignore[arg-type]
    assert not log.available and "Operation not permitted" in log.problem
    assert log.oom_kills() == []


def test_teardown_removes_every_clone_and_names_the_one_that_would_not_go() -> None:
    """Clones are removed several at a time; a failed removal is reported, the rest still go."""
    removed: list[str] = []

    class Cloner:
        def remove(self, clone: Any) -> None:
            if clone.name == "c-3":
                raise CloneError("docker said no")
            removed.append(clone.name)

    clones = [SimpleNamespace(name=f"c-{i}") for i in range(1, 10)]
    problems = density_budget._remove_all(Cloner(), clones)  # type: ignore[arg-type]
    assert problems == ["c-3: docker said no"]
    assert sorted(removed) == sorted(f"c-{i}" for i in range(1, 10) if i != 3)
