"""Pure parsers on text captured from real targets (tests/unit/data) and on edge cases."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.checks.parsers import proc
from scripts.checks.parsers.sections import Section, sectioned_command, split_sections
from scripts.checks.parsers.virt import VirtEvidence, detect_virtualization
from scripts.checks.parsers.wrk import WrkOutputError, parse_wrk_output

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent / "data"


def sections_of(label: str, probe: str) -> dict[str, Section]:
    return split_sections((DATA / "probes" / label / f"{probe}.txt").read_text(encoding="utf-8"))


# --- sections --------------------------------------------------------------------------------


def test_sectioned_command_round_trips_through_a_real_shell() -> None:
    snippets = {
        "plain": "echo one; echo two",
        "no_newline": "printf x",
        "empty": "true",
        "failing": "echo oops >&2; exit 3",
        "blank_lines": "printf 'a\\n\\n'",
    }
    output = subprocess.run(
        ["sh", "-c", sectioned_command(snippets)], capture_output=True, text=True, check=True
    ).stdout
    sections = split_sections(output)
    assert sections == {
        "plain": Section(0, "one\ntwo"),
        "no_newline": Section(0, "x"),
        "empty": Section(0, ""),
        "failing": Section(3, "oops"),
        "blank_lines": Section(0, "a\n"),
    }


def test_a_section_cut_short_is_absent() -> None:
    output = "\n@@twinlab-begin a\n1\n@@twinlab-end a 0\n\n@@twinlab-begin b\npartial"
    assert split_sections(output) == {"a": Section(0, "1")}


def test_section_names_are_checked() -> None:
    with pytest.raises(ValueError, match="section name"):
        sectioned_command({"bad name; rm": "true"})


# --- /proc -----------------------------------------------------------------------------------


def test_capabilities_of_a_cap_drop_all_container_and_the_host() -> None:
    container = proc.parse_status(sections_of("container", "capabilities")["status"].text)
    host = proc.parse_status(sections_of("host", "capabilities")["status"].text)
    assert container["CapEff"] == "0000000000000000"
    assert proc.cap_count(proc.cap_mask(host["CapEff"])) == 40
    assert "SYS_RESOURCE" not in proc.cap_names(proc.cap_mask(host["CapEff"]))


def test_docker_default_capabilities_are_the_fourteen_known_ones() -> None:
    status = proc.parse_status(sections_of("container-default", "capabilities")["status"].text)
    names = proc.cap_names(proc.cap_mask(status["CapEff"]))
    assert names == [
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "NET_RAW",
        "SYS_CHROOT",
        "MKNOD",
        "AUDIT_WRITE",
        "SETFCAP",
    ]


def test_sys_admin_grants_the_capabilities_split_from_it() -> None:
    docker_all = 0x3FFEFFFFFF  # Docker 20.10's "ALL" (no PERFMON/BPF/CHECKPOINT_RESTORE)
    host = 0x1FFFEFFFFFF
    assert proc.holds_all_caps(docker_all, host)
    without_sys_admin = docker_all & ~(1 << proc.CAP_SYS_ADMIN)
    assert not proc.holds_all_caps(without_sys_admin, host)
    assert not proc.holds_all_caps(0xA80425FB, host)


def test_uid_map_identity() -> None:
    assert proc.is_identity_uid_map("         0          0 4294967295\n")
    assert not proc.is_identity_uid_map("         0     100000      65536\n")
    assert not proc.is_identity_uid_map("")


def test_process_table_of_a_container_without_the_probe() -> None:
    self_pid, entries = proc.parse_process_table(
        sections_of("container", "processes")["processes"].text
    )
    others = proc.without_probe(entries, self_pid)
    assert [entry.comm for entry in others] == ["python3", "python3", "python3"]
    assert {entry.ppid for entry in others} == {0, 1}
    pid1 = next(entry for entry in entries if entry.pid == 1)
    assert "gunicorn" in pid1.cmdline


def process_table(*processes: tuple[int, str, int, str]) -> str:
    """PROCESS_TABLE output for (pid, comm, ppid, cmdline) rows, as head -v prints it."""
    blocks = [
        f"==> /proc/{pid}/stat <==\n{pid} ({comm}) S {ppid} 1 1 0\n"
        for pid, comm, ppid, _ in processes
    ]
    blocks += [f"==> /proc/{pid}/cmdline <==\n{cmdline} " for pid, _, _, cmdline in processes]
    return "\n".join(blocks)


def test_probe_session_chain_is_excluded_but_the_daemon_is_kept() -> None:
    # sshd(1) -> sshd: twin [priv] -> sshd: twin@notty -> sudo -> sh (probe) -> head
    table = "self 50\n" + process_table(
        (1, "systemd", 0, "/sbin/init"),
        (10, "sshd", 1, "sshd: /usr/sbin/sshd -D"),
        (20, "sshd", 10, "sshd: twin [priv]"),
        (30, "sshd", 20, "sshd: twin@notty"),
        (40, "sudo", 30, "sudo -n sh -c x"),
        (50, "sh", 40, "sh -c x"),
        (51, "head", 50, "head -v -c 4096"),
        (60, "gunicorn", 1, "gunicorn"),
        (61, "kworker/0:1", 2, ""),
    )
    self_pid, entries = proc.parse_process_table(table)
    kept = [entry.pid for entry in proc.without_probe(entries, self_pid)]
    assert kept == [1, 10, 60, 61]
    assert [entry.command for entry in entries if entry.pid in (10, 61)] == [
        "sshd: /usr/sbin/sshd -D",
        "[kworker/0:1]",
    ]


def test_a_command_line_with_newlines_stays_one_command() -> None:
    table = "self 9\n" + process_table((7, "sh", 1, "sh -c echo a\necho b"))
    assert proc.parse_process_table(table)[1][0].cmdline == "sh -c echo a echo b"


def test_stat_line_with_spaces_and_parentheses_in_comm() -> None:
    assert proc.parse_stat_line("42 (a (b) c) S 7 42 42 0") == (42, "a (b) c", 7)


def test_cgroup_limits() -> None:
    limit = sections_of("container", "cgroup_memory")["v1_limit"].text
    assert proc.limit_bytes(limit) == 512 * proc.MIB
    assert proc.limit_bytes("9223372036854771712") is None
    assert proc.limit_bytes("max") is None
    assert proc.limit_bytes(None) is None
    assert proc.cpu_quota_cpus("150000 100000", None, None) == 1.5
    assert proc.cpu_quota_cpus("max 100000", None, None) is None
    assert proc.cpu_quota_cpus(None, "-1", "100000") is None
    assert proc.cpu_quota_cpus(None, "50000", "100000") == 0.5


def test_meminfo_uptime_modules_packages_services() -> None:
    meminfo = sections_of("host", "cgroup_memory")["meminfo"].text
    assert 1000 < proc.meminfo_total_mib(meminfo) < 1_000_000
    assert proc.uptime_s("123.45 200.00\n") == 123.45
    modules = "dummy 16384 0 - Live 0x0\nvirtio_blk 20480 2 - Live 0x0\n"
    assert proc.module_names(modules) == {"dummy", "virtio_blk"}
    assert proc.installed_dpkg_count(sections_of("container", "packages")["dpkg"].text) == 115
    units = "ssh.service loaded active running OpenBSD Secure Shell server\ntwinlab.service x\n"
    assert proc.running_service_units(units) == ["ssh.service", "twinlab.service"]


# --- virtualization --------------------------------------------------------------------------


def test_container_signs_win_over_the_hypervisor_below() -> None:
    evidence = VirtEvidence(
        pid1_cgroup="4:memory:/docker/abc\n",
        cpu_flags=frozenset({"hypervisor"}),
        clocksources=frozenset({"kvm-clock", "tsc"}),
    )
    assert detect_virtualization(evidence)[0] == "docker"


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (VirtEvidence(clocksources=frozenset({"kvm-clock"})), "kvm"),
        (
            VirtEvidence(
                dmi_vendor="QEMU",
                dmi_product="Standard PC (i440FX + PIIX, 1996)",
                cpu_flags=frozenset({"hypervisor"}),
            ),
            "qemu",
        ),
        (VirtEvidence(cpu_flags=frozenset({"hypervisor"})), "vm-other"),
        (VirtEvidence(container_env="podman"), "podman"),
        (VirtEvidence(containerenv=True), "podman"),
        (VirtEvidence(), "none"),
    ],
)
def test_virtualization_kinds(evidence: VirtEvidence, expected: str) -> None:
    assert detect_virtualization(evidence)[0] == expected


# --- wrk -------------------------------------------------------------------------------------


def test_wrk_summary_from_a_real_run() -> None:
    result = parse_wrk_output((DATA / "wrk" / "cpu-container.txt").read_text(encoding="utf-8"))
    assert result.requests == 1438
    assert result.duration_s == pytest.approx(2.004362)
    assert result.requests_per_s == pytest.approx(717.4, abs=0.1)
    assert (result.latency_p50_ms, result.latency_p90_ms, result.latency_p99_ms) == (
        5.267,
        7.901,
        10.38,
    )
    assert result.errors == 0


def test_wrk_counts_non_2xx_responses_as_errors() -> None:
    result = parse_wrk_output((DATA / "wrk" / "status-errors.txt").read_text(encoding="utf-8"))
    assert result.status_errors == result.requests == 923
    assert result.errors == 923


def test_wrk_without_summary_quotes_its_last_words() -> None:
    with pytest.raises(WrkOutputError, match="Connection refused"):
        parse_wrk_output((DATA / "wrk" / "refused.txt").read_text(encoding="utf-8"))
