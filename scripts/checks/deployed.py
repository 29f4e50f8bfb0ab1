"""What a deployed stack offers to the checks: its targets, read from the stack's outputs.

Targets come from `pulumi stack output`, never from hand-copied addresses. The VM's SSH key (a
stack secret) is written to a private file under the state directory and named in the target
URL, never printed.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import outputs
from components.errors import TwinlabError

ROOT = Path(__file__).resolve().parents[2]


class StackNotDeployedError(TwinlabError):
    pass


@dataclass(frozen=True)
class DeployedVariant:
    variant: str  # "container" | "vm"
    url: str
    target: str  # with ?key=PATH for the VM
    instance_name: str
    instance_id: str
    ready_s: float | None


@dataclass(frozen=True)
class DeployedStack:
    stack: str
    container: DeployedVariant
    vm: DeployedVariant
    virt_mode: str
    app_version: str
    limits: dict[str, Any]
    thresholds_json: str = "{}"

    @property
    def variants(self) -> tuple[DeployedVariant, DeployedVariant]:
        return self.container, self.vm


def state_dir() -> Path:
    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "twinlab"
    return Path(os.environ.get("TWINLAB_STATE", default))


def write_private_key(stack: str, key_text: str) -> Path:
    """The VM key in a 0600 file only root can read; rewritten atomically on every read."""
    key_dir = state_dir() / "keys"
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = key_dir / f"{stack}.key"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key_text if key_text.endswith("\n") else key_text + "\n")
    os.replace(tmp, path)
    return path


def parse_outputs(stack: str, raw: dict[str, Any], key_path: Path | None) -> DeployedStack:
    """Typed view of `pulumi stack output --json`; a stack without outputs was never deployed."""
    missing = [key for key in (outputs.CONTAINER, outputs.VM) if key not in raw]
    if missing:
        raise StackNotDeployedError(
            f"stack {stack!r} has no {' or '.join(missing)} outputs: it was never deployed "
            "(or was destroyed); run `pulumi up` first (scripts/run.sh does it)"
        )

    def variant(name: str, target_suffix: str = "") -> DeployedVariant:
        item = raw[name]
        return DeployedVariant(
            variant=name,
            url=item[outputs.URL],
            target=item[outputs.TARGET] + target_suffix,
            instance_name=item[outputs.INSTANCE_NAME],
            instance_id=item[outputs.INSTANCE_ID],
            ready_s=item.get(outputs.READY_S),
        )

    return DeployedStack(
        stack=stack,
        container=variant(outputs.CONTAINER),
        vm=variant(outputs.VM, f"?key={key_path}" if key_path else ""),
        virt_mode=raw.get(outputs.VIRT_MODE, "?"),
        app_version=raw.get(outputs.APP_VERSION, "?"),
        limits=raw.get(outputs.LIMITS, {}),
        thresholds_json=raw.get(outputs.THRESHOLDS, "{}"),
    )


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
    key = raw.get(outputs.VM_SSH_PRIVATE_KEY)
    key_path = write_private_key(stack, key) if key else None
    return parse_outputs(stack, raw, key_path)
