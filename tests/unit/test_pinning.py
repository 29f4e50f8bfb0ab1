"""CPU placement: CPU lists and masks, taskset output, QEMU thread roles, cgroup cpuset files,
docker inspect, docker-proxy command lines, the generator's cores; and the readers replayed on
a captured QEMU process, container and docker-proxy (tests/unit/data/capture_pinning.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scripts.checks.load.closed_loop import LoadPlan, wrk_argv
from scripts.checks.load.pinning import (
    PinningError,
    ThreadPlacement,
    choose_generator_cpus,
    cpuset_file,
    cpuset_from_inspect,
    docker_proxy_host_port,
    docker_proxy_pids,
    format_cpu_list,
    host_cpus,
    parse_cpu_list,
    parse_cpu_mask,
    parse_taskset,
    pin_process,
    placement_problems,
    process_cgroup_cpus,
    process_threads,
    server_placement_problems,
    split_cpus,
    thread_affinity,
    thread_role,
)

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent / "data" / "pinning"
RESOURCES = Path(__file__).resolve().parent / "data" / "resources"


# --- CPU lists and masks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0", {0}),
        ("0-1\n", {0, 1}),
        ("0-2,4,6-7", {0, 1, 2, 4, 6, 7}),
        ("", set()),
        ("\n", set()),
    ],
)
def test_cpu_lists(text: str, cpus: set[int]) -> None:
    assert parse_cpu_list(text) == cpus
    assert parse_cpu_list(format_cpu_list(cpus)) == cpus


def test_format_cpu_list_is_compact() -> None:
    assert format_cpu_list({5, 0, 1, 2}) == "0-2,5"
    assert format_cpu_list({1, 3, 4, 5, 7}) == "1,3-5,7"
    assert format_cpu_list(set()) == ""


@pytest.mark.parametrize("text", ["a", "1-", "3-1", "0,x"])
def test_bad_cpu_lists_are_named(text: str) -> None:
    with pytest.raises(PinningError, match="not a CPU list"):
        parse_cpu_list(text)


def test_cpu_masks() -> None:
    assert parse_cpu_mask("3") == {0, 1}
    assert parse_cpu_mask("1") == {0}
    assert parse_cpu_mask("2\n") == {1}
    assert parse_cpu_mask("00000001,00000000") == {32}
    with pytest.raises(PinningError, match="not a CPU mask"):
        parse_cpu_mask("xyz")


def test_taskset_output_in_both_forms() -> None:
    assert parse_taskset("pid 4242's current affinity mask: 1\n") == (4242, frozenset({0}))
    assert parse_taskset("pid 17's current affinity list: 0,1\n") == (17, frozenset({0, 1}))
    with pytest.raises(PinningError, match="no affinity line"):
        parse_taskset("taskset: failed to get pid 99's affinity: No such process\n")


def test_taskset_of_this_process_matches_the_kernel() -> None:
    # The live reader through the real taskset, against what the kernel says directly.
    assert thread_affinity(os.getpid()) == frozenset(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("CPU 0/TCG", "vcpu"),
        ("CPU 3/KVM", "vcpu"),
        ("IO mon_iothread", "iothread"),
        ("IO iothread1", "iothread"),
        ("qemu-system-x86", "emulator"),
        ("call_rcu", "emulator"),
        ("worker", "emulator"),
        ("CPU 0/TCGx", "emulator"),
    ],
)
def test_thread_roles(name: str, role: str) -> None:
    assert thread_role(name) == role


# --- cgroups, docker ----------------------------------------------------------------------------


def test_cpuset_file_under_cgroup_v1() -> None:
    # The hybrid layout here: a v1 cpuset controller, a v2 tree without one.
    text = (RESOURCES / "container.proc_cgroup").read_text(encoding="utf-8")
    path = cpuset_file(text, Path("/sys/fs/cgroup"))
    assert path == Path(
        "/sys/fs/cgroup/cpuset/docker/"
        "5e585c24db0e42175f11b268ffdad2dbd9d33391d4ff2b5e65f0c95c302e4499/cpuset.effective_cpus"
    )


def test_cpuset_file_under_cgroup_v2() -> None:
    text = "0::/system.slice/docker-abc.scope\n"
    assert cpuset_file(text, Path("/sys/fs/cgroup")) == Path(
        "/sys/fs/cgroup/system.slice/docker-abc.scope/cpuset.cpus.effective"
    )
    machine = "0::/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt/emulator\n"
    assert cpuset_file(machine, Path("/r")).name == "cpuset.cpus.effective"


def test_cpuset_file_without_a_cpuset_cgroup() -> None:
    with pytest.raises(PinningError, match="no cpuset cgroup"):
        cpuset_file("5:memory:/docker/abc\n", Path("/sys/fs/cgroup"))


def test_cpuset_from_inspect() -> None:
    pinned = [{"HostConfig": {"CpusetCpus": "0"}}]
    assert cpuset_from_inspect(json.dumps(pinned)) == frozenset({0})
    assert cpuset_from_inspect(json.dumps([{"HostConfig": {"CpusetCpus": ""}}])) is None
    with pytest.raises(PinningError, match="no JSON"):
        cpuset_from_inspect("Error: No such container: x")
    with pytest.raises(PinningError, match="one container"):
        cpuset_from_inspect("[]")


def test_docker_proxy_command_lines() -> None:
    argv = [
        "/usr/sbin/docker-proxy",
        "-proto",
        "tcp",
        "-host-ip",
        "127.0.0.1",
        "-host-port",
        "18080",
        "-container-ip",
        "172.17.0.2",
        "-container-port",
        "8080",
    ]
    assert docker_proxy_host_port(argv) == 18080
    assert docker_proxy_host_port(["/usr/bin/python3", "-host-port", "18080"]) is None
    assert docker_proxy_host_port([]) is None


# --- choosing the generator's cores --------------------------------------------------------------


def test_two_cores_put_the_generator_on_core_1() -> None:
    assert choose_generator_cpus(frozenset({0, 1}), frozenset({0})) == {1}
    assert split_cpus(frozenset({0, 1}), 1) == (frozenset({0}), frozenset({1}))


def test_more_cores() -> None:
    assert choose_generator_cpus(frozenset(range(8)), frozenset({0, 1})) == set(range(2, 8))
    assert split_cpus(frozenset(range(4)), 2) == (frozenset({0, 1}), frozenset({2, 3}))


def test_servers_on_every_core_leave_no_room() -> None:
    with pytest.raises(PinningError, match="no core is left for the load generator"):
        choose_generator_cpus(frozenset({0, 1}), frozenset({0, 1}))
    with pytest.raises(PinningError, match="one CPU left"):
        split_cpus(frozenset({0, 1}), 2)
    with pytest.raises(PinningError, match="not among the host's"):
        choose_generator_cpus(frozenset({0, 1}), frozenset({2}))
    with pytest.raises(PinningError, match="empty"):
        choose_generator_cpus(frozenset({0, 1}), frozenset())


def test_placement_problems_name_threads_that_float() -> None:
    pinned = ThreadPlacement(1, 1, "CPU 0/TCG", "vcpu", frozenset({0}), frozenset({0}))
    floating = ThreadPlacement(1, 2, "worker", "emulator", frozenset({0, 1}), None)
    narrowed = ThreadPlacement(1, 3, "call_rcu", "emulator", frozenset({0, 1}), frozenset({0}))
    assert placement_problems(frozenset({0}), [pinned, narrowed], what="VM") == []
    assert placement_problems(frozenset({0}), [pinned, floating], what="VM") == [
        "VM: worker (emulator, tid 2) on 0-1, outside 0"
    ]


# --- the readers on a captured QEMU process, container and docker-proxy -------------------------


def captured_affinity(tid: int) -> frozenset[int]:
    text = (DATA / "taskset" / f"{tid}.txt").read_text(encoding="utf-8")
    found_tid, cpus = parse_taskset(text)
    assert found_tid == tid
    return cpus


def captured_threads(pid: int, *, qemu: bool) -> list[ThreadPlacement]:
    return process_threads(
        pid,
        proc=DATA / "proc",
        cgroup_root=DATA / "cgroup",
        qemu=qemu,
        affinity_of=captured_affinity,
    )


def captured_pid(main_thread: str) -> int:
    (pid,) = [
        int(path.name)
        for path in (DATA / "proc").iterdir()
        if (path / "task" / path.name / "comm").is_file()
        and (path / "task" / path.name / "comm").read_text(encoding="utf-8").strip() == main_thread
    ]
    return pid


def captured_container() -> tuple[frozenset[int] | None, int, int]:
    """(configured cpuset, init PID, published host port) of the captured container."""
    inspect = json.loads((DATA / "container.inspect.json").read_text(encoding="utf-8"))[0]
    bindings = inspect["HostConfig"]["PortBindings"]
    host_port = int(next(iter(bindings.values()))[0]["HostPort"])
    configured = cpuset_from_inspect(json.dumps([inspect]))
    return configured, int(inspect["State"]["Pid"]), host_port


def test_captured_qemu_threads_all_sit_on_the_vms_core() -> None:
    # libvirt with <vcpu cpuset="0">: every thread, vCPU, emulator (main loop with SLIRP) and
    # the monitor's I/O thread, has affinity {0}, in the emulator or vcpu0 cgroup.
    pid = captured_pid("qemu-system-x86")
    threads = captured_threads(pid, qemu=True)
    assert {thread.role for thread in threads} == {"vcpu", "iothread", "emulator"}
    assert threads[0].tid == pid and threads[0].role == "emulator"
    assert [t.name for t in threads if t.role == "vcpu"] == ["CPU 0/TCG"]
    assert all(thread.cgroup_cpus == frozenset({0}) for thread in threads)
    assert placement_problems(frozenset({0}), threads, what="VM") == []
    # Against another core set, every thread is named.
    assert len(placement_problems(frozenset({1}), threads, what="VM")) == len(threads)


def test_captured_container_cpuset_from_inspect_and_cgroup() -> None:
    configured, pid, _ = captured_container()
    in_force = process_cgroup_cpus(pid, proc=DATA / "proc", cgroup_root=DATA / "cgroup")
    assert configured == in_force == frozenset({0})


def test_captured_docker_proxy_floats_off_the_containers_core() -> None:
    # The finding of issue 9: the container is on core 0, its port proxy may run on 0-1.
    configured, _, host_port = captured_container()
    assert configured is not None
    (proxy,) = docker_proxy_pids(host_port, proc=DATA / "proc")
    assert docker_proxy_pids(host_port + 1, proc=DATA / "proc") == []
    threads = captured_threads(proxy, qemu=False)
    assert {thread.name for thread in threads} == {"docker-proxy"}
    problems = placement_problems(configured, threads, what="docker-proxy")
    assert len(problems) == len(threads) > 0
    assert {thread.role for thread in threads} == {"thread"}
    assert problems[0] == f"docker-proxy: docker-proxy (tid {proxy}) on 0-1, outside 0"


def test_process_without_threads_is_named(tmp_path: Path) -> None:
    with pytest.raises(PinningError, match="cannot list the threads of process 7"):
        process_threads(7, proc=tmp_path, cgroup_root=tmp_path, affinity_of=captured_affinity)


def test_threads_of_this_process_live() -> None:
    # The live path: /proc, the real taskset and the real cgroup files of this test process.
    threads = process_threads(os.getpid(), qemu=False)
    # The main thread by its id: after pid numbers wrap, another thread may sort before it.
    (main,) = [thread for thread in threads if thread.tid == os.getpid()]
    assert main.role == "thread"
    assert main.affinity == frozenset(os.sched_getaffinity(0))
    assert main.cgroup_cpus is not None and main.cpus <= main.cgroup_cpus


def test_host_cpus_come_from_the_cgroup_not_the_affinity() -> None:
    cgroup = process_cgroup_cpus(os.getpid())
    assert host_cpus() == cgroup
    assert frozenset(os.sched_getaffinity(0)) <= cgroup


def test_host_cpus_fall_back_to_the_affinity(tmp_path: Path) -> None:
    assert host_cpus(proc=tmp_path) == frozenset(os.sched_getaffinity(0))


def test_server_placement_on_the_captured_pair() -> None:
    configured, _, host_port = captured_container()
    qemu = captured_threads(captured_pid("qemu-system-x86"), qemu=True)
    (proxy,) = docker_proxy_pids(host_port, proc=DATA / "proc")
    proxy_threads = captured_threads(proxy, qemu=False)
    # The VM's threads share the container's core; its docker-proxy does not.
    assert server_placement_problems(configured, qemu) == []
    problems = server_placement_problems(configured, qemu, proxy_threads)
    assert problems and all(p.startswith("docker-proxy: ") for p in problems)
    assert server_placement_problems(None, qemu) == [
        "container: may run on every CPU (no cpuset); deploy it with one"
    ]


def test_pin_process_moves_every_thread_of_a_live_process() -> None:
    """The fair-race step for docker-proxy: a real process, pinned with taskset -a, then read
    back from the kernel; pinning to a CPU the host lacks is refused with taskset's reason."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        first = min(host_cpus())
        pin_process(sleeper.pid, frozenset({first}))
        assert thread_affinity(sleeper.pid) == frozenset({first})
        with pytest.raises(PinningError, match="taskset"):
            pin_process(sleeper.pid, frozenset({4095}))
    finally:
        sleeper.kill()
        sleeper.wait()


def test_wrk_runs_on_the_generator_cores_when_given() -> None:
    plan = LoadPlan(duration_s=3, warmup_s=1, repeats=5)
    pinned = wrk_argv("wrk", Path("s.lua"), "http://127.0.0.1:1/x", plan, 3, frozenset({1}))
    assert pinned[:4] == ["taskset", "--cpu-list", "1", "wrk"]
    assert wrk_argv("wrk", Path("s.lua"), "http://127.0.0.1:1/x", plan, 3)[0] == "wrk"
