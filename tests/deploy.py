"""Deploying throwaway stacks for tests through the Pulumi Automation API.

Every test stack is named `ci-<hex>`, so its resources are `twinlab-ci-<hex>-*`; whatever an
interrupted run left is swept by prefix at the next session's start.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from components.host import free_loopback_ports
from components.naming import stack_prefix
from components.registry import VARIANTS
from scripts import leftovers
from scripts.recover import RecoveryError, recover
from scripts.state_files import forget_removed_stacks, remove_torn_sidecars

ROOT = Path(__file__).resolve().parents[1]
TEST_PREFIX = stack_prefix("ci-")
# Every registered variant's port keys: a free port for each, whichever variants deploy.
PORT_KEYS = tuple(need.config_key for variant in VARIANTS for need in variant.ports)


def start_twinlab_sshd(*ports: int) -> None:
    """twinlab's loopback sshd instances (scripts/remote_access.sh start PORT), idempotent."""
    for port in ports:
        done = subprocess.run(
            [str(ROOT / "scripts/remote_access.sh"), "start", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


def new_stack_name() -> str:
    """A fresh test stack name (ci-<hex>), swept by sweep_test_stacks if a run is cut short."""
    return f"ci-{secrets.token_hex(3)}"


def ci_stack_config(**overrides: str) -> dict[str, str]:
    ports = free_loopback_ports(len(PORT_KEYS))
    config = {key: str(port) for key, port in zip(PORT_KEYS, ports, strict=True)}
    return config | overrides


def sweep_test_stacks() -> str:
    """Remove every test stack's resources and state (left by an interrupted run)."""
    found = leftovers.remove(TEST_PREFIX)
    workspace = auto.LocalWorkspace(work_dir=str(ROOT))
    leftovers.remove_key_files("ci-*")  # the keys the checks wrote for earlier test stacks
    backend = os.environ.get("PULUMI_BACKEND_URL", "")
    remove_torn_sidecars(backend)  # a killed up's empty sidecar fails every list with "EOF"
    for summary in workspace.list_stacks():
        if summary.name.startswith("ci-"):
            try:
                workspace.remove_stack(summary.name, force=True)
            except auto.errors.CommandError:
                # Locked by a pulumi killed mid-run (a cut-short session): the recovery clears
                # a dead holder's lock (never a live one) and empties the stack, then it goes.
                with contextlib.suppress(RecoveryError, auto.errors.CommandError):
                    recover(summary.name, say=_progress)
                    workspace.remove_stack(summary.name, force=True)
    kept = {summary.name for summary in workspace.list_stacks()}
    forget_removed_stacks(backend, "ci-", kept)
    return found.describe()


@contextlib.contextmanager
def deployed(
    config: dict[str, str], *, up: bool = True, log: list[str] | None = None
) -> Iterator[tuple[auto.Stack, dict[str, Any]]]:
    """Up a fresh test stack with `config`; always destroy and forget it afterwards.

    up=False only creates the stack and sets its config (outputs are {}): for tests that drive
    preview, a failing or an interrupted up themselves, still destroyed and forgotten here.
    `log` collects every line the up and destroy printed (the secrets test scans them).
    """
    name = new_stack_name()
    stack = auto.create_stack(stack_name=name, work_dir=str(ROOT))

    def progress(line: str) -> None:
        if log is not None:
            log.append(line)
        _progress(line)

    try:
        stack.set_all_config(
            {f"twinlab:{key}": auto.ConfigValue(value) for key, value in config.items()}
        )
        outputs: dict[str, Any] = {}
        if up:
            result = stack.up(on_output=progress, color="never")
            outputs = {key: value.value for key, value in result.outputs.items()}
        yield stack, outputs
    finally:
        try:
            stack.destroy(on_output=progress, color="never")
        except auto.errors.CommandError:
            # A stack is never forgotten with resources behind it. A failed destroy (e.g.
            # pulumi-libvirt cannot delete a domain that is already gone) is retried after a
            # refresh; what the state does not cover (provider orphans) is removed by name.
            with contextlib.suppress(auto.errors.CommandError):
                stack.destroy(on_output=progress, color="never", refresh=True)
            removed = leftovers.sweep_stack(name)
            _progress(f"destroy of {name} failed; removed by name: {removed.describe()}")
        stack.workspace.remove_stack(name, force=True)


def _progress(line: str) -> None:
    print(line, file=sys.stderr)
