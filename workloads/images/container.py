"""The container packaging: `docker import` of the userland tarball, app-only metadata."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import recipe
from .steps import BuildError, Steps


@dataclass(frozen=True)
class DockerImage:
    tag: str
    image_id: str
    size_bytes: int


DOCKER_DOWN_HINT = (
    "the Docker daemon is not reachable: start it (scripts/setup.sh does, or "
    "`dockerd >/var/log/dockerd.log 2>&1 &`)"
)


def inspect_image(tag: str) -> DockerImage | None:
    """The local image `tag`, or None if absent. BuildError if the daemon is unreachable."""
    try:
        result = subprocess.run(
            ["docker", "image", "inspect", tag], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise BuildError("docker is not installed: run scripts/setup.sh") from None
    if result.returncode != 0:
        if "No such image" in result.stderr or "No such object" in result.stderr:
            return None
        raise BuildError(f"{DOCKER_DOWN_HINT}\n{result.stderr.strip()}")
    info = json.loads(result.stdout)[0]
    return DockerImage(tag=tag, image_id=info["Id"], size_bytes=int(info["Size"]))


def import_image(steps: Steps, tarball: Path, tag: str) -> DockerImage:
    command: list[str | Path] = ["docker", "import"]
    for change in recipe.docker_changes():
        command += ["--change", change]
    command += [tarball, tag]
    steps.run(command)
    image = inspect_image(tag)
    if image is None:
        raise BuildError(f"docker import reported success but {tag} is not there")
    return image
