"""A fleet: several hosts in one stack (`twinlab:hosts`), the chosen variants on each.

    twinlab:hosts: '[{"name": "a", "dockerHost": "ssh://root@host-a", "libvirtUri":
                     "qemu+ssh://root@host-a/system", "sshKey": "~/.ssh/twinlab"}, ...]'

Each entry names a host and how its daemons are reached (`dockerHost`, `libvirtUri`: the same
forms as the single-host keys, and over SSH both must name the same user@host:port), with
optional `sshUser` (filled into URLs that name no user), `sshKey` (as `remoteSshKeyPath`),
`virtMode` (auto: the host's own KVM probe record, read over SSH) and `portOffset` (added to
every variant port on that host; default 10 x the host's position, so that two "hosts" that
are one machine never publish the same 127.0.0.1 port). Everything on host H is named
`twinlab-STACK-H-*` (components/naming.py). Validated with the rest of the config, before
anything is created; whether each host answers is checked by the stack program
(components/stack.py) with the daemon checks, host by host.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from components.errors import DaemonUnavailableError
from components.host import HostFacts
from components.hosts import transport_problem
from components.remote_ssh import remote_command, ssh_client_options, ssh_endpoint
from components.virt_mode import (
    ProbeEnvironment,
    VirtMode,
    VirtModeRecord,
    load_record,
    probe_environment,
    record_is_current,
)

HOSTS_KEY = "hosts"
LOAD_HOST_KEY = "loadHost"
# Keys the single-host form uses, which a fleet sets per host instead.
PER_HOST_KEYS = ("dockerHost", "libvirtUri", "remoteSshKeyPath", "virtMode")
ENTRY_KEYS = ("name", "dockerHost", "libvirtUri", "sshUser", "sshKey", "virtMode", "portOffset")
REQUIRED = ("name", "dockerHost", "libvirtUri")
# A host's name is part of resource names and of the variants output key ("vm@a").
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
USER_RE = re.compile(r"^[A-Za-z0-9._\-]+$")
PORT_STRIDE = 10  # default portOffset: 10 x the host's position
SSH_SCHEMES = ("ssh", "qemu+ssh")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SSH_TIMEOUT_S = 20


class Problems(Protocol):
    """components/spec.py's collector: every problem listed at once."""

    def add(self, key: str, value: object, why: str) -> None: ...


@dataclass(frozen=True)
class FleetHost:
    name: str
    docker_host: str
    libvirt_uri: str
    ssh_key_path: str | None
    virt_mode: str  # "auto", "kvm" or "tcg" as given; resolved by `resolve_virt_mode`
    port_offset: int

    @property
    def on_this_machine(self) -> bool:
        """Local sockets, or SSH to a loopback address: its ports are this machine's."""
        ssh = [u for u in (self.docker_host, self.libvirt_uri) if urlsplit(u).scheme in SSH_SCHEMES]
        return all(urlsplit(url).hostname in LOOPBACK for url in ssh)


def ssh_identity(url: str) -> tuple[str, str, int] | None:
    """(user, host, port) of an ssh:// or qemu+ssh:// URL; None for local sockets and tcp."""
    parts = urlsplit(url)
    if parts.scheme not in SSH_SCHEMES:
        return None
    return (parts.username or "", parts.hostname or "", parts.port or 22)


def with_user(url: str, user: str) -> str:
    """The URL with `user` filled in when it is over SSH and names none."""
    parts = urlsplit(url)
    if parts.scheme not in SSH_SCHEMES or parts.username or not parts.hostname:
        return url
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc}"))


def fleet_urls(hosts_value: str) -> list[str]:
    """Every dockerHost and libvirtUri named in a `twinlab:hosts` value (unvalidated; [] when
    it is not a list of objects): which of twinlab's own sshd instances a stack goes through."""
    try:
        items = json.loads(hosts_value or "[]")
    except json.JSONDecodeError:
        return []
    if not isinstance(items, list):
        return []
    keys = ("dockerHost", "libvirtUri")
    return [str(i[k]) for i in items if isinstance(i, dict) for k in keys if k in i]


def endpoint_of(host: FleetHost) -> tuple[str, str, int] | None:
    """The one SSH endpoint of a host (its URLs agree, checked in parsing), None when local."""
    return ssh_identity(host.docker_host) or ssh_identity(host.libvirt_uri)


def parse_hosts(
    raw: Mapping[str, str],
    *,
    facts: HostFacts,
    ports: Mapping[str, int],
    docker_host_re: re.Pattern[str],
    libvirt_uri_re: re.Pattern[str],
    owned_names: tuple[str, ...],
    problems: Problems,
) -> tuple[FleetHost, ...]:
    """The hosts of `twinlab:hosts`, validated; () when it is unset (a single-host stack)."""
    value = (raw.get(HOSTS_KEY) or "").strip()
    load_host = (raw.get(LOAD_HOST_KEY) or "").strip()
    if not value:
        if load_host:
            problems.add(LOAD_HOST_KEY, load_host, f"needs twinlab:{HOSTS_KEY}")
        return ()
    try:
        items = json.loads(value)
    except json.JSONDecodeError as error:
        problems.add(HOSTS_KEY, value, f"not JSON ({error.msg})")
        return ()
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        problems.add(HOSTS_KEY, value, "must be a non-empty JSON list of objects")
        return ()
    for key in PER_HOST_KEYS:
        if raw.get(key, "").strip():
            problems.add(key, raw[key], f"set per host in twinlab:{HOSTS_KEY} instead")
    hosts = [
        _parse_entry(position, item, facts, docker_host_re, libvirt_uri_re, problems)
        for position, item in enumerate(items)
    ]
    chosen = tuple(h for h in hosts if h is not None)
    _check_distinct(chosen, problems)
    _check_ports(chosen, ports, facts, owned_names, problems)
    names = [h.name for h in chosen]
    if load_host and load_host not in names:
        problems.add(LOAD_HOST_KEY, load_host, f"not a host of twinlab:{HOSTS_KEY}: {names}")
    return chosen


def _parse_entry(
    position: int,
    item: Mapping[str, Any],
    facts: HostFacts,
    docker_host_re: re.Pattern[str],
    libvirt_uri_re: re.Pattern[str],
    problems: Problems,
) -> FleetHost | None:
    label = f"host #{position + 1}" + (f" ({item['name']})" if "name" in item else "")

    def bad(why: str) -> None:
        problems.add(HOSTS_KEY, dict(item), f"{label}: {why}")

    ok = True
    for key in sorted(set(item) - set(ENTRY_KEYS)):
        close = difflib.get_close_matches(key, ENTRY_KEYS, n=1)
        bad(f"unknown key {key!r}" + (f"; did you mean {close[0]}?" if close else ""))
        ok = False
    for key in REQUIRED:
        if not isinstance(item.get(key), str) or not item[key].strip():
            bad(f"{key} is missing (each host needs {', '.join(REQUIRED)})")
            ok = False
    for key in ("sshUser", "sshKey", "virtMode"):
        if key in item and not isinstance(item[key], str):
            bad(f"{key} must be a string")
            ok = False
    if not ok:
        return None
    name = item["name"].strip()
    if not HOST_NAME_RE.match(name):
        bad("name must be 1-12 lower-case letters and digits, starting with a letter")
    user = str(item.get("sshUser", "")).strip()
    if user and not USER_RE.match(user):
        bad(f"sshUser {user!r} is not a user name")
    docker_host = with_user(item["dockerHost"].strip(), user) if user else item["dockerHost"]
    libvirt_uri = with_user(item["libvirtUri"].strip(), user) if user else item["libvirtUri"]
    if not docker_host_re.match(docker_host):
        bad(f"dockerHost {docker_host!r} is not a Docker host URL")
    if not libvirt_uri_re.match(libvirt_uri):
        bad(f"libvirtUri {libvirt_uri!r} is not a libvirt QEMU system URI")
    identities = [ssh_identity(docker_host), ssh_identity(libvirt_uri)]
    one_way_in = transport_problem(docker_host, libvirt_uri)
    if one_way_in is not None:
        bad(one_way_in)
    for identity in identities:
        if user and identity is not None and identity[0] != user:
            bad(f"the URLs' user {identity[0]!r} differs from sshUser {user!r}")
    key_path = os.path.expanduser(str(item.get("sshKey", "")).strip()) or None
    if key_path is not None and not facts.readable(key_path):
        bad(f"sshKey {key_path} is not a readable file")
    if key_path is not None and identities == [None, None]:
        bad("sshKey set, but neither daemon is reached over SSH")
    virt_mode = str(item.get("virtMode", "auto")).strip()
    if virt_mode not in ("auto", "kvm", "tcg"):
        bad(f"virtMode {virt_mode!r}: accepted auto, kvm, tcg")
    offset = item.get("portOffset", PORT_STRIDE * position)
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= 10000:
        bad(f"portOffset {offset!r} must be an integer from 0 to 10000")
        offset = 0
    return FleetHost(name, docker_host, libvirt_uri, key_path, virt_mode, offset)


def _check_distinct(hosts: tuple[FleetHost, ...], problems: Problems) -> None:
    seen: dict[str, FleetHost] = {}
    endpoints: dict[tuple[str, str, int] | None, str] = {}
    for host in hosts:
        if host.name in seen:
            problems.add(HOSTS_KEY, host.name, f"host name {host.name!r} is given twice")
        seen[host.name] = host
        endpoint = endpoint_of(host)
        if endpoint in endpoints:
            where = "local sockets" if endpoint is None else "{}@{}:{}".format(*endpoint)
            problems.add(
                HOSTS_KEY,
                host.name,
                f"hosts {endpoints[endpoint]!r} and {host.name!r} are both reached through "
                f"{where}: one endpoint, one host",
            )
        endpoints.setdefault(endpoint, host.name)


def _check_ports(
    hosts: tuple[FleetHost, ...],
    ports: Mapping[str, int],
    facts: HostFacts,
    owned_names: tuple[str, ...],
    problems: Problems,
) -> None:
    """Every host's shifted ports distinct across the fleet (several hosts may be one machine),
    in range, and free here for the hosts on this machine (others cannot be seen from here)."""
    taken: dict[int, str] = {}
    for host in hosts:
        for key, base in ports.items():
            port = base + host.port_offset
            where = f"{key} + portOffset {host.port_offset} on host {host.name!r}"
            if port > 65535:
                problems.add(HOSTS_KEY, port, f"{where} is beyond 65535")
                continue
            if port in taken:
                problems.add(HOSTS_KEY, port, f"{where} is also {taken[port]}; shift portOffset")
                continue
            taken[port] = where
            if host.port_offset and host.on_this_machine:
                holder = facts.port_holder(port)
                if holder is not None and not any(name in holder for name in owned_names):
                    problems.add(HOSTS_KEY, port, f"{where}: in use on 127.0.0.1 by {holder}")


# The host's own KVM probe record (components/virt_mode.py), with what it depends on.
_RECORD_SCRIPT = (
    'cat "${TWINLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/twinlab}/virt-mode.json"'
    " 2>/dev/null; echo; echo @@twinlab@@; uname -r;"
    " qemu-system-x86_64 --version 2>/dev/null | head -n 1"
)


def record_from_host_output(text: str) -> tuple[VirtModeRecord | None, ProbeEnvironment]:
    """Parse what _RECORD_SCRIPT printed: the record (None when absent or unreadable) and the
    host's kernel and QEMU now."""
    record_text, _, environment = text.partition("@@twinlab@@")
    lines = [line.strip() for line in environment.strip().splitlines()] + ["", ""]
    try:
        fields = json.loads(record_text.strip() or "null")
        record = VirtModeRecord(**fields) if isinstance(fields, dict) else None
    except (json.JSONDecodeError, TypeError):
        record = None
    return record, ProbeEnvironment(host_kernel=lines[0], qemu_version=lines[1])


def resolve_virt_mode(host: FleetHost) -> VirtMode:
    """A host's virtualization mode: as given, or (auto) its own current KVM probe record,
    read over SSH for a remote host (twinlab's setup writes it there)."""
    if host.virt_mode in ("kvm", "tcg"):
        return "kvm" if host.virt_mode == "kvm" else "tcg"
    endpoint = endpoint_of(host)
    if endpoint is None:
        record, environment = load_record(), probe_environment()
    else:
        url = host.docker_host if ssh_identity(host.docker_host) else host.libvirt_uri
        argv = [
            "ssh",
            *ssh_client_options(host.ssh_key_path),
            *ssh_endpoint(url).destination_args(),
            remote_command("sh", "-c", _RECORD_SCRIPT),
        ]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=SSH_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DaemonUnavailableError(f"host {host.name}: ssh failed: {error}") from None
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise DaemonUnavailableError(f"host {host.name}: ssh failed: {why}")
        record, environment = record_from_host_output(done.stdout)
    if record is None or not record_is_current(record, environment):
        state = "none" if record is None else "made on another kernel or QEMU"
        raise DaemonUnavailableError(
            f"host {host.name}: no current KVM probe record there ({state}); run "
            "`python -m components.virt_mode detect` on it (scripts/setup.sh does), or set "
            f'"virtMode": "kvm" or "tcg" in its twinlab:{HOSTS_KEY} entry'
        )
    return record.mode
