"""Target URLs, the transport registry, and error mapping (docker's real stderr lines); the
local transport runs for real, SSH only as far as a refused loopback port."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from scripts.checks.results.samples import VariantLabel
from scripts.checks.targets.target import (
    TRANSPORTS,
    BadTargetUrlError,
    CommandResult,
    CommandTimeoutError,
    ContainerNotFoundError,
    ContainerNotRunningError,
    DockerTarget,
    LocalTarget,
    RootUnavailableError,
    SshTarget,
    TargetUnreachableError,
    ToolMissingError,
    parse_target,
    raise_if_sudo_refused,
)

pytestmark = pytest.mark.unit


def test_registry_names_one_class_per_scheme() -> None:
    assert {"docker": DockerTarget, "ssh": SshTarget, "local": LocalTarget} == TRANSPORTS
    assert [cls.guessed_kind for cls in TRANSPORTS.values()] == ["container", "vm", "host"]


def test_a_target_named_by_hand_has_its_kind_guessed_and_labelled_so() -> None:
    guessed = parse_target("docker://twinlab-dev-gvisor")
    assert (guessed.variant, guessed.kind, guessed.label.guessed) == (
        "container?",
        "container",
        True,
    )
    assert guessed.label.metadata() == {"variant_guessed_from": "URL scheme"}
    known = parse_target("docker://twinlab-dev-gvisor", VariantLabel("gvisor", "sandbox"))
    assert (known.variant, known.kind, known.label.metadata()) == ("gvisor", "sandbox", {})
    assert parse_target("local://", VariantLabel("x", "vm")).kind == "host"


def test_docker_urls() -> None:
    plain = parse_target("docker://twinlab-dev-app")
    assert isinstance(plain, DockerTarget)
    assert (plain.name, plain.docker_host, plain.kind) == ("twinlab-dev-app", None, "container")
    remote = parse_target("docker://app?host=ssh://ops@build-host")
    assert isinstance(remote, DockerTarget) and remote.docker_host == "ssh://ops@build-host"
    assert remote.docker_argv("ps") == ["docker", "-H", "ssh://ops@build-host", "ps"]


def test_ssh_urls() -> None:
    vm = parse_target("ssh://twin@127.0.0.1:12222?key=/keys/dev.key")
    assert isinstance(vm, SshTarget)
    assert (vm.user, vm.host, vm.port, vm.key, vm.kind) == (
        "twin",
        "127.0.0.1",
        12222,
        "/keys/dev.key",
        "vm",
    )
    default_port = parse_target("ssh://twin@127.0.0.1")
    assert isinstance(default_port, SshTarget) and default_port.port == 22
    assert default_port.wait_s == 20.0


def test_local_url() -> None:
    host = parse_target("local://")
    assert isinstance(host, LocalTarget) and (host.url, host.kind) == ("local://", "host")


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://127.0.0.1:8080", "docker://NAME"),
        ("twinlab-dev-app", "docker://NAME"),
        ("docker://", "docker://CONTAINER_NAME"),
        ("docker://app/extra", "docker://CONTAINER_NAME"),
        ("docker://app?hots=tcp://x", "unknown query parameter 'hots'"),
        ("ssh://127.0.0.1:22", "ssh://USER@HOST"),
        ("ssh://twin@127.0.0.1:ssh", "port must be a number"),
        ("local://elsewhere", "just local://"),
    ],
)
def test_bad_urls_name_the_accepted_form(url: str, hint: str) -> None:
    with pytest.raises(BadTargetUrlError, match=hint.replace("?", r"\?")):
        parse_target(url)


@pytest.mark.parametrize(
    ("stderr", "error", "hint"),
    [
        (
            "Error response from daemon: No such container: nope\n",
            ContainerNotFoundError,
            "docker ps -a",
        ),
        (
            "Error response from daemon: Container fdf43d4f4bba is not running\n",
            ContainerNotRunningError,
            "docker start app",
        ),
        (
            "Error response from daemon: Container app is paused, unpause the container "
            "before exec\n",
            ContainerNotRunningError,
            "docker unpause app",
        ),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?\n",
            TargetUnreachableError,
            "start dockerd",
        ),
    ],
)
def test_docker_daemon_errors_become_target_errors(
    stderr: str, error: type[Exception], hint: str
) -> None:
    target = parse_target("docker://app")
    assert isinstance(target, DockerTarget)
    with pytest.raises(error, match=hint):
        target.raise_for_daemon_error(stderr)


def test_a_commands_own_stderr_is_not_a_daemon_error() -> None:
    target = parse_target("docker://app")
    assert isinstance(target, DockerTarget)
    target.raise_for_daemon_error("cat: /proc/modules: No such file or directory\n")


def test_missing_docker_cli_names_the_setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match=r"scripts/setup\.sh"):
        parse_target("docker://app").run("true")


def test_sudo_asking_for_a_password_is_a_root_error() -> None:
    refused = CommandResult(1, "", "sudo: a password is required\n")
    with pytest.raises(RootUnavailableError, match="NOPASSWD"):
        raise_if_sudo_refused("ssh://twin@127.0.0.1:2222", "twin", refused)
    raise_if_sudo_refused("ssh://twin@127.0.0.1:2222", "twin", CommandResult(1, "", "no\n"))


def test_local_commands_run_in_sh() -> None:
    with parse_target("local://") as host:
        assert host.run("echo out; echo err >&2; exit 4") == CommandResult(4, "out\n", "err\n")
        assert host.run("echo $0").stdout == "sh\n"
        assert host.run("id -u", root=True).stdout.strip() == "0"


def test_local_timeout_is_a_target_error() -> None:
    with pytest.raises(CommandTimeoutError, match=r"timed out after 0\.2 s: sleep 5"):
        LocalTarget("local://").run("sleep 5", timeout_s=0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ssh_to_a_closed_loopback_port_says_refused() -> None:
    target = parse_target(f"ssh://twin@127.0.0.1:{free_port()}?wait=0")
    with pytest.raises(TargetUnreachableError, match="refused; is the VM running"):
        target.run("true")


def test_ssh_retries_while_a_vm_starts_its_sshd() -> None:
    target = parse_target(f"ssh://twin@127.0.0.1:{free_port()}?wait=1")
    started = time.monotonic()
    with pytest.raises(TargetUnreachableError, match=r"refused \(waited 1 s\)"):
        target.run("true")
    assert 1.0 <= time.monotonic() - started < 5.0


@pytest.mark.parametrize("wait", ["-1", "soon", "3600"])
def test_ssh_wait_must_be_a_bounded_number(wait: str) -> None:
    with pytest.raises(BadTargetUrlError, match="wait="):
        parse_target(f"ssh://twin@127.0.0.1:22?wait={wait}")


def test_ssh_with_a_missing_key_file(tmp_path: Path) -> None:
    target = parse_target(f"ssh://twin@127.0.0.1:22?key={tmp_path}/absent")
    with pytest.raises(BadTargetUrlError, match="does not exist"):
        target.run("true")
