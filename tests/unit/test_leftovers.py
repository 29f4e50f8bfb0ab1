"""The leftover detector looks at the pools' directories on disk, not only at libvirt's pools:
a pool libvirt no longer knows (undefined after it refused to delete a directory that still
held a file) leaves its directory and files behind, and those are listed and removed.

The directory work (find, rm) runs for real on a temporary pools root; docker, virsh, ss and
pgrep answer from a table, as they would on a machine where libvirt's pool is already gone."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts import leftovers

pytestmark = pytest.mark.unit

PREFIX = "twinlab-ci-ab12cd-"


def machine(answers: dict[tuple[str, ...], list[str]], seen: list[list[str]]) -> leftovers.Run:
    """A runner: find and rm on this machine's disk, every other command from `answers`
    (matched by its leading words), else no output."""

    def run(argv: list[str]) -> list[str]:
        seen.append(argv)
        if argv[0] in ("find", "rm"):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            return [line for line in done.stdout.splitlines() if line]
        for words, lines in answers.items():
            if tuple(argv[: len(words)]) == words:
                return lines
        return []

    return run


def pool_dir(root: Path, name: str, *files: str) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    for file in files:
        (directory / file).write_bytes(b"QFI\xfb")
    return directory


@pytest.fixture
def disk(tmp_path: Path) -> Callable[[], tuple[Path, dict[str, Path]]]:
    """A pools root as the defect left it: the stack's pool directory with the base disk whose
    upload an interrupted up cut short, a fleet host's with a root overlay, a clone's overlay;
    beside them another stack's, which must stay."""

    def make() -> tuple[Path, dict[str, Path]]:
        root = tmp_path / "pools"
        made = {
            "stack": pool_dir(root, "twinlab-ci-ab12cd", "twinlab-ci-ab12cd-base.qcow2"),
            "host": pool_dir(root, "twinlab-ci-ab12cd-a", "twinlab-ci-ab12cd-a-root.qcow2"),
            "other": pool_dir(root, "twinlab-ci-ab12cde", "twinlab-ci-ab12cde-base.qcow2"),
        }
        (made["stack"] / "twinlab-ci-ab12cd-clone-1-vda.qcow2").write_bytes(b"QFI\xfb")
        return root, made

    return make


def test_a_pool_directory_libvirt_forgot_is_a_leftover_with_its_files(
    disk: Callable[[], tuple[Path, dict[str, Path]]],
) -> None:
    root, made = disk()
    found = leftovers.find(PREFIX, run=machine({}, []), pool_root=root)
    assert found.pools == []  # libvirt's view: nothing
    assert found.pool_dirs == [str(made["stack"]), str(made["host"])]
    assert sorted(found.pool_files) == sorted(
        [
            str(made["stack"] / "twinlab-ci-ab12cd-base.qcow2"),
            str(made["stack"] / "twinlab-ci-ab12cd-clone-1-vda.qcow2"),
            str(made["host"] / "twinlab-ci-ab12cd-a-root.qcow2"),
        ]
    )
    assert found.count() == 5
    assert "pool_dirs: " in found.describe() and "base.qcow2" in found.describe()


def test_an_empty_pool_directory_is_a_leftover_too(tmp_path: Path) -> None:
    directory = pool_dir(tmp_path, "twinlab-ci-ab12cd")
    found = leftovers.find(PREFIX, run=machine({}, []), pool_root=tmp_path)
    assert (found.pool_dirs, found.pool_files) == ([str(directory)], [])


def test_remove_deletes_the_stacks_pool_directories_and_nothing_else(
    disk: Callable[[], tuple[Path, dict[str, Path]]],
) -> None:
    root, made = disk()
    seen: list[list[str]] = []
    removed = leftovers.remove(PREFIX, run=machine({}, seen), pool_root=root)
    assert removed.pool_dirs == [str(made["stack"]), str(made["host"])]  # what was found
    assert not made["stack"].exists() and not made["host"].exists()
    assert (made["other"] / "twinlab-ci-ab12cde-base.qcow2").exists()
    assert leftovers.find(PREFIX, run=machine({}, []), pool_root=root).count() == 0


def test_a_pool_libvirt_still_has_is_started_and_refreshed_before_its_volumes_are_listed(
    tmp_path: Path,
) -> None:
    """An inactive pool lists no volumes, and a file libvirt never saw is not among them; its
    directory, wherever its XML points, goes all the same."""
    elsewhere = pool_dir(tmp_path / "custom", "twinlab-ci-ab12cd", "twinlab-ci-ab12cd-base.qcow2")
    pool = "twinlab-ci-ab12cd-pool"
    xml = f"<pool type='dir'><name>{pool}</name><target><path>{elsewhere}</path></target></pool>"
    answers = {
        ("virsh", "-c", "qemu:///system", "pool-list"): [pool],
        ("virsh", "-c", "qemu:///system", "pool-dumpxml", pool): [xml],
    }
    seen: list[list[str]] = []
    found = leftovers.remove(PREFIX, run=machine(answers, seen), pool_root=tmp_path / "pools")
    assert found.pools == [pool] and found.pool_dirs == [str(elsewhere)]
    virsh = [argv[4:] for argv in seen if argv[:4] == ["virsh", "-q", "-c", "qemu:///system"]]
    assert virsh[:3] == [["pool-start", pool], ["pool-refresh", pool], ["vol-list", pool]]
    assert ["pool-undefine", pool] in virsh
    assert not elsewhere.exists()


def test_a_pool_target_not_named_like_the_stack_is_never_removed(tmp_path: Path) -> None:
    kept = pool_dir(tmp_path, "images", "base.qcow2")
    pool = "twinlab-ci-ab12cd-pool"
    xml = f"<pool type='dir'><target><path>{kept}</path></target></pool>"
    answers = {
        ("virsh", "-c", "qemu:///system", "pool-list"): [pool],
        ("virsh", "-c", "qemu:///system", "pool-dumpxml", pool): [xml],
    }
    found = leftovers.remove(PREFIX, run=machine(answers, []), pool_root=tmp_path)
    assert found.pool_dirs == [] and (kept / "base.qcow2").exists()


def test_a_stack_name_that_only_starts_like_another_is_not_swept(tmp_path: Path) -> None:
    pool_dir(tmp_path, "twinlab-dev2", "twinlab-dev2-base.qcow2")
    dev = pool_dir(tmp_path, "twinlab-dev")
    found = leftovers.find("twinlab-dev-", run=machine({}, []), pool_root=tmp_path)
    assert found.pool_dirs == [str(dev)]


def test_remove_refuses_a_prefix_that_is_not_twinlabs(tmp_path: Path) -> None:
    seen: list[list[str]] = []
    with pytest.raises(ValueError, match="not a twinlab name prefix"):
        leftovers.remove("ci-", run=machine({}, seen), pool_root=tmp_path)
    assert seen == []


def test_the_command_names_a_prefix_it_will_not_remove(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        leftovers.main(["ci-", "--remove"])
    assert exited.value.code == 2
    assert "'ci-': not a twinlab name prefix" in capsys.readouterr().err
