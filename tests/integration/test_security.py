"""Security of one deployed stack: a locked-down container, a keys-only VM, a private key that
never appears in plain text (state export, state files, up/destroy output), and every listening
socket of the stack on 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from components import outputs
from components.naming import stack_prefix
from components.registry import by_name
from scripts import leftovers
from scripts.checks.targets.deployed import ROOT, read_deployed
from scripts.checks.targets.target import parse_target
from tests.deploy import ci_stack_config, deployed

pytestmark = pytest.mark.integration

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value in state
# An ssh client that offers only a password (never a key) and asks nothing on a terminal.
PASSWORD_ONLY = (
    *("-o", "BatchMode=yes", "-o", "PreferredAuthentications=password,keyboard-interactive"),
    *("-o", "PubkeyAuthentication=no", "-o", "StrictHostKeyChecking=no"),
    *("-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20"),
)


@dataclass
class SecuredStack:
    stack: auto.Stack
    config: dict[str, str]
    out: dict[str, Any]
    log: list[str]

    @property
    def container(self) -> str:
        return str(self.out[outputs.VARIANTS]["container"][outputs.INSTANCE_NAME])

    @property
    def domain(self) -> str:
        return str(self.out[outputs.VARIANTS]["vm"][outputs.INSTANCE_NAME])

    @property
    def private_key(self) -> str:
        return str(self.out[outputs.SSH_PRIVATE_KEYS]["vm"])

    def containers(self) -> list[str]:
        """Every deployed variant that is a Docker container (runc or a sandbox)."""
        return [
            str(item[outputs.INSTANCE_NAME])
            for item in self.out[outputs.VARIANTS].values()
            if item[outputs.KIND] != "vm"
        ]

    def ports(self) -> tuple[int, ...]:
        """The 127.0.0.1 ports of the variants deployed (not of those left out)."""
        return tuple(
            int(self.config[need.config_key])
            for name in self.out[outputs.VARIANTS]
            for need in by_name(name).ports
        )


@pytest.fixture(scope="module")
def secured() -> Iterator[SecuredStack]:
    config = ci_stack_config()
    log: list[str] = []
    with deployed(config, log=log) as (stack, out):
        yield SecuredStack(stack, config, out, log)
        leftovers.remove_key_files(stack.name)


def key_fragments(private_key: str) -> list[str]:
    """The header and every base64 line of the key body: none may appear anywhere."""
    body = [line.strip() for line in private_key.splitlines() if "-----" not in line]
    return ["PRIVATE KEY", *[line for line in body if len(line) >= 16]]


def leaked(text: str, private_key: str) -> list[str]:
    return [fragment for fragment in key_fragments(private_key) if fragment in text]


def docker_inspect(name: str) -> dict[str, Any]:
    done = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout)[0])


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def container_pids(name: str) -> list[int]:
    done = subprocess.run(
        ["docker", "top", name, "-eo", "pid"], capture_output=True, text=True, check=True
    )
    return [int(row) for row in done.stdout.split()[1:]]


# --- the container -------------------------------------------------------------------------


def test_container_runs_as_a_non_root_user(secured: SecuredStack) -> None:
    inspect = docker_inspect(secured.container)
    assert inspect["Config"]["User"] not in ("", "0", "root", "0:0")
    pids = container_pids(secured.container)
    assert pids, "no process in the container"
    for pid in pids:
        real, effective, saved, filesystem = proc_status(pid)["Uid"].split()
        assert "0" not in (real, effective, saved, filesystem), f"pid {pid} has uid 0"


def test_container_drops_every_capability_and_cannot_gain_privileges(
    secured: SecuredStack,
) -> None:
    host_config = docker_inspect(secured.container)["HostConfig"]
    assert [cap.upper() for cap in host_config["CapDrop"]] == ["ALL"]
    assert not host_config["CapAdd"]
    assert not host_config["Privileged"]
    assert "no-new-privileges:true" in host_config["SecurityOpt"]
    for pid in container_pids(secured.container):
        status = proc_status(pid)
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, status
        assert int(status["CapBnd"], 16) == 0, f"pid {pid} bounding set {status['CapBnd']}"
        assert status["NoNewPrivs"] == "1"


def test_container_root_filesystem_is_read_only(secured: SecuredStack) -> None:
    assert docker_inspect(secured.container)["HostConfig"]["ReadonlyRootfs"] is True
    attempt = subprocess.run(
        ["docker", "exec", "-u", "0", secured.container, "sh", "-c", "touch /etc/twinlab-probe"],
        capture_output=True,
        text=True,
    )
    assert attempt.returncode != 0 and "Read-only file system" in attempt.stderr


# --- the VM --------------------------------------------------------------------------------


def wait_for_sshd(port: int, timeout_s: float = 60.0) -> None:
    """The app answers before sshd starts (app-first boot): wait for sshd's banner."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                if conn.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"no sshd banner on 127.0.0.1:{port}"
        time.sleep(0.5)


@pytest.mark.parametrize("user", ["twin", "root"])
def test_vm_sshd_refuses_passwords(secured: SecuredStack, user: str) -> None:
    port = secured.config["vmSshPort"]
    wait_for_sshd(int(port))
    attempt = subprocess.run(
        ["ssh", "-F", "/dev/null", "-p", port, *PASSWORD_ONLY, f"{user}@127.0.0.1", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The methods in parentheses are the server's: publickey only, no password, no keyboard.
    assert attempt.returncode == 255
    assert "Permission denied (publickey)." in attempt.stderr, attempt.stderr


def test_vm_sshd_configuration_allows_keys_only(secured: SecuredStack) -> None:
    vm = read_deployed(secured.stack.name).variant("vm")
    with parse_target(vm.target + "&wait=60") as guest:
        effective = guest.run("sshd -T", root=True).stdout
        shadow = guest.run("getent shadow twin root", root=True).stdout
    settings = dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitemptypasswords"] == "no"
    assert settings["permitrootlogin"] == "no"
    assert settings["pubkeyauthentication"] == "yes"
    for row in shadow.splitlines():
        user, password_hash = row.split(":")[:2]
        assert password_hash.startswith(("!", "*")), f"{user} has a usable password"


# --- the key -------------------------------------------------------------------------------


def pulumi_cli(*args: str) -> str:
    done = subprocess.run(["pulumi", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def test_the_key_is_a_secret_in_the_state_and_outputs(secured: SecuredStack) -> None:
    assert "OPENSSH PRIVATE KEY" in secured.private_key  # the real key, to search for
    name = secured.stack.name
    exported = pulumi_cli("stack", "export", "--stack", name)
    assert leaked(exported, secured.private_key) == []
    resources = json.loads(exported)["deployment"]["resources"]
    root = next(r for r in resources if r["type"] == "pulumi:pulumi:Stack")
    key_pair = next(r for r in resources if r["urn"].endswith("::vm-ssh-key"))
    for stored in (
        root["outputs"][outputs.SSH_PRIVATE_KEYS],
        key_pair["outputs"]["private_key_openssh"],
    ):
        assert SECRET_SIG in stored and "ciphertext" in stored, stored
    # With --show-secrets the same export holds it: the check above looks at the right place.
    revealed = pulumi_cli("stack", "export", "--show-secrets", "--stack", name)
    assert leaked(revealed, secured.private_key) != []

    shown = json.loads(pulumi_cli("stack", "output", "--json", "--stack", name))
    assert shown[outputs.SSH_PRIVATE_KEYS] == "[secret]"
    assert leaked(pulumi_cli("stack", "output", "--stack", name), secured.private_key) == []


def test_the_state_files_hold_no_plain_key(secured: SecuredStack) -> None:
    backend = os.environ.get("PULUMI_BACKEND_URL", "")
    if not backend.startswith("file://"):
        pytest.skip(f"state is not in local files ({backend or 'default backend'})")
    files = [
        path
        for path in Path(backend.removeprefix("file://")).rglob("*")
        if path.is_file() and secured.stack.name in str(path)
    ]
    assert files, "no state file of the stack found"
    for path in files:
        text = path.read_bytes().decode(errors="replace")
        assert leaked(text, secured.private_key) == [], path


def test_the_key_file_for_the_checks_is_private(secured: SecuredStack) -> None:
    vm = read_deployed(secured.stack.name).variant("vm")
    key_path = Path(vm.target.split("?key=")[1])
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700


def test_the_guest_definition_holds_only_the_public_key(secured: SecuredStack) -> None:
    xml = subprocess.run(
        ["virsh", "-c", "qemu:///system", "dumpxml", secured.domain],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "twinlab.ssh_key=" in xml
    assert leaked(xml, secured.private_key) == []
    inspect = json.dumps(docker_inspect(secured.container))
    assert leaked(inspect, secured.private_key) == []


# --- the network ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    address: str  # as ss prints it: 127.0.0.1, 0.0.0.0, [::], *, [::1] ...
    port: int
    pids: tuple[int, ...]


def parse_ss_listeners(text: str) -> list[Listener]:
    """`ss -Hltnp` rows -> listeners (local address, port, owning pids)."""
    found = []
    for row in text.splitlines():
        fields = row.split()
        if len(fields) < 4:
            continue
        address, _, port = fields[3].rpartition(":")
        pids = tuple(int(pid) for pid in re.findall(r"pid=(\d+)", row))
        found.append(Listener(address.split("%")[0], int(port), pids))
    return found


SS_SAMPLE = """\
LISTEN 0      4096       127.0.0.1:18080      0.0.0.0:*    users:(("docker-proxy",pid=811,fd=4))
LISTEN 0      1          127.0.0.1:18081      0.0.0.0:*    users:(("qemu-system-x86",pid=9,fd=31))
LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=5,fd=3),("sshd",pid=6,fd=3))
LISTEN 0      4096            [::]:2375          [::]:*    users:(("dockerd",pid=7,fd=9))
LISTEN 0      4096      [::1]%lo:631             [::]:*
"""


def test_parse_ss_listeners_on_captured_output() -> None:
    assert parse_ss_listeners(SS_SAMPLE) == [
        Listener("127.0.0.1", 18080, (811,)),
        Listener("127.0.0.1", 18081, (9,)),
        Listener("0.0.0.0", 22, (5, 6)),
        Listener("[::]", 2375, (7,)),
        Listener("[::1]", 631, ()),
    ]


def qemu_pid(domain: str) -> int:
    return int(Path(f"/run/libvirt/qemu/{domain}.pid").read_text().strip())


def docker_proxy_pids(container_ip: str) -> list[int]:
    done = subprocess.run(
        ["pgrep", "-f", f"docker-proxy .*-container-ip {container_ip} "],
        capture_output=True,
        text=True,
    )
    return [int(pid) for pid in done.stdout.split()]


def test_every_listening_socket_of_the_stack_is_on_loopback(secured: SecuredStack) -> None:
    listeners = parse_ss_listeners(
        subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    )
    ips = [docker_inspect(name)["NetworkSettings"]["IPAddress"] for name in secured.containers()]
    owners = {qemu_pid(secured.domain), *(pid for ip in ips for pid in docker_proxy_pids(ip))}
    assert len(owners) >= 1 + len(ips), "QEMU or a docker-proxy not found"
    stack_sockets = [
        listener
        for listener in listeners
        if listener.port in secured.ports() or owners & set(listener.pids)
    ]
    # Each configured port is listened on, by the stack itself, and on 127.0.0.1 only.
    assert {listener.port for listener in stack_sockets} >= set(secured.ports())
    for listener in stack_sockets:
        assert listener.address == "127.0.0.1", listener
        assert owners & set(listener.pids), f"port {listener.port} held by {listener.pids}"


# --- output of up and destroy (last: it tears the stack down) ------------------------------


def test_up_and_destroy_output_hold_no_key_and_destroy_leaves_nothing(
    secured: SecuredStack,
) -> None:
    assert any(outputs.SSH_PRIVATE_KEYS in line for line in secured.log)  # outputs printed
    destroyed = secured.stack.destroy(color="never", on_output=secured.log.append)
    assert (destroyed.summary.resource_changes or {}).get(auto.OpType.DELETE, 0) > 0
    assert leaked("\n".join(secured.log), secured.private_key) == []
    found = leftovers.find(stack_prefix(secured.stack.name), ports=secured.ports())
    assert found.count() == 0, found.describe()
