"""pulumi-libvirt 0.5.4's qemu+ssh:// quirks (components/libvirt_ssh_quirks.py): each one that
would make it fail, or connect elsewhere than the URI says, is named before anything is
created. Pure: the ssh config text, the key check and known_hosts are given."""

from __future__ import annotations

import itertools

import pytest

from components.libvirt_ssh_quirks import provider_uri_problems
from components.remote_ssh import PROVIDER_HOST_KEY_ALGORITHMS, ssh_client_options

pytestmark = pytest.mark.unit

GOOD = "qemu+ssh://root@vm-host:2222/system?keyfile=/k&knownhosts=/kh&sshauth=privkey"


def problems(uri: str, ssh_config: str = "", key_problem: str | None = None) -> list[str]:
    return provider_uri_problems(
        uri,
        ssh_config,
        key_problem_of=lambda _path: key_problem,
        known_host_present=lambda path, host, port: (path, host, port) == ("/kh", "vm-host", 2222),
    )


def test_a_complete_uri_has_no_problem_and_other_transports_are_not_checked() -> None:
    assert problems(GOOD) == []
    assert problems("qemu:///system") == []
    assert problems("qemu+tcp://vm-host/system") == []


def test_the_user_must_be_in_the_uri() -> None:
    (why,) = problems(GOOD.replace("root@", ""))
    assert "ignores ~/.ssh/config's User" in why


@pytest.mark.parametrize(
    "config", ["Host vm-host\n  Port 22\n", "Host *\n  Port 2200\n", "Host vm-*\n Port 1\n"]
)
def test_an_ssh_config_port_that_differs_from_the_uri_is_named(config: str) -> None:
    (why,) = problems(GOOD, config)
    assert "instead of the URI's port 2222" in why


def test_an_ssh_config_port_that_agrees_or_names_another_host_is_fine() -> None:
    assert problems(GOOD, "Host vm-host\n  Port 2222\n") == []
    assert problems(GOOD, "Host other\n  Port 22\n") == []


def test_proxy_command_is_named_proxy_jump_is_not() -> None:
    (why,) = problems(GOOD, "Host vm-host\n  ProxyCommand nc %h %p\n")
    assert "ProxyCommand" in why and "ProxyJump" in why
    assert problems(GOOD, "Host vm-host\n  ProxyJump bastion\n") == []


@pytest.mark.parametrize("sshauth", ["keyboard-interactive", "password", "privkey,gssapi", ""])
def test_auth_methods_the_provider_does_not_know(sshauth: str) -> None:
    (why,) = problems(GOOD.replace("sshauth=privkey", f"sshauth={sshauth}"))
    assert "knows only agent, privkey, ssh-password" in why


def test_an_unusable_keyfile_is_named_only_when_privkey_is_used() -> None:
    (why,) = problems(GOOD, key_problem="it is protected by a passphrase")
    assert why.startswith("keyfile: ") and "passphrase" in why
    agent_only = GOOD.replace("sshauth=privkey", "sshauth=agent")
    assert problems(agent_only, key_problem="it is protected by a passphrase") == []


def test_no_verify_zero_is_refused_because_the_provider_reads_it_as_off() -> None:
    (why,) = problems(GOOD + "&no_verify=0")
    assert "present at all" in why
    # no_verify=1 means the same to both readers; host keys are then not looked up.
    assert problems(GOOD.replace("knownhosts=/kh", "knownhosts=/none") + "&no_verify=1") == []


def test_a_host_missing_from_known_hosts_is_named() -> None:
    (why,) = problems(GOOD.replace("knownhosts=/kh", "knownhosts=/elsewhere"))
    assert "/elsewhere holds no host key for vm-host port 2222" in why
    assert "no trust on first use" in why


def test_without_knownhosts_the_ssh_config_file_or_home_known_hosts_is_read() -> None:
    without = GOOD.replace("&knownhosts=/kh", "")
    assert problems(without, "Host vm-host\n  UserKnownHostsFile /kh\n") == []
    (why,) = problems(without)
    assert "/.ssh/known_hosts holds no host key" in why


def test_ssh_records_the_host_key_type_the_provider_asks_for_first() -> None:
    options = ssh_client_options("/k")
    pairs = dict(value.split("=", 1) for flag, value in itertools.pairwise(options) if flag == "-o")
    algorithms = pairs["HostKeyAlgorithms"].split(",")
    assert algorithms == PROVIDER_HOST_KEY_ALGORITHMS.split(",")
    # Go's order: ed25519, then RSA, then ECDSA (golang/go#29286 leaves it fixed).
    assert algorithms.index("ssh-ed25519") < algorithms.index("rsa-sha2-256")
    assert algorithms.index("rsa-sha2-512") < algorithms.index("ecdsa-sha2-nistp256")
