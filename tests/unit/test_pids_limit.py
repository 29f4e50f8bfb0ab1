"""The container's PIDs limit is applied with the docker CLI of the stack's Docker host."""

from __future__ import annotations

import pytest

from components.pids_limit import docker_argv
from components.remote_ssh import ssh_client_options

pytestmark = pytest.mark.unit


def test_local_and_tcp_hosts_use_the_docker_cli_with_the_host() -> None:
    argv = docker_argv("tcp://127.0.0.1:2375", None, "update", "--pids-limit", "9", "c")
    assert argv == ["docker", "-H", "tcp://127.0.0.1:2375", "update", "--pids-limit", "9", "c"]


def test_ssh_hosts_run_the_remote_cli_through_the_stacks_ssh_options() -> None:
    argv = docker_argv("ssh://root@127.0.0.1:2222", "/k", "update", "--pids-limit", "9", "c")
    destination = ["-l", "root", "-p", "2222", "--", "127.0.0.1"]
    assert argv == [
        "ssh",
        *ssh_client_options("/k"),
        *destination,
        "docker update --pids-limit 9 c",
    ]


def test_the_cgroup_fallback_runs_on_the_docker_host_itself() -> None:
    """A runtime without `update` (runsc): the limit goes into the container's cgroup on the
    host that runs it, here or over the stack's SSH; a tcp:// daemon's files are out of reach."""
    from components.pids_limit import CGROUP_PIDS_MAX, host_shell_argv

    local = host_shell_argv("unix:///var/run/docker.sock", None, CGROUP_PIDS_MAX, "512", "c")
    assert local[:3] == ["sh", "-c", CGROUP_PIDS_MAX] and local[-2:] == ["512", "c"]
    remote = host_shell_argv("ssh://root@127.0.0.1:2222", "/k", CGROUP_PIDS_MAX, "512", "c")
    assert remote[0] == "ssh" and "-p" in remote and remote[-1].startswith("sh -c ")
    with pytest.raises(RuntimeError, match="only unix:// and ssh://"):
        host_shell_argv("tcp://docker.example:2375", None, CGROUP_PIDS_MAX, "512", "c")
