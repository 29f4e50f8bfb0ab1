"""Commands in a snapshot VM's guest over SSH (loopback only, key only, never a prompt).

The snapshot code needs this twice: when making the saved state (is the guest settled, what is
its host key) and after a restore (what a clone shares with its siblings, and giving it its own
host keys). The guest's host key is pinned through a known_hosts file the caller names.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from components.errors import TwinlabError

CONNECT_TIMEOUT_S = 10
HOST_KEY_ALIAS = "twinlab-snapshot-guest"


class GuestCommandError(TwinlabError):
    """A command in the guest failed, or SSH did not get there."""


@dataclass(frozen=True)
class GuestSsh:
    port: int
    private_key: Path
    known_hosts: Path
    user: str = "twin"
    # accept-new: the first connection records the key (a fresh snapshot); "yes" afterwards.
    strict_host_key_checking: str = "yes"

    def argv(self, command: str) -> list[str]:
        return [
            "ssh",
            "-q",
            "-F",
            "/dev/null",
            "-i",
            str(self.private_key),
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o",
            f"StrictHostKeyChecking={self.strict_host_key_checking}",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            f"HostKeyAlias={HOST_KEY_ALIAS}",
            f"{self.user}@127.0.0.1",
            command,
        ]

    def run(self, command: str, timeout_s: float = 60.0, stdin: bytes | None = None) -> str:
        try:
            done = subprocess.run(
                self.argv(command),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise GuestCommandError(
                f"guest command on port {self.port} did not finish in {timeout_s:.0f} s: "
                f"{command[:80]}"
            ) from None
        if done.returncode != 0:
            error = done.stderr.decode(errors="replace").strip().splitlines()
            raise GuestCommandError(
                f"guest command on port {self.port} exited {done.returncode}: {command[:80]}"
                + (f" ({error[-1]})" if error else "")
            )
        return done.stdout.decode(errors="replace")

    def wait_until_reachable(self, timeout_s: float) -> float:
        """Seconds until a login succeeded; GuestCommandError past `timeout_s`."""
        started = time.monotonic()
        last = "no attempt"
        while time.monotonic() - started < timeout_s:
            try:
                self.run("true", timeout_s=max(5.0, CONNECT_TIMEOUT_S + 5.0))
                return time.monotonic() - started
            except GuestCommandError as error:
                last = str(error)
            time.sleep(0.5)
        raise GuestCommandError(f"no SSH login within {timeout_s:.0f} s (last: {last})")


def pin_host_key(known_hosts: Path, host_key: str) -> None:
    """Make `host_key` ("TYPE BASE64") the only key GuestSsh accepts through `known_hosts`."""
    known_hosts.write_text(f"{HOST_KEY_ALIAS} {host_key}\n")
