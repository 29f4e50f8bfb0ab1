"""The app server from PyPI: wheels pinned by version and sha256, installed by the image's python3.

The host's pip downloads the pinned wheels (PyPI is, with Debian's mirror, the build's only
network) and checks their hashes. The image's own python3 then runs pip from its wheel in a
chroot, so the files land where Debian's python3 looks (/usr/local/lib/python3.X/dist-packages)
and are byte-compiled by that interpreter; pip itself is not left in the image. The pin files
sit under images/, so the recipe hash (the cache key and the image tag) covers them.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from .chroot import chroot_command
from .steps import BuildError, Steps

IMAGES_DIR = Path(__file__).resolve().parent
APP_SERVER_PINS = IMAGES_DIR / "app-server.txt"
INSTALLER_PINS = IMAGES_DIR / "pip-installer.txt"
WHEELS_IN_ROOT = "/tmp/twinlab-wheels"

_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:[0-9a-f]{64}$")


def pins(requirements: Path) -> dict[str, str]:
    """{name: version} of a pin file; every requirement must be `name==version --hash=sha256:`."""
    found: dict[str, str] = {}
    for number, raw in enumerate(requirements.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match is None:
            raise BuildError(
                f"{requirements.name}:{number}: {line!r} is not 'name==version "
                "--hash=sha256:<64 hex>' (the image installs only pinned, hashed wheels)"
            )
        found[match.group(1).lower()] = match.group(2)
    return found


def download_wheels(steps: Steps, wheels: Path) -> None:
    """The pinned wheels of the app server and of pip into `wheels`, hashes checked by pip."""
    wheels.mkdir(parents=True, exist_ok=True)
    for requirements in (APP_SERVER_PINS, INSTALLER_PINS):
        pins(requirements)
        steps.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--only-binary=:all:", "--require-hashes",
                "--dest", wheels, "--requirement", requirements,
            ]
        )  # fmt: skip


def install_app_server(steps: Steps, root: Path, wheels: Path) -> dict[str, str]:
    """Install the pinned app server into `root` from `wheels`; returns {name: version}."""
    installers = sorted(wheels.glob("pip-*.whl"))
    if len(installers) != 1:
        raise BuildError(f"expected one pip wheel in {wheels}, found {len(installers)}")
    inside = root / WHEELS_IN_ROOT.lstrip("/")
    shutil.copytree(wheels, inside)
    shutil.copyfile(APP_SERVER_PINS, inside / APP_SERVER_PINS.name)
    try:
        steps.run(
            chroot_command(
                root, "python3", f"{WHEELS_IN_ROOT}/{installers[0].name}/pip", "install",
                "--no-index", "--find-links", WHEELS_IN_ROOT, "--require-hashes",
                "--no-cache-dir", "--disable-pip-version-check", "--root-user-action=ignore",
                # Debian marks its python3 externally managed (PEP 668). No Debian package
                # provides these modules here, and pip writes to /usr/local, which dpkg never does.
                "--break-system-packages",
                "--requirement", f"{WHEELS_IN_ROOT}/{APP_SERVER_PINS.name}",
            )
        )  # fmt: skip
    finally:
        shutil.rmtree(inside)
    wanted = pins(APP_SERVER_PINS)
    reported = steps.run(chroot_command(root, "python3", "-m", "gunicorn", "--version"))
    if f"(version {wanted['gunicorn']})" not in reported:
        raise BuildError(
            f"python3 -m gunicorn in the image reports {reported.strip()!r}, "
            f"not the pinned {wanted['gunicorn']}: is another gunicorn on its sys.path?"
        )
    return wanted
