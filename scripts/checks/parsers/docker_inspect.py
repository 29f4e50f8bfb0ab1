"""Read `docker inspect` of a container and turn it into the Engine API body that creates a clone.

POST /containers/create takes Config's fields at the top level plus HostConfig: the shape
`docker inspect` prints. So a clone keeps the image (by ID, not tag), Config and HostConfig as
they are, and changes only what must be unique: the name (passed separately), the published
host ports, and the named volumes (each clone gets fresh ones).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CLONE_OF_LABEL = "twinlab.clone-of"


class InspectError(ValueError):
    """The inspect output lacks something a clone needs; the message names it."""


@dataclass(frozen=True)
class ContainerFacts:
    name: str
    id: str
    image_id: str
    running: bool
    pid: int
    memory_limit_bytes: int
    cpuset: str
    published: dict[str, str]  # container port ("8080/tcp") -> host port
    named_volumes: tuple[str, ...]
    health_check_interval_s: float  # 0: no health check (it runs inside, so it costs CPU)

    @property
    def memory_limit_mib(self) -> float:
        return self.memory_limit_bytes / 1024**2


def parse_container(inspect: Mapping[str, Any]) -> ContainerFacts:
    host_config = inspect.get("HostConfig") or {}
    state = inspect.get("State") or {}
    published = {}
    for port, bindings in (host_config.get("PortBindings") or {}).items():
        for binding in bindings or []:
            published[port] = binding.get("HostPort", "")
    volumes = tuple(
        mount["Name"]
        for mount in inspect.get("Mounts") or []
        if mount.get("Type") == "volume" and mount.get("Name")
    )
    return ContainerFacts(
        name=str(inspect.get("Name", "")).lstrip("/"),
        id=str(inspect.get("Id", "")),
        image_id=str(inspect.get("Image", "")),
        running=bool(state.get("Running")),
        pid=int(state.get("Pid") or 0),
        memory_limit_bytes=int(host_config.get("Memory") or 0),
        cpuset=str(host_config.get("CpusetCpus") or ""),
        published=published,
        named_volumes=volumes,
        health_check_interval_s=health_check_interval_s(inspect),
    )


def health_check_interval_s(inspect: Mapping[str, Any]) -> float:
    check = (inspect.get("Config") or {}).get("Healthcheck") or {}
    if not check.get("Test") or check["Test"][0] == "NONE":
        return 0.0
    # The Engine API gives nanoseconds; 0 means Docker's default of 30 s.
    return int(check.get("Interval") or 30_000_000_000) / 1e9


def _rewrite_binds(binds: list[str], volume_map: Mapping[str, str]) -> list[str]:
    rewritten = []
    for bind in binds:
        source, sep, rest = bind.partition(":")
        if source in volume_map:
            source = volume_map[source]
        rewritten.append(f"{source}{sep}{rest}")
    return rewritten


def clone_create_body(
    inspect: Mapping[str, Any],
    port_map: Mapping[str, int],
    volume_map: Mapping[str, str],
) -> dict[str, Any]:
    """The create body for a clone: `port_map` gives each published container port ("8080/tcp")
    its new host port, `volume_map` each named volume its fresh replacement. A published port
    or named volume left out would be shared with the source: refused."""
    facts = parse_container(inspect)
    missing_ports = sorted(set(facts.published) - set(port_map))
    if missing_ports:
        raise InspectError(f"no new host port for published port(s) {missing_ports}")
    missing_volumes = sorted(set(facts.named_volumes) - set(volume_map))
    if missing_volumes:
        raise InspectError(f"no fresh volume for named volume(s) {missing_volumes}")
    if "Config" not in inspect or "HostConfig" not in inspect:
        raise InspectError("inspect output without Config or HostConfig")

    body: dict[str, Any] = copy.deepcopy(dict(inspect["Config"]))
    body["Image"] = facts.image_id or body.get("Image")
    # Docker fills Hostname with the short container ID when none was asked for; copying it
    # would give the clone the source's hostname.
    if body.get("Hostname") == facts.id[:12]:
        body.pop("Hostname")
    body["Labels"] = {**(body.get("Labels") or {}), CLONE_OF_LABEL: facts.name}

    host_config: dict[str, Any] = copy.deepcopy(dict(inspect["HostConfig"]))
    host_config["PortBindings"] = {
        port: [{**binding, "HostPort": str(port_map[port])} for binding in bindings or []]
        for port, bindings in (host_config.get("PortBindings") or {}).items()
    }
    if host_config.get("Binds"):
        host_config["Binds"] = _rewrite_binds(host_config["Binds"], volume_map)
    for mount in host_config.get("Mounts") or []:
        if mount.get("Type") == "volume" and mount.get("Source") in volume_map:
            mount["Source"] = volume_map[mount["Source"]]
    body["HostConfig"] = host_config
    return body
