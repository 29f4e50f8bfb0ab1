"""A killed pulumi's torn sidecar, against the real pulumi CLI: it breaks `pulumi stack ls` for
every stack ("error: EOF", the CI failure of 2026-11-30), and the recovery command repairs it
and clears a dead holder's lock, with nothing deployed. A state backend of its own (tmp_path)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.recover import recover
from scripts.state_files import lock_files, remove_torn_sidecars
from tests.deploy import ROOT, new_stack_name

pytestmark = pytest.mark.integration


def pulumi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pulumi", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    yield tmp_path


def test_a_torn_sidecar_breaks_every_list_and_the_recovery_repairs_it(backend: Path) -> None:
    stack = new_stack_name()
    other = new_stack_name()
    for name in (stack, other):
        done = pulumi("stack", "init", name, "--non-interactive")
        assert done.returncode == 0, done.stderr
    try:
        sidecar = backend / ".pulumi" / "stacks" / "twinlab" / f"{stack}.json.attrs"
        assert json.loads(sidecar.read_text(encoding="utf-8")), "pulumi writes a JSON sidecar"
        sidecar.write_text("", encoding="utf-8")  # what a SIGKILL while writing it leaves
        lock = backend / ".pulumi" / "locks" / "organization" / "twinlab" / stack / "l1.json"
        lock.parent.mkdir(parents=True, exist_ok=True)
        holder = {"pid": dead_pid(), "username": "root", "hostname": os.uname().nodename}
        lock.write_text(json.dumps(holder | {"timestamp": "2026-11-30T17:59:20Z"}), "utf-8")

        # The failing path, for real: every stack's listing fails, not only the torn one's.
        broken = pulumi("stack", "ls", "--json")
        assert broken.returncode != 0 and "EOF" in broken.stderr, broken.stderr

        log: list[str] = []
        recovered = recover(stack, say=log.append)

        assert recovered.torn_removed == [sidecar], "\n".join(log)
        assert recovered.locks_cleared and not lock_files(f"file://{backend}", stack)
        listed = json.loads(pulumi("stack", "ls", "--json").stdout)
        assert {stack, other} <= {item["name"] for item in listed}
    finally:
        remove_torn_sidecars(f"file://{backend}")  # else a failed assertion leaves rm failing too
        for name in (stack, other):
            pulumi("stack", "rm", name, "--yes", "--force", "--non-interactive")
