"""What a deployed stack offers to the checks: its variants, read from the stack's outputs.

Targets come from `pulumi stack output`, never from hand-copied addresses, and each carries
its variant's name and kind from there (never guessed from its URL). A variant's SSH key (a
stack secret) is written to a private file under the state directory and named in the target
URL, never printed.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components import outputs
from components.errors import TwinlabError
from components.hosts import SINGLE_HOST
from components.paths import state_dir
from components.thresholds import DEFAULTS, Thresholds, thresholds_for
from components.virt_mode import VirtMode
from scripts.checks.targets.host import HostHandle, host_handles, local_host

ROOT = Path(__file__).resolve().parents[3]  # the repository (scripts/checks/targets/..)


class StackNotDeployedError(TwinlabError):
    pass


@dataclass(frozen=True)
class DeployedVariant:
    name: str  # the registered variant name: "container", "vm", ...
    kind: str  # "container" | "sandbox" | "vm"
    url: str
    target: str  # with ?key=PATH for a variant reached over SSH
    instance_name: str
    instance_id: str
    ready_s: float | None
    host: str = SINGLE_HOST  # the key of its host in DeployedStack.hosts


@dataclass(frozen=True)
class DeployedStack:
    stack: str
    variants: tuple[DeployedVariant, ...]  # in the stack program's (registry) order
    virt_mode: str
    app_version: str
    limits: dict[str, Any]
    thresholds: Thresholds
    skipped_variants: Mapping[str, str]
    hosts: dict[str, HostHandle] = field(default_factory=dict)  # by host name

    def host_of(self, variant: DeployedVariant) -> HostHandle:
        return self.hosts.get(variant.host) or local_host(variant.host)

    def variant(self, name: str) -> DeployedVariant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise StackNotDeployedError(
            f"stack {self.stack!r} has no variant {name!r}; it has "
            f"{', '.join(v.name for v in self.variants)}"
        )


def key_path(stack: str, variant: str) -> Path:
    return state_dir() / "keys" / f"{stack}.{variant}.key"


def write_private_key(stack: str, key_text: str, variant: str = "vm") -> Path:
    """A variant's SSH key in a 0600 file only its owner can read; rewritten atomically on
    every read."""
    path = key_path(stack, variant)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key_text if key_text.endswith("\n") else key_text + "\n")
    os.replace(tmp, path)
    return path


def stack_thresholds(raw: Mapping[str, Any]) -> Thresholds:
    """The thresholds a stack exported; a stack deployed before they were exported typed
    (a JSON string of overrides) gets the defaults of its mode plus those overrides, and one
    deployed before a threshold existed (a claim added since) that threshold's default."""
    value = raw.get(outputs.THRESHOLDS)
    mode: VirtMode = "kvm" if raw.get(outputs.VIRT_MODE) == "kvm" else "tcg"
    if isinstance(value, dict):
        return Thresholds.from_dict({**DEFAULTS[mode].as_dict(), **value})
    return thresholds_for(mode, value if isinstance(value, str) else None)


def parse_outputs(
    stack: str, raw: Mapping[str, Any], key_paths: Mapping[str, Path] | None = None
) -> DeployedStack:
    """Typed view of `pulumi stack output --json`; a stack without outputs was never deployed.

    `key_paths` names the written SSH key file of each variant that has one (`read_deployed`).
    """
    items = raw.get(outputs.VARIANTS)
    if not isinstance(items, dict) or not items:
        raise StackNotDeployedError(
            f"stack {stack!r} has no {outputs.VARIANTS} output: it was never deployed "
            "(or was destroyed, or deployed by an older twinlab); run `pulumi up` first "
            "(scripts/run.sh does it)"
        )
    keys = key_paths or {}

    def variant(name: str, item: Mapping[str, Any]) -> DeployedVariant:
        suffix = f"?key={keys[name]}" if name in keys else ""
        return DeployedVariant(
            name=item.get(outputs.NAME, name),
            kind=item[outputs.KIND],
            url=item[outputs.URL],
            target=item[outputs.TARGET] + suffix,
            instance_name=item[outputs.INSTANCE_NAME],
            instance_id=item[outputs.INSTANCE_ID],
            ready_s=item.get(outputs.READY_S),
            host=item.get(outputs.HOST, SINGLE_HOST),
        )

    return DeployedStack(
        stack=stack,
        variants=tuple(variant(name, item) for name, item in items.items()),
        virt_mode=raw.get(outputs.VIRT_MODE, "?"),
        app_version=raw.get(outputs.APP_VERSION, "?"),
        limits=raw.get(outputs.LIMITS, {}),
        thresholds=stack_thresholds(raw),
        skipped_variants=raw.get(outputs.SKIPPED_VARIANTS) or {},
        hosts=host_handles(raw),
    )


def write_private_keys(stack: str, raw: Mapping[str, Any]) -> dict[str, Path]:
    """Write every variant's SSH key from the outputs; the file of each, by variant name."""
    keys = raw.get(outputs.SSH_PRIVATE_KEYS) or {}
    return {name: write_private_key(stack, text, name) for name, text in keys.items() if text}


def read_deployed(stack: str) -> DeployedStack:
    """Read a stack's outputs with the Pulumi CLI (run from the project directory)."""
    try:
        done = subprocess.run(
            ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except FileNotFoundError:
        raise StackNotDeployedError(
            "pulumi is not on PATH: run scripts/setup.sh, then `source scripts/env.sh`"
        ) from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise StackNotDeployedError(
            f"cannot read stack {stack!r}: {reason} (create and deploy it with scripts/run.sh, "
            "or `pulumi stack select --create` then `pulumi up`)"
        )
    raw = json.loads(done.stdout or "{}")
    return parse_outputs(stack, raw, write_private_keys(stack, raw))
