"""The app spec: one typed, validated value from which both deployments are made.

`parse_spec` reads raw stack config strings and returns an `AppSpec`, or raises `ConfigError`
listing every bad key with what is accepted. It runs before any resource is declared, so bad
config never creates anything.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from components.errors import ConfigError
from components.host import HostFacts
from scripts.checks.thresholds import ThresholdError, thresholds_for

NAMESPACE = "twinlab"
VirtMode = Literal["kvm", "tcg"]

# The smallest memory that runs the app in both variants: the VM needs room for its own kernel,
# systemd and sshd besides the app (measured guest RSS is about 120 MiB after boot).
MIN_MEMORY_MIB = 256
# Host memory kept back for the host itself, dockerd, libvirtd and the checks.
HOST_RESERVE_MIB = 1024
MAX_WORKERS = 16

DOCKER_HOST_RE = re.compile(
    r"^(unix:///[^\s]+|tcp://[A-Za-z0-9.\-\[\]:]+:\d{1,5}|ssh://([A-Za-z0-9._\-]+@)?[A-Za-z0-9.\-]+(:\d{1,5})?)$"
)
LIBVIRT_URI_RE = re.compile(
    r"^qemu(\+(ssh|tcp|tls|unix))?://([A-Za-z0-9._\-]+@)?[A-Za-z0-9.\-]*(:\d{1,5})?/system(\?[^\s]*)?$"
)
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-+_]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = {"TWINLAB_WORKERS", "TWINLAB_DATA_DIR", "TWINLAB_APP_VERSION"}


@dataclass(frozen=True)
class Ports:
    """Host ports, all published on 127.0.0.1 only."""

    container_http: int
    vm_http: int
    vm_ssh: int

    def as_dict(self) -> dict[str, int]:
        return {
            "containerHttpPort": self.container_http,
            "vmHttpPort": self.vm_http,
            "vmSshPort": self.vm_ssh,
        }


@dataclass(frozen=True)
class Placement:
    """Where each variant runs and how the VM is accelerated."""

    docker_host: str
    libvirt_uri: str
    virt_mode: VirtMode
    pool_dir: str
    remote_ssh_key_path: str | None = None


@dataclass(frozen=True)
class AppSpec:
    """Everything both deployments share. Limits apply identically to the container and VM."""

    stack: str
    app_version: str
    vcpus: int
    memory_mib: int
    workers: int
    ports: Ports
    placement: Placement
    env: Mapping[str, str] = field(default_factory=dict)
    thresholds_json: str = "{}"

    @property
    def name_prefix(self) -> str:
        return f"twinlab-{self.stack}"

    @property
    def cpu_set(self) -> str:
        """The host CPUs both variants are pinned to: the first `vcpus` cores."""
        return "0" if self.vcpus == 1 else f"0-{self.vcpus - 1}"

    def app_environment(self) -> dict[str, str]:
        """The app's environment, identical in the container and in the VM's service unit."""
        return {
            **self.env,
            "TWINLAB_WORKERS": str(self.workers),
            "TWINLAB_APP_VERSION": self.app_version,
        }


@dataclass(frozen=True)
class Key:
    name: str
    default: str | None
    accepted: str
    doc: str


# Every config key, its default and what it accepts (tests/unit/test_spec.py checks that the
# README documents each one with its default).
KEYS: tuple[Key, ...] = (
    Key("appVersion", None, "the app version the images were built with", "app version deployed"),
    Key("vcpus", "1", "an integer from 1 to the host's core count", "vCPUs for both variants"),
    Key("memoryMib", "512", f"an integer from {MIN_MEMORY_MIB} MiB", "memory limit for both"),
    Key("workers", "2", f"an integer from 1 to {MAX_WORKERS}", "gunicorn workers in both"),
    Key("containerHttpPort", "18080", "a free TCP port", "127.0.0.1 port of the container app"),
    Key("vmHttpPort", "18081", "a free TCP port", "127.0.0.1 port of the VM app"),
    Key("vmSshPort", "12222", "a free TCP port", "127.0.0.1 port of the VM's SSH"),
    Key("env", "{}", "a JSON object of NAME: string", "extra app environment, both variants"),
    Key(
        "dockerHost",
        "unix:///var/run/docker.sock",
        "unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]",
        "Docker daemon for the container",
    ),
    Key(
        "libvirtUri",
        "qemu:///system",
        "qemu[+ssh|+tcp|+tls]://[USER@][HOST]/system[?params]",
        "libvirt daemon for the VM",
    ),
    Key("virtMode", "auto", "auto, kvm or tcg", "VM acceleration; auto uses the setup's probe"),
    Key("poolDir", "/var/lib/twinlab/pools", "an absolute path", "libvirt pool directory parent"),
    Key(
        "thresholds",
        "{}",
        "a JSON object of claim thresholds (scripts/checks/thresholds.py)",
        "overrides of the claim verdicts' thresholds",
    ),
    Key(
        "remoteSshKeyPath",
        "",
        "empty, or a readable private key file",
        "key for ssh:// Docker hosts and qemu+ssh:// URIs",
    ),
)
KEY_NAMES = {key.name for key in KEYS}
DEFAULTS = {key.name: key.default for key in KEYS}
ACCEPTED = {key.name: key.accepted for key in KEYS}


class _Problems:
    """Collects every problem so the user sees all bad keys at once, not one per run."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, value: object, why: str) -> None:
        self.items.append(
            f"{NAMESPACE}:{key} = {value!r}: {why} (accepted: {ACCEPTED.get(key, '?')})"
        )


def _integer(raw: Mapping[str, str], key: str, low: int, high: int, problems: _Problems) -> int:
    value = raw.get(key, DEFAULTS[key]) or ""
    try:
        number = int(value.strip())
    except ValueError:
        problems.add(key, value, "not an integer")
        return low
    if not low <= number <= high:
        problems.add(key, value, f"must be between {low} and {high}")
    return number


def parse_spec(
    raw: Mapping[str, str],
    *,
    stack: str,
    host: HostFacts,
    owned_names: tuple[str, ...] = (),
) -> AppSpec:
    """Validate raw config (keys without the namespace) against the host and build the spec.

    `owned_names` are names of this stack's own container and domain: a port held by one of
    them is not "in use" (it is the running stack being updated).
    """
    problems = _Problems()
    for key in sorted(set(raw) - KEY_NAMES):
        close = difflib.get_close_matches(key, sorted(KEY_NAMES), n=1)
        hint = (
            f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(KEY_NAMES))}"
        )
        problems.items.append(f"{NAMESPACE}:{key}: unknown config key; {hint}")

    # Unset means "the version the images were built with"; set but empty is an error.
    app_version = raw.get("appVersion", host.built_app_version or "").strip()
    if not app_version:
        problems.add("appVersion", raw.get("appVersion", ""), "empty")
    elif not VERSION_RE.match(app_version):
        problems.add("appVersion", app_version, "not a version string")
    elif host.built_app_version is not None and app_version != host.built_app_version:
        problems.add(
            "appVersion",
            app_version,
            f"no images built for it; built: {host.built_app_version}"
            " (change workloads/app/VERSION and run scripts/setup.sh)",
        )

    vcpus = _integer(raw, "vcpus", 1, host.cpu_count, problems)
    memory_limit = max(MIN_MEMORY_MIB, host.memory_mib - HOST_RESERVE_MIB)
    memory_mib = _integer(raw, "memoryMib", MIN_MEMORY_MIB, memory_limit, problems)
    workers = _integer(raw, "workers", 1, MAX_WORKERS, problems)
    ports = _parse_ports(raw, host, owned_names, problems)
    env = _parse_env(raw.get("env") or "{}", problems)
    placement = _parse_placement(raw, host, problems)
    try:
        thresholds_for(placement.virt_mode, raw.get("thresholds") or None)
    except ThresholdError as error:
        problems.items.append(f"{error} (accepted: {ACCEPTED['thresholds']})")

    if problems.items:
        raise ConfigError(problems.items)
    return AppSpec(
        stack=stack,
        app_version=app_version,
        vcpus=vcpus,
        memory_mib=memory_mib,
        workers=workers,
        ports=ports,
        placement=placement,
        env=env,
        thresholds_json=raw.get("thresholds") or "{}",
    )


def _parse_ports(
    raw: Mapping[str, str], host: HostFacts, owned_names: tuple[str, ...], problems: _Problems
) -> Ports:
    keys = ("containerHttpPort", "vmHttpPort", "vmSshPort")
    values = {key: _integer(raw, key, 1, 65535, problems) for key in keys}
    seen: dict[int, str] = {}
    for key, port in values.items():
        if port in seen:
            problems.add(key, port, f"same port as {NAMESPACE}:{seen[port]}; each needs its own")
            continue
        seen[port] = key
        if port < 1024 and not host.is_root:
            problems.add(key, port, "ports below 1024 need root; choose 1024 or above")
        elif 1 <= port <= 65535:
            holder = host.port_holder(port)
            if holder is not None and not any(name in holder for name in owned_names):
                problems.add(key, port, f"already in use on 127.0.0.1 by {holder}")
    return Ports(*(values[key] for key in keys))


def _parse_env(value: str, problems: _Problems) -> dict[str, str]:
    try:
        env = json.loads(value)
    except json.JSONDecodeError as error:
        problems.add("env", value, f"not JSON ({error.msg})")
        return {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        problems.add("env", value, "must be an object whose values are strings")
        return {}
    for name in env:
        if not ENV_NAME_RE.match(name):
            problems.add("env", value, f"{name!r} is not an environment variable name")
        elif name in RESERVED_ENV:
            problems.add("env", value, f"{name} is set by twinlab from other keys")
        elif not env[name].isprintable():
            problems.add("env", value, f"{name}'s value has a newline or control character")
    return env


def _parse_placement(raw: Mapping[str, str], host: HostFacts, problems: _Problems) -> Placement:
    docker_host = (raw.get("dockerHost") or DEFAULTS["dockerHost"] or "").strip()
    if not DOCKER_HOST_RE.match(docker_host):
        problems.add("dockerHost", docker_host, "not a Docker host URL")
    libvirt_uri = (raw.get("libvirtUri") or DEFAULTS["libvirtUri"] or "").strip()
    if not LIBVIRT_URI_RE.match(libvirt_uri):
        problems.add("libvirtUri", libvirt_uri, "not a libvirt QEMU system URI")

    wanted = (raw.get("virtMode") or "auto").strip()
    virt_mode: VirtMode = "tcg"
    if wanted not in ("auto", "kvm", "tcg"):
        problems.add("virtMode", wanted, "unknown virtualization mode")
    elif wanted == "auto":
        if host.detected_virt_mode is None:
            problems.add("virtMode", wanted, "no KVM probe recorded yet; run scripts/setup.sh")
        else:
            virt_mode = host.detected_virt_mode
    elif wanted == "kvm" and host.detected_virt_mode == "tcg":
        problems.add("virtMode", wanted, "the setup's probe found KVM unusable on this host")
    else:
        virt_mode = "kvm" if wanted == "kvm" else "tcg"

    pool_dir = (raw.get("poolDir") or DEFAULTS["poolDir"] or "").strip()
    if not os.path.isabs(pool_dir):
        problems.add("poolDir", pool_dir, "not an absolute path")

    # `~` expanded once here, so the readable check and every SSH client see the same path.
    key_path = os.path.expanduser((raw.get("remoteSshKeyPath") or "").strip()) or None
    if key_path is not None and not host.readable(key_path):
        problems.add("remoteSshKeyPath", key_path, "not a readable file")
    uses_ssh = docker_host.startswith("ssh://") or libvirt_uri.startswith("qemu+ssh://")
    if key_path is not None and not uses_ssh:
        problems.add("remoteSshKeyPath", key_path, "set, but neither daemon is reached over SSH")
    return Placement(docker_host, libvirt_uri, virt_mode, pool_dir, key_path)
