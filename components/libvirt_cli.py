"""virsh and qemu-img for the snapshot code: the few calls it makes, with errors that say which
command failed and why. (The checks have their own, richer Virsh in scripts/; components/ may
not import it.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from components.errors import TwinlabError

LOCAL_URI = "qemu:///system"
TIMEOUT_S = 120.0


class LibvirtCommandError(TwinlabError):
    """virsh or qemu-img failed."""


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ") if lines else "failed without a message"


def run(argv: list[str], timeout_s: float = TIMEOUT_S, check: bool = True) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise LibvirtCommandError(f"{argv[0]} is not installed; run scripts/setup.sh") from None
    except subprocess.TimeoutExpired:
        raise LibvirtCommandError(
            f"`{' '.join(argv[:4])} ...` did not finish within {timeout_s:.0f} s"
        ) from None
    if check and done.returncode != 0:
        raise LibvirtCommandError(f"`{' '.join(argv[:4])} ...`: {_last_line(done.stderr)}")
    return done.stdout


def virsh(
    *args: str, uri: str = LOCAL_URI, timeout_s: float = TIMEOUT_S, check: bool = True
) -> str:
    return run(["virsh", "-q", "-c", uri, *args], timeout_s=timeout_s, check=check)


def domain_exists(name: str, uri: str = LOCAL_URI) -> bool:
    done = subprocess.run(
        ["virsh", "-q", "-c", uri, "domstate", name],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode == 0


def domain_names(prefix: str, uri: str = LOCAL_URI) -> list[str]:
    names = virsh("list", "--all", "--name", uri=uri).split()
    return sorted(name for name in names if name.startswith(prefix))


def destroy(name: str, uri: str = LOCAL_URI) -> None:
    """Stop a domain and, transient as every snapshot domain is, make it vanish. Idempotent."""
    if domain_exists(name, uri):
        virsh("destroy", name, uri=uri, check=False)
        virsh("undefine", name, uri=uri, check=False)


def create_overlay(path: Path, backing: Path) -> None:
    """A new qcow2 at `path` whose backing file is `backing` (absolute, so it can be checked)."""
    run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            str(backing),
            str(path),
        ]
    )


def backing_chain(path: Path) -> list[Path]:
    """The image at `path`, then each backing file, as absolute paths (qemu-img; -U: in use)."""
    out = run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", str(path)])
    images = json.loads(out)
    return [Path(image["filename"]).resolve() for image in images]
