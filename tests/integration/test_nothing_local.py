"""Proof that nothing is local (issue 12 item 3): the `remote` stack's checks run in a process
that cannot reach anything of this machine but the stack's SSH endpoint, and every claim still
gets its figures; with the host handle forced local the same confined run fails naming docker.

`pulumi up` and `destroy` run outside (they are the providers' business, already proven to go
through SSH by test_remote_stack). `fab run-all --quick` runs confined:

- a private mount namespace in which the local Docker socket (/run/docker.sock, the same file
  as /var/run/docker.sock), the `docker` and `virsh` binaries (an empty file bound over each)
  and libvirt's runtime directory /run/libvirt (sockets and QEMU pid files), plus this
  machine's cgroup tree /sys/fs/cgroup, are hidden (read-only empty tmpfs over each directory);
- a private PID namespace with its own /proc: no process of this machine (QEMU, containers)
  can be read from /proc;
- a private network namespace with only its own loopback: the app ports, the VM's SSH port and
  every daemon's TCP port are unreachable. The one way in is tests/integration/ssh_bridge.py:
  127.0.0.1:2222 inside relays to a unix socket whose other end the test relays to twinlab's
  sshd. A unix socket is reached by path, not by network, so nothing else crosses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import outputs
from components.paths import state_dir
from components.remote_ssh import TWINLAB_SSHD
from components.snapshot import ensure_snapshot, recipe_for_defaults, vm_images
from scripts.checks.claims import evaluate
from scripts.checks.resources import density_budget
from scripts.checks.results.samples import Sample, read_samples
from scripts.checks.targets.deployed import stack_thresholds
from scripts.checks.targets.host import AS_LOCAL_ENV
from tests.deploy import ROOT, ci_stack_config, deployed
from tests.integration.ssh_bridge import serve, tcp_connector, unix_listener
from tests.integration.test_remote_stack import (  # noqa: F401 - remote_access is a fixture
    DOCKER_HOST,
    LIBVIRT_URI,
    Tail,
    remote_access,
)

pytestmark = pytest.mark.integration

HIDDEN_FILES = ("/run/docker.sock", "docker", "virsh")  # binaries by name: found on PATH
HIDDEN_DIRS = ("/run/libvirt", "/sys/fs/cgroup")
RUN_TIMEOUT_S = 600
# The claims of the groups `run-all --quick` runs (isolation, load, resources, neighbours;
# S1 from R1's clones restored on the host). Not here: G1 (needs the gVisor variant).
CHECKED_CLAIMS = ("A1", "A2", "U1", "I1", "I2", "I3", "P1", "R1", "R2", "R3", "R4", "N1", "S1")

# Runs as root inside `unshare --mount --net --pid --fork --mount-proc`: hide, open the one
# way in, check the confinement holds, then run the command given. --kill-child: the run's
# timeout kills unshare, and without it the namespace's processes (a `fab run-all` making
# clones in the stack's pool) would go on while the test destroys the stack.
CONFINE = r"""
set -eu
bridge_socket=$1; shift
mount --make-rprivate /
empty=$(mktemp)
for path in $HIDE_FILES; do mount --bind "$empty" "$path"; done
for dir in $HIDE_DIRS; do mount -t tmpfs -o ro,size=64k twinlab-hidden "$dir"; done
ip link set lo up
python -m tests.integration.ssh_bridge tcp-to-unix 127.0.0.1:2222 "$bridge_socket" \
    >"$empty.bridge" 2>&1 &
for _ in $(seq 100); do grep -q listening "$empty.bridge" && break; sleep 0.1; done
python -m tests.integration.test_nothing_local "$APP_PORTS"
exec "$@"
"""


def confinement_holds(app_ports: list[int]) -> list[str]:
    """What of this machine the confined process can still reach (run inside; empty: none)."""
    reached = []
    for name in ("docker", "virsh"):
        if shutil.which(name):
            reached.append(f"{name} binary")
    for path in ("/run/docker.sock", "/var/run/docker.sock", "/run/libvirt/libvirt-sock"):
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(path)
                reached.append(path)
            except OSError:
                pass
    if Path("/sys/fs/cgroup/cgroup.controllers").exists() or any(Path("/run/libvirt").iterdir()):
        reached.append("cgroup or libvirt runtime files")
    if len(list(Path("/proc").glob("[0-9]*"))) > 20:
        reached.append("this machine's processes in /proc")
    for port in app_ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            reached.append(f"127.0.0.1:{port}")
        except OSError:
            pass
    with socket.create_connection(TWINLAB_SSHD, timeout=10) as ssh:  # the one way in
        banner = ssh.recv(64)
    if not banner.startswith(b"SSH-2.0-"):
        reached.append(f"no SSH banner through the bridge: {banner!r}")
    return reached


@pytest.fixture
def bridge_socket(tmp_path: Path) -> Iterator[Path]:
    """The host side of the one way in: a unix socket relayed to twinlab's sshd."""
    path = tmp_path / "sshd.sock"
    stop = threading.Event()
    listener = unix_listener(str(path))
    thread = threading.Thread(
        target=serve, args=(listener, tcp_connector(*TWINLAB_SSHD), stop), daemon=True
    )
    thread.start()
    yield path
    stop.set()
    thread.join()
    listener.close()


def every_file(name: str) -> list[str]:
    """A path as is; a binary's name as every file of that name on PATH (here /usr/bin/docker
    and a static /usr/local/bin/docker both exist), symlinks resolved."""
    if name.startswith("/"):
        return [name]
    found = {
        os.path.realpath(path)
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if os.access(path := os.path.join(directory, name), os.X_OK)
    }
    return sorted(found)


def confined(
    command: list[str], bridge: Path, app_ports: list[int], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    files = [found for path in HIDDEN_FILES for found in every_file(path)]
    environment = (
        os.environ
        | {
            "HIDE_FILES": " ".join(files),
            "HIDE_DIRS": " ".join(HIDDEN_DIRS),
            "APP_PORTS": ",".join(map(str, app_ports)),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PYTHONPATH": str(ROOT),
        }
        | (env or {})
    )
    argv = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    return subprocess.run(
        [*argv, "sh", "-c", CONFINE, "confine", str(bridge), *command],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def latest_samples() -> list[Sample]:
    return read_samples(ROOT / "results" / "latest" / "samples.jsonl")


def test_checks_reach_the_remote_host_only_through_its_ssh(
    remote_access: Path,  # noqa: F811 - the fixture imported above
    bridge_socket: Path,
) -> None:
    key = state_dir() / "remote_ed25519"
    config = ci_stack_config(
        dockerHost=DOCKER_HOST,
        libvirtUri=LIBVIRT_URI,
        remoteSshKeyPath=str(key),
        variants="container,vm",
    )
    app_ports = [int(config[k]) for k in ("containerHttpPort", "vmHttpPort", "vmSshPort")]
    commands = Tail(remote_access / "commands.log")
    started = time.monotonic()
    with deployed(config) as (stack, out):
        up_s = time.monotonic() - started
        assert set(out[outputs.HOSTS]) == {"local"}
        assert out[outputs.HOSTS]["local"][outputs.HOST_SSH]["port"] == TWINLAB_SSHD[1]
        # S1 restores the host's own snapshot of the deployed VM; the host is this machine,
        # so it is made (or found cached) here, outside the confinement, as a user would on it.
        images = vm_images()
        ensure_snapshot(recipe_for_defaults(images, 512, 1), images, "qemu:///system")
        commands.new_text()  # only what the checks run counts from here

        started = time.monotonic()
        try:
            run = confined(
                ["fab", "run-all", "--quick", "--stack", stack.name], bridge_socket, app_ports
            )
        finally:  # a run killed at its timeout leaves its clones and budget on the host
            density_budget.remove_leftovers(stack.name)
        run_s = time.monotonic() - started
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

        # Every claim got its figures (a judge short of a sample says "missing sample"), and
        # the host column is the target host's, read over its SSH.
        samples = latest_samples()
        for claim in CHECKED_CLAIMS:
            assert any(claim in s.claims for s in samples) or claim == "S1", f"{claim}: no sample"
        # S1 reads R1's samples of clones restored on the host (filed under R1).
        assert any(s.metadata.get("start_method") == "restore" for s in samples), "no restore"
        for result in evaluate(samples, stack_thresholds(out)):
            if result.claim in CHECKED_CLAIMS:
                assert not result.summary.startswith("missing sample"), (
                    result.claim,
                    result.summary,
                )
        hosts = {s.target for s in samples if s.variant == "host"}
        assert hosts == {"ssh://root@127.0.0.1:2222"}, hosts
        # ... and it all went through the host's SSH: docker, virsh, the generators, /proc.
        ran = commands.new_text()
        for command in (
            "docker system dial-stdio",
            "docker exec",
            "virsh",
            "wrk",
            "vegeta",
            "cat -- /proc/",
            "dmesg --follow-new",  # R4's OOM kills from the host's kernel log
            'restore "$1"',  # S1: the snapshot restored by virsh on the host
        ):
            assert command in ran, f"{command!r} never ran on the host over SSH"

        # Negative control: the same confined run with the host read as local cannot reach
        # docker (its binary and socket are hidden) and says so.
        started = time.monotonic()
        local = confined(
            ["fab", "run-all", "--quick", "--stack", stack.name],
            bridge_socket,
            app_ports,
            {AS_LOCAL_ENV: "1"},
        )
        control_s = time.monotonic() - started
        assert local.returncode != 0
        assert "cannot reach docker" in local.stdout + local.stderr, local.stderr[-2000:]
    print(
        f"nothing local: up {up_s:.0f} s, confined run-all --quick {run_s:.0f} s, "
        f"forced-local control {control_s:.0f} s, load average {os.getloadavg()[0]:.2f}"
    )


def main(argv: list[str]) -> int:
    """Inside the confinement: exit non-zero naming anything of this machine still reached."""
    reached = confinement_holds([int(port) for port in argv[0].split(",") if port])
    if reached:
        print(f"confinement leaks: {', '.join(reached)}")
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
