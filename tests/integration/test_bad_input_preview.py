"""Bad config and stopped daemons, through a real `pulumi preview`: each is rejected with a
message naming the key (or daemon) and the fix, no Python stack trace, and nothing created.

One stack for the whole module; each case sets its keys, previews, and removes them again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulumi import automation as auto

from components.naming import stack_prefix
from components.virt_mode import load_record
from scripts import leftovers
from tests.deploy import ci_stack_config as stack_config
from tests.deploy import deployed
from workloads.images import ImagesNotBuiltError, find_images

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class BadInput:
    config: dict[str, str]  # values may name {busyPort}, {containerHttpPort}, {cpus+1}, {keyFile}
    key: str  # the key the message must name
    reason: str  # a fragment of the reason


CASES = [
    BadInput({"memoryMib": "lots"}, "memoryMib", "not an integer"),
    BadInput({"memoryMib": "64"}, "memoryMib", "between 256"),
    BadInput({"memoryMib": "10000000"}, "memoryMib", "between 256 and"),
    BadInput({"vcpus": "{cpus+1}"}, "vcpus", "between 1 and {cpus}"),
    BadInput({"vcpus": "0"}, "vcpus", "between 1 and"),
    BadInput({"vcpus": "1.5"}, "vcpus", "not an integer"),
    BadInput({"workers": "100"}, "workers", "between 1 and 16"),
    BadInput({"containerHttpPort": "{busyPort}"}, "containerHttpPort", "already in use"),
    BadInput(
        {"vmHttpPort": "{containerHttpPort}"}, "vmHttpPort", "same port as twinlab:containerHttp"
    ),
    BadInput({"vmSshPort": "70000"}, "vmSshPort", "between 1 and 65535"),
    BadInput({"virtMode": "xen"}, "virtMode", "unknown virtualization mode"),
    BadInput({"appVersion": ""}, "appVersion", "empty"),
    BadInput({"appVersion": "2.0.0"}, "appVersion", "no images built"),
    BadInput({"appVersion": "1 0"}, "appVersion", "not a version string"),
    BadInput({"dockerHost": "docker.local"}, "dockerHost", "not a Docker host URL"),
    BadInput({"libvirtUri": "xen:///system"}, "libvirtUri", "not a libvirt QEMU system URI"),
    BadInput({"libvirtUri": "qemu:///session"}, "libvirtUri", "not a libvirt QEMU system URI"),
    BadInput(
        {"dockerHost": "ssh://root@127.0.0.1", "remoteSshKeyPath": "/nope/id_ed25519"},
        "remoteSshKeyPath",
        "not a readable file",
    ),
    BadInput({"remoteSshKeyPath": "{keyFile}"}, "remoteSshKeyPath", "neither daemon"),
    BadInput({"env": "[1, 2]"}, "env", "must be an object"),
    BadInput({"env": "{not json"}, "env", "not JSON"),
    BadInput({"env": '{"TWINLAB_WORKERS": "9"}'}, "env", "set by twinlab"),
    BadInput({"env": '{"A": "two\\nlines"}'}, "env", "newline"),
    BadInput({"poolDir": "relative/dir"}, "poolDir", "not an absolute path"),
    BadInput({"thresholds": '{"r1": 2}'}, "thresholds", "unknown"),
    BadInput({"memroyMib": "512"}, "memroyMib", "did you mean memoryMib"),
    BadInput({"variants": "container,nosuch"}, "variants", "unknown variant 'nosuch'"),
    BadInput({"variants": "container,,vm"}, "variants", "not a comma list or JSON list"),
]
record = load_record()
if record is not None and record.mode == "tcg":
    # Contradicts the setup's probe only where KVM was found unusable.
    CASES.append(BadInput({"virtMode": "kvm"}, "virtMode", "found KVM unusable"))


@dataclass
class PreviewStack:
    stack: auto.Stack
    base: dict[str, str]
    values: dict[str, str]

    def substitute(self, text: str) -> str:
        """Fill in {busyPort} and the like (str.format would trip on JSON's braces)."""
        for name, value in self.values.items():
            text = text.replace(f"{{{name}}}", value)
        return text

    @property
    def prefix(self) -> str:
        return stack_prefix(self.stack.name)

    def preview_error(self, config: dict[str, str]) -> str:
        """Set `config` on top of the base, preview, restore; the error text of the preview."""
        given = {key: self.substitute(value) for key, value in config.items()}
        self.stack.set_all_config(
            {f"twinlab:{key}": auto.ConfigValue(value) for key, value in given.items()}
        )
        try:
            self.stack.preview(color="never")
        except auto.errors.CommandError as error:
            return str(error)
        finally:
            self.stack.remove_all_config([f"twinlab:{key}" for key in given])
            self.stack.set_all_config(
                {f"twinlab:{key}": auto.ConfigValue(value) for key, value in self.base.items()}
            )
        raise AssertionError(f"preview accepted {given}")

    def assert_nothing_created(self) -> None:
        state = self.stack.export_stack().deployment or {}
        # A failed `up` records the stack's own root (pulumi:pulumi:Stack): not a resource.
        kept = [
            r["urn"] for r in state.get("resources") or [] if r["type"] != "pulumi:pulumi:Stack"
        ]
        assert kept == [], f"the stack's state holds resources: {kept}"
        found = leftovers.find(self.prefix)
        assert found.count() == 0, found.describe()
        labelled = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=twinlab.stack={self.stack.name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert labelled == []


@pytest.fixture(scope="module")
def preview_stack() -> Iterator[PreviewStack]:
    try:
        find_images()  # the program looks for them first: without them every case fails alike
    except ImagesNotBuiltError as error:
        pytest.fail(str(error), pytrace=False)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    with tempfile.NamedTemporaryFile("w", suffix=".key") as key_file:
        key_file.write("not used: only its readability matters\n")
        key_file.flush()
        base = stack_config()
        values = base | {
            "busyPort": str(busy.getsockname()[1]),
            "cpus": str(os.cpu_count()),
            "cpus+1": str((os.cpu_count() or 1) + 1),
            "keyFile": key_file.name,
        }
        try:
            with deployed(base, up=False) as (stack, _):
                yield PreviewStack(stack, base, values)
        finally:
            busy.close()


def problem_lines(message: str, key: str) -> list[str]:
    return [line.strip() for line in message.splitlines() if f"twinlab:{key}" in line]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.key}={c.config}" for c in CASES])
def test_bad_config_is_rejected_at_preview(preview_stack: PreviewStack, case: BadInput) -> None:
    message = preview_stack.preview_error(case.config)
    lines = problem_lines(message, case.key)
    reason = preview_stack.substitute(case.reason)
    assert any(reason in line for line in lines), message
    if not case.reason.startswith("did you mean"):  # an unknown key has no accepted values
        assert all("(accepted: " in line for line in lines if reason in line), message
    assert "Traceback" not in message
    preview_stack.assert_nothing_created()


DAEMONS = [
    pytest.param(
        {"dockerHost": "unix:///run/twinlab-nope.sock"},
        "the Docker daemon at unix:///run/twinlab-nope.sock does not answer",
        id="dockerd",
    ),
    pytest.param(
        {"libvirtUri": "qemu+unix:///system?socket=/run/twinlab-nope"},
        "libvirtd at qemu+unix:///system?socket=/run/twinlab-nope does not answer",
        id="libvirtd",
    ),
]


@pytest.mark.parametrize(("config", "named"), DAEMONS)
def test_a_stopped_daemon_is_named_with_the_setup_command(
    preview_stack: PreviewStack, config: dict[str, str], named: str
) -> None:
    """A daemon that does not answer (a socket nobody listens on: the real daemons keep running
    for everyone else) stops preview and up with one message, not a provider stack trace."""
    assert not any(Path(p).exists() for p in ("/run/twinlab-nope.sock", "/run/twinlab-nope"))
    message = preview_stack.preview_error(config)
    assert named in message and "scripts/setup.sh" in message, message
    for noise in ("Traceback", "panic:", "goroutine ", "grpc"):
        assert noise not in message, message

    # `pulumi up` runs the same program: it stops the same way, before creating anything.
    preview_stack.stack.set_all_config(
        {f"twinlab:{key}": auto.ConfigValue(value) for key, value in config.items()}
    )
    try:
        with pytest.raises(auto.errors.CommandError) as failed_up:
            preview_stack.stack.up(color="never")
    finally:
        preview_stack.stack.remove_all_config([f"twinlab:{key}" for key in config])
    assert named in str(failed_up.value)
    preview_stack.assert_nothing_created()


def test_a_stopped_local_dockerd_is_named_with_the_setup_command(
    preview_stack: PreviewStack,
) -> None:
    """The program also asks the local Docker for the built image before anything else: with
    that daemon unreachable too (DOCKER_HOST at a dead socket, for the Pulumi run only), the
    message still names the daemon and the setup, without a stack trace."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", "unix:///run/twinlab-nope.sock")
        message = preview_stack.preview_error({"dockerHost": "unix:///run/twinlab-nope.sock"})
    assert "Docker daemon" in message and "scripts/setup.sh" in message, message
    assert "Traceback" not in message, message
    preview_stack.assert_nothing_created()
