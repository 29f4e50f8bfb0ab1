"""The app server's pins: only `name==version --hash=sha256:` lines, and the shipped files obey."""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.images import appserver, recipe
from workloads.images.steps import BuildError

HASH = "ab" * 32


def test_shipped_pins_name_gunicorn_without_pkg_resources_and_pip() -> None:
    server = appserver.pins(appserver.APP_SERVER_PINS)
    # 21.0 is the first gunicorn whose util no longer imports pkg_resources at start.
    major = int(server["gunicorn"].split(".")[0])
    assert major >= 21
    assert "pip" in appserver.pins(appserver.INSTALLER_PINS)
    assert "pip" not in server


def test_pins_read_name_and_version_and_skip_comments(tmp_path: Path) -> None:
    pin_file = tmp_path / "pins.txt"
    pin_file.write_text(f"# a comment\n\nGunicorn==23.0.0 --hash=sha256:{HASH}\n")
    assert appserver.pins(pin_file) == {"gunicorn": "23.0.0"}


@pytest.mark.parametrize(
    "line",
    [
        "gunicorn==23.0.0",  # no hash
        f"gunicorn>=23 --hash=sha256:{HASH}",  # not an exact version
        "gunicorn==23.0.0 --hash=sha256:abc",  # not a sha256
        f"gunicorn==23.0.0 --hash=md5:{HASH}",
    ],
)
def test_an_unpinned_or_unhashed_requirement_is_refused_with_its_line(
    tmp_path: Path, line: str
) -> None:
    pin_file = tmp_path / "pins.txt"
    pin_file.write_text(f"# header\n{line}\n")
    with pytest.raises(BuildError, match=r"pins.txt:2: .*name==version"):
        appserver.pins(pin_file)


def test_the_pins_are_part_of_the_recipe_hash() -> None:
    names = {p.name for p in recipe.recipe_files()}
    assert {appserver.APP_SERVER_PINS.name, appserver.INSTALLER_PINS.name} <= names
    assert "python3-gunicorn" not in recipe.USERLAND_PACKAGES
