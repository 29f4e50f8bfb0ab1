"""The app spec: one typed, validated value from which every deployment variant is made.

`parse_spec` reads raw stack config strings and returns an `AppSpec`, or raises `ConfigError`
listing every bad key with what is accepted. It runs before any resource is declared, so bad
config never creates anything. The variants come from the registry (components/registry.py):
which ones to deploy (`twinlab:variants`) and each one's port keys.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from components import tcg_cache
from components.errors import ConfigError
from components.fleet import HOSTS_KEY, LOAD_HOST_KEY, FleetHost, parse_hosts
from components.host import HostFacts
from components.hosts import host_ssh, transport_problem
from components.naming import resource_name, stack_prefix
from components.paths import POOL_ROOT
from components.thresholds import DEFAULTS as THRESHOLD_DEFAULTS
from components.thresholds import ThresholdError, Thresholds, thresholds_for
from components.variant import Variant
from components.virt_mode import VirtMode

NAMESPACE = "twinlab"

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
class Placement:
    """Where each variant runs and how the VM is accelerated."""

    docker_host: str
    libvirt_uri: str
    virt_mode: VirtMode
    pool_dir: str
    remote_ssh_key_path: str | None = None

    @property
    def ssh(self) -> dict[str, Any] | None:
        """How the host is reached over SSH (None: its daemons are local)."""
        return host_ssh(self.docker_host, self.libvirt_uri, self.remote_ssh_key_path)


@dataclass(frozen=True)
class AppSpec:
    """Everything the deployments share. Limits apply identically to every variant."""

    stack: str
    app_version: str
    vcpus: int
    memory_mib: int
    workers: int
    ports: Mapping[str, int]  # config key -> 127.0.0.1 port, for the chosen variants
    placement: Placement
    variants: tuple[Variant, ...]  # the chosen ones, in registry order
    thresholds: Thresholds
    env: Mapping[str, str] = field(default_factory=dict)
    # The VM's TCG translation cache in MiB (components/tcg_cache.py); None: QEMU's default.
    tcg_cache_mib: int | None = None
    # Registered variants left out because this host cannot run them: name -> why.
    skipped_variants: Mapping[str, str] = field(default_factory=dict)

    # The host these deployments go to, in a stack with several hosts (`twinlab:hosts`,
    # components/fleet.py); None: the one host of dockerHost/libvirtUri.
    host: str | None = None
    fleet: tuple[FleetHost, ...] = ()  # the hosts of `twinlab:hosts`; () for one host
    load_host: str | None = None  # `twinlab:loadHost`: where load is generated from

    def on_host(self, fleet_host: FleetHost, virt_mode: VirtMode) -> AppSpec:
        """This spec for the deployments on one host of the fleet: its daemons, key, mode,
        its ports (shifted by its offset) and its names (twinlab-STACK-HOST-*)."""
        placement = Placement(
            fleet_host.docker_host,
            fleet_host.libvirt_uri,
            virt_mode,
            self.placement.pool_dir,
            fleet_host.ssh_key_path,
        )
        ports = {key: port + fleet_host.port_offset for key, port in self.ports.items()}
        return replace(self, placement=placement, ports=ports, host=fleet_host.name, fleet=())

    @property
    def name_prefix(self) -> str:
        return stack_prefix(self.stack, self.host)

    def resource_name(self, suffix: str) -> str:
        """twinlab-STACK-SUFFIX (twinlab-STACK-HOST-SUFFIX on one host of several)."""
        return resource_name(self.stack, suffix, self.host)

    def port(self, config_key: str) -> int:
        return self.ports[config_key]

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


DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Key:
    name: str
    default: str | None
    accepted: str
    doc: str


# Every config key but the variants' ports, its default and what it accepts
# (tests/unit/test_spec.py checks that the README documents each one with its default).
COMMON_KEYS: tuple[Key, ...] = (
    Key("appVersion", None, "the app version the images were built with", "app version deployed"),
    Key(
        "variants",
        "",
        "a comma list or JSON list of registered variant names",
        "variants to deploy; default: every registered one this host can run",
    ),
    Key("vcpus", "1", "an integer from 1 to the host's core count", "vCPUs for every variant"),
    Key("memoryMib", "512", f"an integer from {MIN_MEMORY_MIB} MiB", "memory limit for each"),
    Key("workers", "2", f"an integer from 1 to {MAX_WORKERS}", "gunicorn workers in each"),
    Key("env", "{}", "a JSON object of NAME: string", "extra app environment, every variant"),
    Key(
        "dockerHost",
        DEFAULT_DOCKER_HOST,
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
    Key(
        tcg_cache.CONFIG_KEY,
        "",
        f"empty, or an integer from {tcg_cache.MIN_MIB} to {tcg_cache.MAX_MIB}; TCG only",
        f"VMs' TCG translation cache (MiB); empty: {tcg_cache.QEMU_DEFAULT}",
    ),
    Key("poolDir", str(POOL_ROOT), "an absolute path", "libvirt pool directory parent"),
    Key(
        "thresholds",
        "{}",
        "a JSON object of claim thresholds (components/thresholds.py)",
        "overrides of the claim verdicts' thresholds",
    ),
    Key(
        "remoteSshKeyPath",
        "",
        "empty, or a readable private key file",
        "key for ssh:// Docker hosts and qemu+ssh:// URIs",
    ),
    Key(
        HOSTS_KEY,
        "",
        "a JSON list of {name, dockerHost, libvirtUri[, sshUser, sshKey, virtMode, portOffset]}",
        "several hosts in one stack, the variants on each (components/fleet.py)",
    ),
    Key(
        LOAD_HOST_KEY,
        "",
        "empty, or the name of a host of twinlab:hosts",
        "where load is generated from; empty: each host loads itself",
    ),
)


def config_keys(variants: Sequence[Variant]) -> tuple[Key, ...]:
    """Every config key: the common ones, then each registered variant's ports."""
    ports = tuple(
        Key(need.config_key, str(need.default), "a free TCP port", need.doc)
        for variant in variants
        for need in variant.ports
    )
    return COMMON_KEYS + ports


class _Problems:
    """Collects every problem so the user sees all bad keys at once, not one per run."""

    def __init__(self, keys: Sequence[Key]) -> None:
        self.items: list[str] = []
        self.keys = {key.name: key for key in keys}

    def add(self, key: str, value: object, why: str) -> None:
        accepted = self.keys[key].accepted if key in self.keys else "?"
        self.items.append(f"{NAMESPACE}:{key} = {value!r}: {why} (accepted: {accepted})")

    def default(self, key: str) -> str | None:
        return self.keys[key].default


def _integer(raw: Mapping[str, str], key: str, low: int, high: int, problems: _Problems) -> int:
    value = raw.get(key, problems.default(key)) or ""
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
    registered: Sequence[Variant],
    owned_names: tuple[str, ...] = (),
) -> AppSpec:
    """Validate raw config (keys without the namespace) against the host and build the spec.

    `registered` is the variant registry (components/registry.py VARIANTS). `owned_names` are
    names of this stack's own instances: a port held by one of them is not "in use" (it is the
    running stack being updated).
    """
    keys = config_keys(registered)
    problems = _Problems(keys)
    key_names = sorted(key.name for key in keys)
    for key in sorted(set(raw) - set(key_names)):
        close = difflib.get_close_matches(key, key_names, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(key_names)}"
        problems.items.append(f"{NAMESPACE}:{key}: unknown config key; {hint}")
    chosen, skipped = _parse_variants(raw.get("variants", ""), registered, host, problems)

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
    ports = _parse_ports(raw, chosen, host, owned_names, problems)
    env = _parse_env(raw.get("env") or "{}", problems)
    placement = _parse_placement(raw, host, problems)
    tcg_cache_mib = _parse_tcg_cache(raw, placement.virt_mode, problems)
    thresholds = THRESHOLD_DEFAULTS[placement.virt_mode]
    try:
        thresholds = thresholds_for(placement.virt_mode, raw.get("thresholds") or None)
    except ThresholdError as error:
        problems.items.append(f"{error} (accepted: {problems.keys['thresholds'].accepted})")

    fleet = parse_hosts(
        raw,
        facts=host,
        ports=ports,
        docker_host_re=DOCKER_HOST_RE,
        libvirt_uri_re=LIBVIRT_URI_RE,
        owned_names=owned_names,
        problems=problems,
    )

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
        variants=chosen,
        thresholds=thresholds,
        env=env,
        tcg_cache_mib=tcg_cache_mib,
        skipped_variants=skipped,
        fleet=fleet,
        load_host=(raw.get(LOAD_HOST_KEY) or "").strip() or None,
    )


def _variant_names(value: str) -> list[str] | None:
    """`a,b` or `["a", "b"]` as a list of names; None when it is neither."""
    text = value.strip()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError:
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        return [name.strip() for name in names]
    return [name.strip() for name in text.split(",")]


def _parse_variants(
    value: str, registered: Sequence[Variant], host: HostFacts, problems: _Problems
) -> tuple[tuple[Variant, ...], dict[str, str]]:
    """The chosen variants (registry order) and the registered ones left out, with why.

    Unset: every registered variant deployed by default that this host can run; the others
    are reported, not hidden. Set: exactly those named, each registered and runnable here.
    """
    by_name = {variant.name: variant for variant in registered}
    reasons = {variant.name: variant.unavailable(host) for variant in registered}
    if not value.strip():
        for variant in registered:
            if not variant.by_default and reasons[variant.name] is None:
                reasons[variant.name] = "deployed only when named in twinlab:variants"
        chosen = tuple(v for v in registered if reasons[v.name] is None)
        skipped = {name: why for name, why in reasons.items() if why is not None}
        if not chosen:
            problems.add(
                "variants",
                value,
                "this host can run no registered variant: "
                + (
                    "; ".join(f"{name}: {why}" for name, why in skipped.items())
                    or "none registered"
                ),
            )
        return chosen, skipped
    names = _variant_names(value)
    if names is None or not all(names):
        problems.add("variants", value, "not a comma list or JSON list of names")
        return (), {}
    for name in names:
        if name not in by_name:
            close = difflib.get_close_matches(name, sorted(by_name), n=1)
            hint = f"did you mean {close[0]}?" if close else f"registered: {', '.join(by_name)}"
            problems.add("variants", value, f"unknown variant {name!r}; {hint}")
        elif reasons[name] is not None:
            problems.add("variants", value, f"this host cannot run {name}: {reasons[name]}")
    if len(set(names)) != len(names):
        problems.add("variants", value, "a variant is named twice")
    wanted = set(names)
    return tuple(v for v in registered if v.name in wanted), {}


def _parse_ports(
    raw: Mapping[str, str],
    chosen: Sequence[Variant],
    host: HostFacts,
    owned_names: tuple[str, ...],
    problems: _Problems,
) -> dict[str, int]:
    keys = [need.config_key for variant in chosen for need in variant.ports]
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
    return values


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


def _parse_tcg_cache(
    raw: Mapping[str, str], virt_mode: VirtMode, problems: _Problems
) -> int | None:
    """The TCG cache size, or None for QEMU's default. Refused under KVM, where there is no
    translation cache: a size there would be silently meaningless."""
    key = tcg_cache.CONFIG_KEY
    if not (raw.get(key) or "").strip():
        return None
    size = _integer(raw, key, tcg_cache.MIN_MIB, tcg_cache.MAX_MIB, problems)
    if virt_mode == "kvm":
        problems.add(key, raw[key], "VMs run under KVM here, which has no TCG cache; unset it")
    return size


def _parse_placement(raw: Mapping[str, str], host: HostFacts, problems: _Problems) -> Placement:
    docker_host = (raw.get("dockerHost") or problems.default("dockerHost") or "").strip()
    if not DOCKER_HOST_RE.match(docker_host):
        problems.add("dockerHost", docker_host, "not a Docker host URL")
    libvirt_uri = (raw.get("libvirtUri") or problems.default("libvirtUri") or "").strip()
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

    pool_dir = (raw.get("poolDir") or problems.default("poolDir") or "").strip()
    if not os.path.isabs(pool_dir):
        problems.add("poolDir", pool_dir, "not an absolute path")

    # `~` expanded once here, so the readable check and every SSH client see the same path.
    key_path = os.path.expanduser((raw.get("remoteSshKeyPath") or "").strip()) or None
    if key_path is not None and not host.readable(key_path):
        problems.add("remoteSshKeyPath", key_path, "not a readable file")
    uses_ssh = docker_host.startswith("ssh://") or libvirt_uri.startswith("qemu+ssh://")
    if key_path is not None and not uses_ssh:
        problems.add("remoteSshKeyPath", key_path, "set, but neither daemon is reached over SSH")
    transport = transport_problem(docker_host, libvirt_uri)
    if transport is not None:
        problems.add("libvirtUri", libvirt_uri, transport)
    return Placement(docker_host, libvirt_uri, virt_mode, pool_dir, key_path)
