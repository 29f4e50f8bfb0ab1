"""The parts of the cold path that a warm machine hides, rehearsed in seconds.

On a brand-new machine /run holds none of the runtime directories a long-lived machine has
collected, and twinlab's state directory does not exist yet. Here scripts/remote_access.sh (the
`remote` stack's entry step) runs in private mount and network namespaces where /run is an
empty tmpfs and TWINLAB_STATE is new: it must create what it needs, start sshd, answer, stop.
The whole setup's cold path is rehearsed by scripts/rehearse_cold.sh (minutes, not in CI).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import ROOT

pytestmark = pytest.mark.integration

# Inside: /run replaced by an empty tmpfs (so no /run/sshd), loopback up, then the script
# started, asked for its status and stopped, as a new user of the remote stack would.
IN_FRESH_NAMESPACES = """
set -eu
mount -t tmpfs -o mode=755 cold-run /run
ip link set lo up
test ! -e /run/sshd
"$SCRIPT"
"$SCRIPT" status
"$SCRIPT" stop
"""


UNSHARE = ("unshare", "--mount", "--propagation", "private", "--net", "--")


def run_in_fresh_namespaces(script: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UNSHARE, "sh", "-c", IN_FRESH_NAMESPACES],
        env={
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(state.parent),
            "TWINLAB_STATE": str(state),
            "SCRIPT": str(script),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A new directory no one else may write to, up to / (sshd's StrictModes refuses keys
    under /tmp, which everyone may write)."""
    parent = Path.home() / ".cache"
    parent.mkdir(mode=0o755, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="twinlab-cold-path-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_remote_access_starts_on_a_fresh_machine(private_dir: Path) -> None:
    done = run_in_fresh_namespaces(ROOT / "scripts/remote_access.sh", private_dir / "state")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "started" in done.stdout
    assert "running (pid" in done.stdout
    assert "stopped sshd" in done.stdout


def test_the_rehearsal_fails_when_a_runtime_directory_is_not_made(private_dir: Path) -> None:
    """Negative control: the same run with the script's mkdir of /run/sshd taken out fails
    with sshd's own complaint, so the test above really exercises a missing /run/sshd."""
    original = (ROOT / "scripts/remote_access.sh").read_text(encoding="utf-8")
    making = "mkdir -p /run/sshd\nchmod 755 /run/sshd\n"
    assert original.count(making) == 1
    broken = private_dir / "remote_access_without_mkdir.sh"
    broken.write_text(original.replace(making, ""), encoding="utf-8")
    broken.chmod(0o755)
    done = run_in_fresh_namespaces(broken, private_dir / "state")
    assert done.returncode != 0
    assert "Missing privilege separation directory: /run/sshd" in done.stderr
