"""Recipe hash and the one app command line shared by both packagings."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from workloads.images import recipe


@pytest.fixture
def workloads_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "workloads"
    shutil.copytree(recipe.WORKLOADS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def hash_of(workloads_dir: Path) -> str:
    return recipe.recipe_hash(recipe.recipe_files(workloads_dir), workloads_dir)


def test_hash_is_stable_and_independent_of_location(workloads_copy: Path) -> None:
    assert hash_of(recipe.WORKLOADS_DIR) == hash_of(recipe.WORKLOADS_DIR)
    assert hash_of(workloads_copy) == hash_of(recipe.WORKLOADS_DIR)
    assert len(hash_of(workloads_copy)) == 64


@pytest.mark.parametrize(
    "changed",
    [
        "app/VERSION",
        "app/webapp.py",
        "app/static/index.html",
        "images/recipe.py",
        "images/guest/initramfs-init",
        "images/guest/vm/etc/ssh/sshd_config.d/twinlab.conf",
    ],
)
def test_hash_changes_when_a_recipe_file_changes(workloads_copy: Path, changed: str) -> None:
    before = hash_of(workloads_copy)
    with (workloads_copy / changed).open("a") as recipe_file:
        recipe_file.write("\n")
    assert hash_of(workloads_copy) != before


def test_hash_changes_when_a_file_is_added_or_renamed(workloads_copy: Path) -> None:
    before = hash_of(workloads_copy)
    new = workloads_copy / "images" / "guest" / "vm" / "etc" / "extra.conf"
    new.write_text("x\n")
    added = hash_of(workloads_copy)
    new.rename(new.with_name("renamed.conf"))
    assert len({before, added, hash_of(workloads_copy)}) == 3


def test_hash_ignores_bytecode_and_the_boot_test(workloads_copy: Path) -> None:
    before = hash_of(workloads_copy)
    cache = workloads_copy / "images" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "recipe.cpython-311.pyc").write_bytes(b"\0")
    with (workloads_copy / "images" / "boottest.py").open("a") as boottest:
        boottest.write("\n")
    assert hash_of(workloads_copy) == before


def test_recipe_covers_app_build_code_and_guest_files() -> None:
    names = {p.relative_to(recipe.WORKLOADS_DIR).as_posix() for p in recipe.recipe_files()}
    assert {"app/VERSION", "app/webapp.py", "images/build.py", "images/vmdisk.py"} <= names
    assert "images/guest/initramfs-init" in names
    assert "images/boottest.py" not in names


def test_container_tag_has_version_and_hash12() -> None:
    assert recipe.container_tag("1.2.3", "ab" * 32) == "twinlab/webapp:1.2.3-abababababab"


def test_docker_cmd_and_systemd_unit_run_the_same_command_and_environment() -> None:
    changes = recipe.docker_changes()
    cmd = next(c for c in changes if c.startswith("CMD "))
    assert json.loads(cmd.removeprefix("CMD ")) == list(recipe.APP_COMMAND)
    assert f"USER {recipe.APP_USER}" in changes
    assert f"WORKDIR {recipe.APP_DIR}" in changes
    assert "EXPOSE 8080/tcp" in changes
    docker_env = [c.removeprefix("ENV ") for c in changes if c.startswith("ENV ")]

    unit = recipe.systemd_app_unit().splitlines()
    exec_start = next(line for line in unit if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == list(recipe.APP_COMMAND)
    environment = next(line for line in unit if line.startswith("Environment="))
    assert environment.removeprefix("Environment=").split() == docker_env
    assert f"User={recipe.APP_USER}" in unit
    assert f"WorkingDirectory={recipe.APP_DIR}" in unit


def test_environment_values_need_no_quoting() -> None:
    # systemd's Environment= and docker's ENV would need different quoting otherwise.
    for name, value in recipe.APP_ENV:
        assert shlex.quote(value) == value and " " not in value, name


def test_a_second_cache_names_its_own_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(recipe.IMAGE_REPOSITORY_ENV, "twinlab-rehearsal/webapp")
    assert recipe.container_tag("1.2.3", "ab" * 32) == "twinlab-rehearsal/webapp:1.2.3-abababababab"
    monkeypatch.delenv(recipe.IMAGE_REPOSITORY_ENV)
    assert recipe.container_tag("1.2.3", "ab" * 32).startswith("twinlab/webapp:")
