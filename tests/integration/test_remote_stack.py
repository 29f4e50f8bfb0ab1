"""The `remote` stack's transports for real: Docker over ssh:// and libvirt over qemu+ssh://, both
through twinlab's own sshd on 127.0.0.1:2222 (scripts/remote_access.sh). Both variants answer
with the same version, the providers really went through SSH (sshd's logs and the providers'
inputs say so), and destroy leaves nothing."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from components import outputs
from components.naming import stack_prefix
from components.paths import state_dir
from components.remote_ssh import known_hosts_path
from scripts import leftovers
from tests.deploy import ROOT, ci_stack_config, deployed

DOCKER_HOST = "ssh://root@127.0.0.1:2222"
LIBVIRT_URI = "qemu+ssh://root@127.0.0.1:2222/system"

LOGIN_RE = re.compile(r"^Accepted publickey for (\S+) from (\S+) port (\d+) ssh2: \S+ (SHA256:\S+)")
SESSION_RE = re.compile(r"^Starting session: command for \S+ from (\S+) port (\d+) ")


@dataclass(frozen=True)
class Login:
    user: str
    source: str
    port: int
    fingerprint: str
    ran_command: bool  # False: the connection only carried forwarded channels (libvirt)


def logins_from_sshd_log(text: str) -> list[Login]:
    """Key logins in an sshd LogLevel VERBOSE log, and whether each one ran a command."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for line in text.splitlines():
        if login := LOGIN_RE.match(line):
            user, source, port, fingerprint = login.groups()
            found[(source, int(port))] = {"user": user, "fingerprint": fingerprint, "cmd": False}
        elif (session := SESSION_RE.match(line)) and (
            key := (session[1], int(session[2]))
        ) in found:
            found[key]["cmd"] = True
    return [
        Login(v["user"], source, port, v["fingerprint"], v["cmd"])
        for (source, port), v in found.items()
    ]


CAPTURED_LOG = """\
Connection from 127.0.0.1 port 44936 on 127.0.0.1 port 2222 rdomain ""
Postponed publickey for root from 127.0.0.1 port 44936 ssh2 [preauth]
Accepted publickey for root from 127.0.0.1 port 44936 ssh2: ED25519 SHA256:lHtgwRad8NL+MY+/b7aw
Starting session: command for root from 127.0.0.1 port 44936 id 0
Connection from 127.0.0.1 port 42270 on 127.0.0.1 port 2222 rdomain ""
Accepted publickey for root from 127.0.0.1 port 42270 ssh2: ED25519 SHA256:lHtgwRad8NL+MY+/b7aw
Received disconnect from 127.0.0.1 port 42270:11: disconnected by user
"""


@pytest.mark.unit
def test_sshd_log_parser_tells_commands_from_forward_only_logins() -> None:
    logins = logins_from_sshd_log(CAPTURED_LOG)
    assert [(login.port, login.ran_command) for login in logins] == [(44936, True), (42270, False)]
    assert {login.fingerprint for login in logins} == {"SHA256:lHtgwRad8NL+MY+/b7aw"}
    assert {(login.user, login.source) for login in logins} == {("root", "127.0.0.1")}


class Tail:
    """What a log file gains from now on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_text(self) -> str:
        with self.path.open(errors="replace") as log:
            log.seek(self.offset)
            return log.read()


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return dict(json.load(response))


def provider_inputs(stack: auto.Stack, package: str) -> list[dict[str, Any]]:
    deployment = stack.export_stack().deployment or {}
    resources = deployment.get("resources", [])
    kind = f"pulumi:providers:{package}"
    return [resource.get("inputs", {}) for resource in resources if resource["type"] == kind]


@pytest.fixture(scope="module")
def remote_access() -> Path:
    """twinlab's sshd, started if needed (the setup does this too); returns its directory."""
    done = subprocess.run(
        [str(ROOT / "scripts/remote_access.sh")], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/remote_access.sh failed: {done.stderr.strip()}", pytrace=False)
    return state_dir() / "sshd"


@pytest.mark.integration
def test_remote_stack_goes_through_ssh_and_leaves_nothing(remote_access: Path) -> None:
    key = state_dir() / "remote_ed25519"
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    config = ci_stack_config(
        dockerHost=DOCKER_HOST, libvirtUri=LIBVIRT_URI, remoteSshKeyPath=str(key)
    )
    sshd_log, commands = Tail(remote_access / "sshd.log"), Tail(remote_access / "commands.log")

    started = time.monotonic()
    with deployed(config) as (stack, out):
        up_s = time.monotonic() - started
        container, vm = out[outputs.VARIANTS]["container"], out[outputs.VARIANTS]["vm"]
        versions = {get_json(v[outputs.URL] + "/info")["version"] for v in (container, vm)}
        assert versions == {out[outputs.APP_VERSION]}
        assert (out[outputs.DOCKER_HOST], out[outputs.LIBVIRT_URI]) == (DOCKER_HOST, LIBVIRT_URI)

        # The providers were configured for SSH, with twinlab's key and known_hosts ...
        dockers = provider_inputs(stack, "docker")  # one per container variant (runc, gVisor)
        assert dockers
        for docker in dockers:
            assert docker["host"] == DOCKER_HOST
            # Provider config of a list type is kept JSON-encoded in the state.
            raw_opts = docker["sshOpts"]
            ssh_opts = json.loads(raw_opts) if isinstance(raw_opts, str) else raw_opts
            assert ssh_opts[:2] == ["-i", str(key)]
            assert f"UserKnownHostsFile={known_hosts_path()}" in ssh_opts
        (libvirt,) = provider_inputs(stack, "libvirt")
        assert libvirt["uri"].startswith(LIBVIRT_URI + "?")
        assert f"keyfile={key}" in libvirt["uri"]

        # ... and really used it: the Docker provider's `docker system dial-stdio` sessions and
        # libvirt's forward-only connections (the check's and the provider's), all with the key.
        up_commands = commands.new_text()
        up_logins = logins_from_sshd_log(sshd_log.new_text())
        assert "docker system dial-stdio" in up_commands, up_commands
        assert up_logins and {login.fingerprint for login in up_logins} == {fingerprint}
        assert {(login.user, login.source) for login in up_logins} == {("root", "127.0.0.1")}
        forward_only = [login for login in up_logins if not login.ran_command]
        assert len(forward_only) >= 2, up_logins

        prefix = stack_prefix(stack.name)
        ports = tuple(int(config[k]) for k in ("containerHttpPort", "vmHttpPort", "vmSshPort"))
        destroy_commands = Tail(remote_access / "commands.log")
        started = time.monotonic()
        first = stack.destroy(color="never")
        destroy_s = time.monotonic() - started
        assert (first.summary.resource_changes or {}).get(auto.OpType.DELETE, 0) > 0
        assert "docker system dial-stdio" in destroy_commands.new_text()
        remaining = leftovers.find(prefix, ports=ports)
        assert remaining.count() == 0, remaining.describe()
    print(f"remote stack: up {up_s:.0f} s, destroy {destroy_s:.0f} s, {len(up_logins)} ssh logins")
